#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// The row labels of a CoreML model, from the user-defined metadata in its description.
typealias ModelLabels = ArtefactLabels

extension ArtefactLabels {
    /// `function`: a multifunction package's function, whose own patch config wins over the
    /// package's.
    init(description: MLModelDescription, artefactURL: URL, function: ModelFunction = .only) {
        let metadata = description.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        self.init(metadata: metadata, artefactURL: artefactURL, functionConfig: function.config)
    }
}
#endif
