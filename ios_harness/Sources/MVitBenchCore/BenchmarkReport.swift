import Foundation

// The benchmark results file, schema_version 1: the same document `mvit-bench run` writes
// (benchmarks/results.schema.json). JSON keys are spelled out in CodingKeys, never derived by
// a key strategy, so tests/test_ios_harness.py can read them from this file and check them
// against the Python schema. Nil optionals are left out by the synthesized encoder; the schema
// allows that for every nullable key and readers treat a missing nullable key as null.

public struct BenchmarkReport: Codable, Equatable, Sendable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var tool: ToolInfo
    public var createdUtc: String
    public var machine: MachineInfo
    /// Measured fp32 GEMM throughput; the harness does not measure it on the phone.
    public var gemmGflops: Double?
    public var results: [BenchmarkResult]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case tool
        case createdUtc = "created_utc"
        case machine
        case gemmGflops = "gemm_gflops"
        case results
    }

    public init(
        tool: ToolInfo = .harness, createdUtc: String = UTCTimestamp.now(),
        machine: MachineInfo, gemmGflops: Double? = nil, results: [BenchmarkResult]
    ) {
        self.schemaVersion = BenchmarkReport.currentSchemaVersion
        self.tool = tool
        self.createdUtc = createdUtc
        self.machine = machine
        self.gemmGflops = gemmGflops
        self.results = results
    }
}

public struct ToolInfo: Codable, Equatable, Sendable {
    public var name: String
    public var version: String

    enum CodingKeys: String, CodingKey {
        case name
        case version
    }

    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    public static let harnessVersion = "0.1.0"
    public static let harness = ToolInfo(name: "mvit-ios-harness", version: harnessVersion)
}

public struct MachineInfo: Codable, Equatable, Sendable {
    public var os: String
    public var osVersion: String
    public var deviceModel: String
    public var cpu: String
    public var cores: Int
    /// ProcessInfo.ThermalState name ("nominal", "fair", "serious", "critical").
    public var thermalState: String?
    public var lowPowerMode: Bool?
    public var libraries: [String: String]

    enum CodingKeys: String, CodingKey {
        case os
        case osVersion = "os_version"
        case deviceModel = "device_model"
        case cpu
        case cores
        case thermalState = "thermal_state"
        case lowPowerMode = "low_power_mode"
        case libraries
    }

    public init(
        os: String, osVersion: String, deviceModel: String, cpu: String, cores: Int,
        thermalState: String?, lowPowerMode: Bool?, libraries: [String: String]
    ) {
        self.os = os
        self.osVersion = osVersion
        self.deviceModel = deviceModel
        self.cpu = cpu
        self.cores = cores
        self.thermalState = thermalState
        self.lowPowerMode = lowPowerMode
        self.libraries = libraries
    }
}

/// One model x compute-unit measurement.
public struct BenchmarkResult: Codable, Equatable, Sendable {
    public var model: String
    /// "A", "B" or "-" when the artefact does not say.
    public var config: String
    public var task: String
    public var runtime: String
    public var computeUnits: ComputeUnitSetting?
    public var precision: String
    /// [height, width] in pixels.
    public var inputSize: [Int]
    public var batch: Int
    /// CoreML chooses its own threads, so the harness leaves this nil.
    public var threads: Int?
    public var artefact: String?
    public var compileMs: Double?
    public var loadMs: Double
    public var firstInferenceMs: Double
    public var warmupRuns: Int
    public var runs: Int
    public var timesMs: [Double]
    public var stats: LatencyStats
    public var peakRssMb: Double?
    public var macs: Int?
    public var gflopsPerS: Double?
    /// The function of a multifunction package this row timed; nil for a single-function model.
    public var function: String?
    /// The same model through Vision, for detectors Vision turns into recognised objects.
    public var vision: VisionRun?
    /// Where CoreML plans to run each op with this row's compute units.
    public var computePlan: ComputePlanSplit?

    enum CodingKeys: String, CodingKey {
        case model
        case config
        case task
        case runtime
        case computeUnits = "compute_units"
        case precision
        case inputSize = "input_size"
        case batch
        case threads
        case artefact
        case compileMs = "compile_ms"
        case loadMs = "load_ms"
        case firstInferenceMs = "first_inference_ms"
        case warmupRuns = "warmup_runs"
        case runs
        case timesMs = "times_ms"
        case stats
        case peakRssMb = "peak_rss_mb"
        case macs
        case gflopsPerS = "gflops_per_s"
        case function
        case vision
        case computePlan = "compute_plan"
    }

    public init(
        model: String, config: String, task: String, runtime: String,
        computeUnits: ComputeUnitSetting?, precision: String, inputSize: [Int], batch: Int,
        threads: Int? = nil, artefact: String?, compileMs: Double?, loadMs: Double,
        firstInferenceMs: Double, warmupRuns: Int, timesMs: [Double], peakRssMb: Double?,
        macs: Int? = nil, gflopsPerS: Double? = nil, function: String? = nil, vision: VisionRun? = nil,
        computePlan: ComputePlanSplit? = nil
    ) throws {
        self.model = model
        self.config = config
        self.task = task
        self.runtime = runtime
        self.computeUnits = computeUnits
        self.precision = precision
        self.inputSize = inputSize
        self.batch = batch
        self.threads = threads
        self.artefact = artefact
        self.compileMs = compileMs
        self.loadMs = loadMs
        self.firstInferenceMs = firstInferenceMs
        self.warmupRuns = warmupRuns
        self.runs = timesMs.count
        self.timesMs = timesMs
        self.stats = try LatencyStats(timesMs: timesMs)
        self.peakRssMb = peakRssMb
        self.macs = macs
        self.gflopsPerS = gflopsPerS
        self.function = function
        self.vision = vision
        self.computePlan = computePlan
    }
}
