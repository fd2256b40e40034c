import Foundation

/// What a results row calls the model: read from the key-value metadata `mvit-export` writes into
/// every artefact (keys model, config, task, precision; see exporters/api.py), falling back to the
/// file name when the model came from elsewhere. Shared by the CoreML and Core AI backends, which
/// read that metadata through their own framework.
public struct ArtefactLabels: Equatable, Sendable {
    public var model: String
    public var config: String
    public var task: String
    public var precision: String

    public init(model: String, config: String, task: String, precision: String) {
        self.model = model
        self.config = config
        self.task = task
        self.precision = precision
    }

    /// `functionConfig`: the patch config a multifunction artefact records for one function, which
    /// wins over the artefact's own.
    public init(metadata: [String: String], artefactURL: URL, functionConfig: String? = nil) {
        func lookup(_ key: String) -> String? {
            guard let value = metadata[key], !value.isEmpty else { return nil }
            return value
        }
        let config = functionConfig ?? lookup("config") ?? "-"
        self.init(
            model: lookup("model") ?? artefactURL.deletingPathExtension().lastPathComponent,
            // The schema only knows configs A and B; anything else is reported as unknown.
            config: ["A", "B"].contains(config) ? config : "-",
            task: lookup("task") ?? "unknown",
            precision: lookup("precision") ?? "unknown"
        )
    }
}
