#if canImport(CoreML)
import Foundation
import MVitBenchCore
import MVitBenchCoreML
#if canImport(CoreAI)
import CoreAI
#endif

/// One benchmark run over whatever artefacts were given: `.aimodel` assets through Core AI where
/// the system has it (iOS / macOS 27), everything else through CoreML. On an older system, or an
/// SDK without Core AI, each `.aimodel` is reported as one failed line and the CoreML packages
/// are still timed: export the same model with `--target coreml` to measure it there.
public enum HarnessRun {
    public static let coreAIExtension = "aimodel"

    public static func run(
        models: [URL], plan: BenchmarkPlan, progress: @escaping CoreMLBenchmark.Progress = { _ in }
    ) async throws -> CoreMLBenchmark.Outcome {
        let assets = models.filter { $0.pathExtension == coreAIExtension }
        for url in assets where !FileManager.default.fileExists(atPath: url.path) {
            throw HarnessError.invalidInput("\(url.path): no such model; pass an .aimodel, .mlpackage, .mlmodel or .mlmodelc path")
        }
        var rows: [BenchmarkResult] = []
        var failures: [String] = []
        for url in assets {
            do {
                let measured = try await coreAIRows(url, plan: plan, progress: progress)
                rows += measured.rows
                failures += measured.failures
            } catch {
                let line = (error as? HarnessError)?.description ?? "\(url.lastPathComponent): \(error.localizedDescription)"
                failures.append(line)
                progress("failed: \(line)")
            }
        }
        let coreML = try await CoreMLBenchmark(plan: plan).run(
            models: models.filter { $0.pathExtension != coreAIExtension }, progress: progress
        )
        let report = BenchmarkReport(machine: coreML.report.machine, results: rows + coreML.report.results)
        return CoreMLBenchmark.Outcome(report: report, failures: failures + coreML.failures)
    }

    static func coreAIRows(
        _ url: URL, plan: BenchmarkPlan, progress: @escaping CoreMLBenchmark.Progress
    ) async throws -> (rows: [BenchmarkResult], failures: [String]) {
        #if canImport(CoreAI)
        if #available(iOS 27.0, macOS 27.0, *) {
            return try await CoreAIBenchmark(plan: plan).measure(assetAt: url, progress: progress)
        }
        #endif
        throw HarnessError.platformUnavailable(
            "\(url.lastPathComponent): Core AI needs iOS 27 / macOS 27 and an SDK that has it; the CoreML packages were timed, export the model with --target coreml to time it here"
        )
    }
}
#endif
