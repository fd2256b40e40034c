import Foundation

// What a results row carries beside the CoreML timings: the same model run through Vision
// (detectors), and where CoreML plans to run each op (MLComputePlan). Both are objects of the
// result row in benchmarks/results.schema.json; keys are spelled out in CodingKeys so
// tests/test_ios_harness.py can check them against the schema.

/// The model run through Vision: one `VNCoreMLRequest` performed by a new
/// `VNImageRequestHandler` per run, as an app does per camera frame, timed like the CoreML runs.
public struct VisionRun: Codable, Equatable, Sendable {
    public var firstRequestMs: Double
    public var warmupRuns: Int
    public var runs: Int
    public var timesMs: [Double]
    public var stats: LatencyStats
    /// `VNRecognizedObjectObservation`s in the last request's results, at the thresholds the
    /// package was exported with (its `confidence_threshold` and `iou_threshold` metadata): the
    /// harness feeds no threshold inputs, so the pipeline's defaults apply.
    public var recognizedObjects: Int
    /// Any other observations (a detector Vision did not recognise comes back as feature values).
    public var otherObservations: Int

    enum CodingKeys: String, CodingKey {
        case firstRequestMs = "first_request_ms"
        case warmupRuns = "warmup_runs"
        case runs
        case timesMs = "times_ms"
        case stats
        case recognizedObjects = "recognized_objects"
        case otherObservations = "other_observations"
    }

    public init(
        firstRequestMs: Double, warmupRuns: Int, timesMs: [Double], recognizedObjects: Int,
        otherObservations: Int
    ) throws {
        self.firstRequestMs = firstRequestMs
        self.warmupRuns = warmupRuns
        self.runs = timesMs.count
        self.timesMs = timesMs
        self.stats = try LatencyStats(timesMs: timesMs)
        self.recognizedObjects = recognizedObjects
        self.otherObservations = otherObservations
    }
}

/// A compute device as MLComputePlan names it.
public enum ComputeDeviceKind: String, CaseIterable, Sendable {
    case cpu
    case gpu
    case neuralEngine
}

/// How many ops CoreML prefers to run on each device, and their share of its estimated cost
/// (MLComputePlan, iOS 17.4 / macOS 14.4). Where the OS has no MLComputePlan, `available` is
/// false and `reason` says why; every other field is then nil.
public struct ComputePlanSplit: Codable, Equatable, Sendable {
    public var available: Bool
    public var reason: String?
    /// Ops with a device usage (weight constants have none and are not counted).
    public var operations: Int?
    public var cpuOps: Int?
    public var gpuOps: Int?
    public var neuralEngineOps: Int?
    /// Shares of the estimated cost, summing to 1; nil where CoreML gave no cost (neural networks).
    public var cpuCost: Double?
    public var gpuCost: Double?
    public var neuralEngineCost: Double?

    enum CodingKeys: String, CodingKey {
        case available
        case reason
        case operations
        case cpuOps = "cpu_ops"
        case gpuOps = "gpu_ops"
        case neuralEngineOps = "neural_engine_ops"
        case cpuCost = "cpu_cost"
        case gpuCost = "gpu_cost"
        case neuralEngineCost = "neural_engine_cost"
    }

    public static func unavailable(_ reason: String) -> ComputePlanSplit {
        ComputePlanSplit(available: false, reason: reason)
    }

    private init(available: Bool, reason: String?) {
        self.available = available
        self.reason = reason
    }

    /// The split from per-device op counts and summed cost weights (empty: no cost given).
    public init(ops: [ComputeDeviceKind: Int], costWeights: [ComputeDeviceKind: Double]) {
        self.available = true
        self.reason = nil
        self.cpuOps = ops[.cpu, default: 0]
        self.gpuOps = ops[.gpu, default: 0]
        self.neuralEngineOps = ops[.neuralEngine, default: 0]
        self.operations = ops.values.reduce(0, +)
        let total = costWeights.values.reduce(0, +)
        if total > 0 {
            // Each share is a part over the whole, so it never exceeds 1.
            self.cpuCost = costWeights[.cpu, default: 0] / total
            self.gpuCost = costWeights[.gpu, default: 0] / total
            self.neuralEngineCost = costWeights[.neuralEngine, default: 0] / total
        }
    }

    /// "12/0/431" (CPU/GPU/Neural Engine ops) or "n/a" for the results table.
    public var summary: String {
        guard available, let cpuOps, let gpuOps, let neuralEngineOps else { return "n/a" }
        return "\(cpuOps)/\(gpuOps)/\(neuralEngineOps)"
    }
}

/// One function of a CoreML package to time: a multifunction package (iOS 18 / macOS 15) holds
/// one per input size or patch config, chosen with `MLModelConfiguration.functionName`.
public struct ModelFunction: Equatable, Hashable, Sendable {
    /// nil: the model's only function (loaded without a function name).
    public var name: String?
    public var config: String?
    public var imageSize: Int?

    public init(name: String?, config: String? = nil, imageSize: Int? = nil) {
        self.name = name
        self.config = config
        self.imageSize = imageSize
    }

    public static let only = ModelFunction(name: nil)

    /// The list `mvit-export` records in a multifunction package's metadata key "functions":
    /// `[{"name": "A_256", "image_size": 256, "config": "A"}, ...]`, the default function first.
    /// No key (a single-function artefact) gives an empty list.
    public static func list(fromMetadata json: String?) throws -> [ModelFunction] {
        guard let json, !json.isEmpty else { return [] }
        struct Entry: Decodable {
            let name: String
            let imageSize: Int?
            let config: String?

            enum CodingKeys: String, CodingKey {
                case name
                case imageSize = "image_size"
                case config
            }
        }
        let entries: [Entry]
        do {
            entries = try JSONDecoder().decode([Entry].self, from: Data(json.utf8))
        } catch {
            throw HarnessError.invalidInput(
                "the model's \"functions\" metadata is not a JSON list of {name, image_size, config}; re-export it with mvit-export"
            )
        }
        let names = entries.map(\.name)
        guard !names.contains(where: \.isEmpty), Set(names).count == names.count else {
            throw HarnessError.invalidInput(
                "the model's \"functions\" metadata names a function twice or not at all; re-export it with mvit-export"
            )
        }
        return entries.map { ModelFunction(name: $0.name, config: $0.config, imageSize: $0.imageSize) }
    }
}
