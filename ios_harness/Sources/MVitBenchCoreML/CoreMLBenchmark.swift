#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// Times CoreML models the way `mvit-bench run` times the other runtimes: compile, first load,
/// first prediction, untimed warm-ups, then every timed prediction kept in `times_ms`.
public struct CoreMLBenchmark: Sendable {
    public var plan: BenchmarkPlan

    public init(plan: BenchmarkPlan) {
        self.plan = plan
    }

    /// One line of progress, e.g. "mobilevit_xxs cpuAndNeuralEngine: timed 40/100".
    public typealias Progress = @Sendable (String) -> Void

    /// The rows that ran, and one line per model x setting that could not (say, a model the GPU
    /// path refuses): one failure does not throw away the rows measured before it.
    public struct Outcome: Sendable {
        public var report: BenchmarkReport
        public var failures: [String]
    }

    /// Runs every model under every compute-unit setting of the plan. Missing files are refused
    /// before anything runs. The machine description is taken at the end, with the hottest
    /// thermal state seen during the run.
    public func run(models: [URL], progress: Progress = { _ in }) throws -> Outcome {
        for url in models where !FileManager.default.fileExists(atPath: url.path) {
            throw HarnessError.invalidInput(
                "\(url.path): no such model; pass a .mlpackage, .mlmodel or .mlmodelc path"
            )
        }
        var results: [BenchmarkResult] = []
        var failures: [String] = []
        var hottest = ThermalStateName.current()
        for url in models {
            for setting in plan.computeUnits {
                do {
                    results.append(try measure(modelAt: url, computeUnits: setting, progress: progress))
                } catch {
                    let line = (error as? HarnessError)?.description
                        ?? "\(url.lastPathComponent) \(setting.rawValue): \(error.localizedDescription)"
                    failures.append(line)
                    progress("failed: \(line)")
                }
                hottest = ThermalStateName.worst(hottest, ThermalStateName.current())
            }
        }
        var machine = MachineInfo.current(libraries: CoreMLBenchmark.libraryVersions())
        machine.thermalState = ThermalStateName.worst(hottest, machine.thermalState)
        return Outcome(report: BenchmarkReport(machine: machine, results: results), failures: failures)
    }

    /// One results row. The model is compiled afresh for every setting so each row carries its
    /// own compile and first-load time, and the compiled copy is deleted afterwards.
    public func measure(
        modelAt url: URL, computeUnits setting: ComputeUnitSetting, progress: Progress = { _ in }
    ) throws -> BenchmarkResult {
        let label = url.deletingPathExtension().lastPathComponent
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw HarnessError.invalidInput(
                "\(url.path): no such model; pass a .mlpackage, .mlmodel or .mlmodelc path"
            )
        }

        let compiledURL: URL
        var compileMs: Double?
        var temporaryCompiledURL: URL?
        if url.pathExtension == "mlmodelc" {
            compiledURL = url  // already compiled (e.g. by Xcode): nothing to time
        } else {
            progress("\(label) \(setting.rawValue): compiling")
            do {
                let compiled = try Stopwatch.time { try MLModel.compileModel(at: url) }
                compiledURL = compiled.value
                compileMs = compiled.ms
                temporaryCompiledURL = compiled.value
            } catch {
                throw HarnessError.unsupportedModel(
                    "\(url.lastPathComponent): CoreML cannot compile it (\(error.localizedDescription)); re-export with mvit-export --target coreml"
                )
            }
        }
        defer {
            if let temporaryCompiledURL {
                try? FileManager.default.removeItem(at: temporaryCompiledURL)
            }
        }

        progress("\(label) \(setting.rawValue): loading")
        let configuration = MLModelConfiguration()
        configuration.computeUnits = setting.mlComputeUnits
        let loaded: (value: MLModel, ms: Double)
        do {
            loaded = try Stopwatch.time { try MLModel(contentsOf: compiledURL, configuration: configuration) }
        } catch {
            throw HarnessError.unsupportedModel(
                "\(url.lastPathComponent): CoreML cannot load it with \(setting.rawValue) (\(error.localizedDescription))"
            )
        }
        let model = loaded.value
        let description = model.modelDescription
        let input = try ModelInputFactory.makeInput(for: description)

        let firstInferenceMs = try timedPrediction(model, input)
        for index in 0..<plan.warmupRuns {
            _ = try timedPrediction(model, input)
            if (index + 1) % 10 == 0 {
                progress("\(label) \(setting.rawValue): warm-up \(index + 1)/\(plan.warmupRuns)")
            }
        }
        var timesMs: [Double] = []
        timesMs.reserveCapacity(plan.runs)
        for index in 0..<plan.runs {
            timesMs.append(try timedPrediction(model, input))
            if (index + 1) % 10 == 0 || index + 1 == plan.runs {
                progress("\(label) \(setting.rawValue): timed \(index + 1)/\(plan.runs)")
            }
        }

        let labels = ModelLabels(description: description, artefactURL: url)
        return try BenchmarkResult(
            model: labels.model,
            config: labels.config,
            task: labels.task,
            runtime: "coreml",
            computeUnits: setting,
            precision: labels.precision,
            inputSize: ModelInputFactory.inputSize(for: description),
            batch: ModelInputFactory.batchSize(for: description),
            artefact: url.lastPathComponent,
            compileMs: compileMs,
            loadMs: loaded.ms,
            firstInferenceMs: firstInferenceMs,
            warmupRuns: plan.warmupRuns,
            timesMs: timesMs,
            peakRssMb: PeakMemory.residentMB()
        )
    }

    /// One synchronous prediction in milliseconds. The autorelease pool is drained outside the
    /// timed span, so freeing the outputs is not billed to the model.
    private func timedPrediction(_ model: MLModel, _ input: MLFeatureProvider) throws -> Double {
        try autoreleasepool { () throws -> Double in
            let stopwatch = Stopwatch()
            _ = try model.prediction(from: input)
            return stopwatch.elapsedMs
        }
    }

    /// CoreML has no version API; its framework bundle's build version (e.g. "3402.3.1", which
    /// changes with every OS update, unlike the short version) identifies the build.
    public static func libraryVersions() -> [String: String] {
        let bundle = Bundle(for: MLModel.self)
        let version = bundle.object(forInfoDictionaryKey: "CFBundleVersion") as? String
            ?? bundle.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String
            ?? "unknown"
        return ["coreml": version, "mvit-ios-harness": ToolInfo.harnessVersion]
    }
}
#endif
