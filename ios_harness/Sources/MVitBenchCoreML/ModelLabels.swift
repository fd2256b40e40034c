#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// What a results row calls the model: read from the metadata `mvit-export` writes into the
/// artefact, falling back to the file name when the model came from elsewhere.
struct ModelLabels: Equatable {
    var model: String
    var config: String
    var task: String
    var precision: String

    /// Metadata keys tried in order; `mvit-export` writes the "mvit." ones, the bare ones cover
    /// models that were annotated by hand.
    static let keys: [String: [String]] = [
        "model": ["mvit.model", "model_name", "model"],
        "config": ["mvit.config", "config"],
        "task": ["mvit.task", "task"],
        "precision": ["mvit.precision", "precision"],
    ]

    init(model: String, config: String, task: String, precision: String) {
        self.model = model
        self.config = config
        self.task = task
        self.precision = precision
    }

    init(description: MLModelDescription, artefactURL: URL) {
        let metadata = description.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        func lookup(_ field: String) -> String? {
            for key in ModelLabels.keys[field] ?? [] {
                if let value = metadata[key], !value.isEmpty { return value }
            }
            return nil
        }
        let config = lookup("config") ?? "-"
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
