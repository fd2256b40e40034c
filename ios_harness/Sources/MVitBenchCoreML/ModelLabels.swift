#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// What a results row calls the model: read from the user-defined metadata `mvit-export` writes
/// into every artefact (keys model, config, task, precision; see exporters/api.py), falling back
/// to the file name when the model came from elsewhere.
struct ModelLabels: Equatable {
    var model: String
    var config: String
    var task: String
    var precision: String

    init(model: String, config: String, task: String, precision: String) {
        self.model = model
        self.config = config
        self.task = task
        self.precision = precision
    }

    /// `function`: a multifunction package's function, whose own patch config wins over the
    /// package's.
    init(description: MLModelDescription, artefactURL: URL, function: ModelFunction = .only) {
        let metadata = description.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        func lookup(_ key: String) -> String? {
            guard let value = metadata[key], !value.isEmpty else { return nil }
            return value
        }
        let config = function.config ?? lookup("config") ?? "-"
        self.init(
            model: lookup("model") ?? artefactURL.deletingPathExtension().lastPathComponent,
            // The schema only knows configs A and B; anything else is reported as unknown.
            config: ["A", "B"].contains(config) ? config : "-",
            task: lookup("task") ?? "unknown",
            precision: lookup("precision") ?? "unknown"
        )
    }
}
#endif
