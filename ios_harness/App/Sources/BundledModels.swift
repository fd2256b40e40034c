import Foundation

/// The models shipped in the app: everything in the bundle's Models folder (a folder reference
/// to ios_harness/App/Models, where `mvit-export --into-harness` puts artefacts). A folder
/// reference is copied as is, so .mlpackage files arrive uncompiled and the harness times the
/// on-device compile; a .mlmodelc placed there is loaded directly. An .aimodel (Core AI) is
/// specialised on the device when it loads, on iOS 27 and later (HarnessRun).
enum BundledModels {
    static let extensions: Set<String> = ["mlpackage", "mlmodel", "mlmodelc", "aimodel"]

    static func list(in bundle: Bundle = .main) -> [URL] {
        guard let folder = bundle.url(forResource: "Models", withExtension: nil),
              let entries = try? FileManager.default.contentsOfDirectory(
                  at: folder, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles]
              )
        else { return [] }
        return entries
            .filter { extensions.contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}
