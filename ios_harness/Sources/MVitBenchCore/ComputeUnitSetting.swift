import Foundation

/// The four `MLModelConfiguration.computeUnits` settings, spelled as the results schema spells
/// them (the Swift case names), so a row reads the same on every side.
public enum ComputeUnitSetting: String, Codable, CaseIterable, Sendable {
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine
    case all

    /// Parses a comma-separated list such as "cpuOnly,all"; "every" means all four settings.
    public static func parseList(_ text: String) throws -> [ComputeUnitSetting] {
        if text == "every" { return allCases }
        var settings: [ComputeUnitSetting] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let setting = ComputeUnitSetting(rawValue: trimmed) else {
                let choices = allCases.map(\.rawValue).joined(separator: ", ")
                throw HarnessError.invalidArgument(
                    "unknown compute unit '\(trimmed)'; choose from \(choices) (comma-separated) or every"
                )
            }
            if !settings.contains(setting) { settings.append(setting) }
        }
        return settings
    }
}
