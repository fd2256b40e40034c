#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// Times CoreML models the way `mvit-bench run` times the other runtimes: compile, first load,
/// first prediction, untimed warm-ups, then every timed prediction kept in `times_ms`; one row
/// per function of a multifunction package and per size of an EnumeratedShapes input, with a
/// Vision run for detectors and the compute plan.
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

        public init(report: BenchmarkReport, failures: [String]) {
            self.report = report
            self.failures = failures
        }
    }

    /// Runs every function of every model under every compute-unit setting of the plan. Missing
    /// files are refused before anything runs. The machine description is taken at the end, with
    /// the hottest thermal state seen during the run.
    public func run(models: [URL], progress: @escaping Progress = { _ in }) async throws -> Outcome {
        for url in models where !FileManager.default.fileExists(atPath: url.path) {
            throw HarnessError.invalidInput(
                "\(url.path): no such model; pass a .mlpackage, .mlmodel or .mlmodelc path"
            )
        }
        var results: [BenchmarkResult] = []
        var failures: [String] = []
        var hottest = ThermalStateName.current()
        func failed(_ error: Error, _ what: String) {
            let line = (error as? HarnessError)?.description ?? "\(what): \(error.localizedDescription)"
            failures.append(line)
            progress("failed: \(line)")
        }
        for url in models {
            let functions: [ModelFunction]
            do {
                functions = try await discoverFunctions(modelAt: url)
            } catch {
                failed(error, url.lastPathComponent)
                continue
            }
            for function in functions {
                for setting in plan.computeUnits {
                    do {
                        results += try await measure(
                            modelAt: url, function: function, computeUnits: setting, progress: progress
                        )
                    } catch {
                        let what = [url.lastPathComponent, function.name, setting.rawValue].compactMap { $0 }
                        failed(error, what.joined(separator: " "))
                    }
                    hottest = ThermalStateName.worst(hottest, ThermalStateName.current())
                }
            }
        }
        var machine = MachineInfo.current(libraries: CoreMLBenchmark.libraryVersions())
        machine.thermalState = ThermalStateName.worst(hottest, machine.thermalState)
        return Outcome(report: BenchmarkReport(machine: machine, results: results), failures: failures)
    }

    /// The functions to time, read from a throwaway compiled copy (not timed).
    func discoverFunctions(modelAt url: URL) async throws -> [ModelFunction] {
        let compiled = try compile(url)
        defer { compiled.cleanup() }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .cpuOnly
        let metadata: [String: String]
        do {
            let model = try MLModel(contentsOf: compiled.url, configuration: configuration)
            metadata = model.modelDescription.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        } catch {
            throw HarnessError.unsupportedModel(
                "\(url.lastPathComponent): CoreML cannot load it (\(error.localizedDescription))"
            )
        }
        return try await FunctionDiscovery.functions(compiledAt: compiled.url, metadata: metadata)
    }

    /// The results rows of one function under one compute-unit setting: one per input size the
    /// model takes (an EnumeratedShapes input has several, the default first; anything else has
    /// one). The model is compiled afresh for every setting so each row carries its own compile
    /// and first-load time, shared by the sizes of one load, and the compiled copy is deleted
    /// afterwards. Detectors are then timed through Vision, and the compute plan of the setting
    /// is read.
    public func measure(
        modelAt url: URL, function: ModelFunction = .only, computeUnits setting: ComputeUnitSetting,
        progress: Progress = { _ in }
    ) async throws -> [BenchmarkResult] {
        let label = [url.deletingPathExtension().lastPathComponent, function.name, setting.rawValue]
            .compactMap { $0 }.joined(separator: " ")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw HarnessError.invalidInput(
                "\(url.path): no such model; pass a .mlpackage, .mlmodel or .mlmodelc path"
            )
        }

        progress("\(label): compiling")
        let compiled = try compile(url)
        defer { compiled.cleanup() }

        progress("\(label): loading")
        let configuration = MLModelConfiguration()
        configuration.computeUnits = setting.mlComputeUnits
        try FunctionDiscovery.select(function, in: configuration, artefact: url.lastPathComponent)
        let loaded: (value: MLModel, ms: Double)
        do {
            loaded = try Stopwatch.time { try MLModel(contentsOf: compiled.url, configuration: configuration) }
        } catch {
            throw HarnessError.unsupportedModel(
                "\(url.lastPathComponent): CoreML cannot load it with \(setting.rawValue) (\(error.localizedDescription))"
            )
        }
        let model = loaded.value
        let description = model.modelDescription
        let sizes = ModelInputFactory.inputSizes(for: description)
        var timed: [SizeTiming] = []
        for size in sizes {
            let sizeLabel = sizes.count > 1 ? "\(label) \(size[1])x\(size[0])" : label
            timed.append(try timeSize(size, of: model, label: sizeLabel, progress: progress))
        }
        let computePlan = await ComputePlanTally.split(
            compiledURL: compiled.url, configuration: configuration, functionName: function.name
        )

        let labels = ModelLabels(description: description, artefactURL: url, function: function)
        return try timed.map { timing in
            try BenchmarkResult(
                model: labels.model,
                config: labels.config,
                task: labels.task,
                runtime: "coreml",
                computeUnits: setting,
                precision: labels.precision,
                inputSize: timing.size,
                batch: ModelInputFactory.batchSize(for: description),
                artefact: url.lastPathComponent,
                compileMs: compiled.ms,
                loadMs: loaded.ms,
                firstInferenceMs: timing.firstInferenceMs,
                warmupRuns: plan.warmupRuns,
                timesMs: timing.timesMs,
                peakRssMb: timing.peakRssMb,
                function: function.name,
                vision: timing.vision,
                computePlan: computePlan
            )
        }
    }

    /// What one input size of a loaded model measured.
    struct SizeTiming {
        var size: [Int]
        var firstInferenceMs: Double
        var timesMs: [Double]
        var vision: VisionRun?
        var peakRssMb: Double?
    }

    /// First prediction, untimed warm-ups and the timed runs at one input size, then the Vision
    /// run where it applies.
    func timeSize(_ size: [Int], of model: MLModel, label: String, progress: Progress) throws -> SizeTiming {
        let description = model.modelDescription
        let input = try ModelInputFactory.makeInput(for: description, size: size)
        let firstInferenceMs = try timedPrediction(model, input)
        for index in 0..<plan.warmupRuns {
            _ = try timedPrediction(model, input)
            if (index + 1) % 10 == 0 {
                progress("\(label): warm-up \(index + 1)/\(plan.warmupRuns)")
            }
        }
        var timesMs: [Double] = []
        timesMs.reserveCapacity(plan.runs)
        for index in 0..<plan.runs {
            timesMs.append(try timedPrediction(model, input))
            if (index + 1) % 10 == 0 || index + 1 == plan.runs {
                progress("\(label): timed \(index + 1)/\(plan.runs)")
            }
        }

        var vision: VisionRun?
        if VisionTiming.applies(to: description), let pixels = ModelInputFactory.pixelBuffer(of: input, description) {
            progress("\(label): Vision")
            do {
                vision = try VisionTiming.run(model: model, pixelBuffer: pixels, plan: plan)
            } catch {
                // The CoreML timings stand: the row is written without a Vision run.
                progress("\(label): no Vision run: \((error as? HarnessError)?.description ?? error.localizedDescription)")
            }
        }
        return SizeTiming(
            size: size, firstInferenceMs: firstInferenceMs, timesMs: timesMs, vision: vision,
            peakRssMb: PeakMemory.residentMB()
        )
    }

    /// A compiled copy of the model and how long compiling took; a precompiled `.mlmodelc` is
    /// used as it is (nothing to time, nothing to delete).
    struct Compiled {
        var url: URL
        var ms: Double?
        var temporary: Bool

        func cleanup() {
            if temporary {
                try? FileManager.default.removeItem(at: url)
            }
        }
    }

    func compile(_ url: URL) throws -> Compiled {
        if url.pathExtension == "mlmodelc" {
            return Compiled(url: url, ms: nil, temporary: false)
        }
        do {
            let compiled = try Stopwatch.time { try MLModel.compileModel(at: url) }
            return Compiled(url: compiled.value, ms: compiled.ms, temporary: true)
        } catch {
            throw HarnessError.unsupportedModel(
                "\(url.lastPathComponent): CoreML cannot compile it (\(error.localizedDescription)); re-export with mvit-export --target coreml"
            )
        }
    }

    /// One synchronous prediction in milliseconds. The stopwatch is read while the output is
    /// still alive: Swift may release a value right after its last use (and a discarded one at
    /// once), which would bill freeing the output's buffers to the model. The output is released
    /// after the read, and the autorelease pool drained after that, both outside the timed span.
    private func timedPrediction(_ model: MLModel, _ input: MLFeatureProvider) throws -> Double {
        try autoreleasepool { () throws -> Double in
            let stopwatch = Stopwatch()
            let output = try model.prediction(from: input)
            return withExtendedLifetime(output) { stopwatch.elapsedMs }
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
