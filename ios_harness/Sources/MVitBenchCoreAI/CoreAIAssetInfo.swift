#if canImport(CoreAI)
import CoreAI
import Foundation
import MVitBenchCore

/// What the rows need from an `.aimodel` before it is specialised: its metadata, read through
/// `AIModelAsset` (cheap: no specialisation).
@available(iOS 27.0, macOS 27.0, *)
enum CoreAIAssetInfo {
    /// The creator-defined metadata as strings. mvit-export stores every value as a JSON string
    /// literal (coreai-core's Python `set_custom` would turn "0" and "1" into booleans), so a
    /// value that decodes as a JSON string is unwrapped; anything else is kept as written.
    static func metadata(of url: URL) throws -> [String: String] {
        let asset: AIModelAsset
        do {
            asset = try AIModelAsset(contentsOf: url)
        } catch {
            throw HarnessError.unsupportedModel(
                "\(url.lastPathComponent): Core AI cannot read it (\(error.localizedDescription)); re-export it with mvit-export --target coreai"
            )
        }
        var strings: [String: String] = [:]
        for (key, value) in asset.metadata.creatorDefinedMetadata {
            if case .string(let text) = value {
                strings[key] = unwrapped(text)
            }
        }
        return strings
    }

    static func unwrapped(_ text: String) -> String {
        (try? JSONDecoder().decode(String.self, from: Data(text.utf8))) ?? text
    }

    /// The functions to time: the "functions" list mvit-export records (the default first), else
    /// every function the specialised model has. Each keeps its name, which loading needs; rows
    /// of a single-function asset leave it out, as a single-function CoreML model's do.
    static func functions(metadata: [String: String], model: AIModel) throws -> [ModelFunction] {
        let listed = try ModelFunction.list(fromMetadata: metadata["functions"])
        if !listed.isEmpty {
            return listed
        }
        let names = model.functionNames
        if names.count == 1, let only = names.first {
            return [ModelFunction(name: only)]
        }
        return names.map { ModelFunction(name: $0) }
    }

    /// One input per name the function takes, of its declared shape: Core AI checks scalar types
    /// strictly, and mvit's assets take float32 arrays (fp16 assets too, which cast inside), so
    /// anything else is refused in one line rather than fed a wrong buffer. The values are the
    /// CoreML path's pattern in [-1, 1): latency does not depend on them.
    static func inputs(for descriptor: InferenceFunctionDescriptor, artefact: String) throws -> [String: NDArray] {
        var inputs: [String: NDArray] = [:]
        for name in descriptor.inputNames {
            guard case .ndArray(let array) = descriptor.inputDescriptor(of: name) else {
                throw HarnessError.unsupportedModel("\(artefact): input \(name) is not an array; mvit's Core AI assets take one float32 image array")
            }
            let shape = array.shape
            guard array.scalarType == .float32, !shape.contains(where: { $0 < 1 }) else {
                throw HarnessError.unsupportedModel(
                    "\(artefact): input \(name) is not a fixed-shape float32 array (shape \(shape)); re-export it with mvit-export --target coreai"
                )
            }
            let count = shape.reduce(1, *)
            let pattern = (0..<count).map { Float($0 % 256) / 128.0 - 1.0 }
            inputs[name] = NDArray(scalars: pattern, shape: shape)
        }
        return inputs
    }

    /// [height, width] and batch of the first input (NCHW), for the results row.
    static func inputSize(of descriptor: InferenceFunctionDescriptor) -> (size: [Int], batch: Int) {
        guard let name = descriptor.inputNames.first, case .ndArray(let array) = descriptor.inputDescriptor(of: name),
              array.shape.count >= 2
        else { return ([1, 1], 1) }
        let batch = array.shape.count == 4 ? max(array.shape[0], 1) : 1
        return (Array(array.shape.suffix(2)), batch)
    }
}
#endif
