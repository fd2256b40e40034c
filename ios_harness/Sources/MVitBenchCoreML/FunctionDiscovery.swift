#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// Which functions of a model to time. A multifunction package from `mvit-export` lists them in
/// its metadata key "functions" (the default first); on iOS 18 / macOS 15 a package from
/// elsewhere is asked through `MLModelAsset.functionNames`. Anything else has one function.
enum FunctionDiscovery {
    static func functions(compiledAt compiledURL: URL, metadata: [String: String]) async throws -> [ModelFunction] {
        let listed = try ModelFunction.list(fromMetadata: metadata["functions"])
        if !listed.isEmpty {
            return listed
        }
        if #available(iOS 18.0, macOS 15.0, *) {
            let names = try await MLModelAsset(url: compiledURL).functionNames
            if names.count > 1 {
                return names.map { ModelFunction(name: $0) }
            }
        }
        return [.only]
    }

    /// Sets the function to load; a named function needs iOS 18 / macOS 15.
    static func select(_ function: ModelFunction, in configuration: MLModelConfiguration, artefact: String) throws {
        guard let name = function.name else { return }
        guard #available(iOS 18.0, macOS 15.0, *) else {
            throw HarnessError.platformUnavailable(
                "\(artefact): function \(name) of a multifunction package needs iOS 18 / macOS 15 (MLModelConfiguration.functionName)"
            )
        }
        configuration.functionName = name
    }
}
#endif
