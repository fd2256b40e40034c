#if canImport(CoreAI)
import CoreAI
import Foundation
import MVitBenchCore

/// Times `.aimodel` assets with Core AI (iOS / macOS 27) the way CoreMLBenchmark times CoreML
/// packages, and writes the same rows with runtime "coreai": for each compute-unit setting the
/// asset is specialised and loaded (`load_ms`: `AIModel(contentsOf:options:)`, which specialises
/// and caches the result for later loads, so a second run of the harness may load faster), then
/// each function is loaded and run: first run, untimed warm-ups, every timed run. `compile_ms`
/// is null: an `.aimodel` has no separate on-device compile step (`coreai-build` compiles ahead
/// of time on a Mac, outside the harness).
@available(iOS 27.0, macOS 27.0, *)
public struct CoreAIBenchmark: Sendable {
    public var plan: BenchmarkPlan

    public init(plan: BenchmarkPlan) {
        self.plan = plan
    }

    /// Core AI reports no per-op placement at run time (Apple, developer forums thread 831967:
    /// an Instruments trace shows which units ran), so every row says so.
    static let noComputePlan = ComputePlanSplit.unavailable(
        "Core AI has no API for where ops run; an Instruments trace with the Core AI instrument shows the compute units"
    )

    /// The rows of every function under every setting of the plan, and one line per setting that
    /// could not run (a device without the unit, a specialisation that failed).
    public func measure(
        assetAt url: URL, progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> (rows: [BenchmarkResult], failures: [String]) {
        let metadata = try CoreAIAssetInfo.metadata(of: url)
        var rows: [BenchmarkResult] = []
        var failures: [String] = []
        for setting in plan.computeUnits {
            let label = "\(url.deletingPathExtension().lastPathComponent) \(setting.rawValue)"
            if let kind = setting.coreAIKind, !ComputeUnitKind.availableKinds.contains(kind) {
                failures.append("\(url.lastPathComponent) \(setting.rawValue): this device has no such compute unit for Core AI")
                continue
            }
            do {
                rows += try await measure(url, metadata: metadata, setting: setting, label: label, progress: progress)
            } catch {
                let line = (error as? HarnessError)?.description ?? "\(label): \(error.localizedDescription)"
                failures.append(line)
                progress("failed: \(line)")
            }
        }
        return (rows, failures)
    }

    private func measure(
        _ url: URL, metadata: [String: String], setting: ComputeUnitSetting, label: String,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> [BenchmarkResult] {
        progress("\(label): specialising and loading")
        let stopwatch = Stopwatch()
        let model = try await AIModel(contentsOf: url, options: setting.coreAIOptions)
        let loadMs = withExtendedLifetime(model) { stopwatch.elapsedMs }
        let functions = try CoreAIAssetInfo.functions(metadata: metadata, model: model)
        var rows: [BenchmarkResult] = []
        for function in functions {
            guard let name = function.name, let loaded = try model.loadFunction(named: name) else {
                throw HarnessError.unsupportedModel("\(url.lastPathComponent): no function \(function.name ?? "?"); re-export it with mvit-export --target coreai")
            }
            let inputs = try CoreAIAssetInfo.inputs(for: loaded.descriptor, artefact: url.lastPathComponent)
            let timing = try await time(loaded, inputs, label: functions.count > 1 ? "\(label) \(name)" : label, progress: progress)
            let shape = CoreAIAssetInfo.inputSize(of: loaded.descriptor)
            let labels = ArtefactLabels(metadata: metadata, artefactURL: url, functionConfig: function.config)
            rows.append(try BenchmarkResult(
                model: labels.model,
                config: labels.config,
                task: labels.task,
                runtime: "coreai",
                computeUnits: setting,
                precision: labels.precision,
                inputSize: shape.size,
                batch: shape.batch,
                artefact: url.lastPathComponent,
                compileMs: nil,
                loadMs: loadMs,
                firstInferenceMs: timing.firstMs,
                warmupRuns: plan.warmupRuns,
                timesMs: timing.timesMs,
                peakRssMb: PeakMemory.residentMB(),
                function: functions.count > 1 ? name : nil,
                computePlan: CoreAIBenchmark.noComputePlan
            ))
        }
        return rows
    }

    private func time(
        _ function: InferenceFunction, _ inputs: [String: NDArray], label: String,
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> (firstMs: Double, timesMs: [Double]) {
        let firstMs = try await timedRun(function, inputs)
        for index in 0..<plan.warmupRuns {
            _ = try await timedRun(function, inputs)
            if (index + 1) % 10 == 0 {
                progress("\(label): warm-up \(index + 1)/\(plan.warmupRuns)")
            }
        }
        var timesMs: [Double] = []
        timesMs.reserveCapacity(plan.runs)
        for index in 0..<plan.runs {
            timesMs.append(try await timedRun(function, inputs))
            if (index + 1) % 10 == 0 || index + 1 == plan.runs {
                progress("\(label): timed \(index + 1)/\(plan.runs)")
            }
        }
        return (firstMs, timesMs)
    }

    /// One run in milliseconds, read while the outputs are still held: Swift may release a value
    /// right after its last use, which would bill freeing the output buffers to the model.
    private func timedRun(_ function: InferenceFunction, _ inputs: [String: NDArray]) async throws -> Double {
        let stopwatch = Stopwatch()
        let outputs = try await function.run(inputs: inputs)
        return withExtendedLifetime(outputs) { stopwatch.elapsedMs }
    }
}
#endif
