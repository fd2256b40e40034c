import Foundation
import MVitBenchCore
import MVitBenchCoreAI
import MVitBenchCoreML
import UIKit

/// The app's state: which bundled models and compute units to run, progress, the last report
/// and where its JSON was saved.
@MainActor
final class HarnessModel: ObservableObject {
    @Published var models: [URL] = BundledModels.list()
    @Published var selectedModels: Set<URL> = []
    @Published var computeUnits: Set<ComputeUnitSetting> = Set(ComputeUnitSetting.allCases)
    @Published var runs = BenchmarkPlan.defaultRuns
    @Published var warmupRuns = BenchmarkPlan.defaultWarmupRuns
    @Published private(set) var isRunning = false
    @Published private(set) var status = "Pick models and press Run."
    @Published private(set) var report: BenchmarkReport?
    @Published private(set) var savedFile: URL?
    @Published var errorMessage: String?

    init() {
        selectedModels = Set(models)
    }

    var canRun: Bool {
        !isRunning && !selectedModels.isEmpty && !computeUnits.isEmpty
    }

    func run() {
        let chosenModels = models.filter { selectedModels.contains($0) }
        // Keep the schema's order (cpuOnly, cpuAndGPU, cpuAndNeuralEngine, all) in the table.
        let plan = BenchmarkPlan(
            runs: runs,
            warmupRuns: warmupRuns,
            computeUnits: ComputeUnitSetting.allCases.filter { computeUnits.contains($0) }
        )
        isRunning = true
        errorMessage = nil
        // A dimmed or locked screen changes clocks and thermal headroom mid-run.
        UIApplication.shared.isIdleTimerDisabled = true

        let progress: CoreMLBenchmark.Progress = { [weak self] line in
            Task { @MainActor in self?.status = line }
        }
        Task {
            // CoreML predictions are synchronous; keep them off the main thread.
            let outcome = await Task.detached(priority: .userInitiated) { () async -> Result<CoreMLBenchmark.Outcome, Error> in
                do {
                    return .success(try await HarnessRun.run(models: chosenModels, plan: plan, progress: progress))
                } catch {
                    return .failure(error)
                }
            }.value
            finish(outcome)
        }
    }

    private func finish(_ outcome: Result<CoreMLBenchmark.Outcome, Error>) {
        isRunning = false
        UIApplication.shared.isIdleTimerDisabled = false
        switch outcome {
        case .success(let run) where run.report.results.isEmpty:
            errorMessage = run.failures.joined(separator: "\n")
            status = "No row could run."
        case .success(let run):
            report = run.report
            errorMessage = run.failures.isEmpty ? nil : run.failures.joined(separator: "\n")
            do {
                savedFile = try save(run.report)
                status = "Saved \(savedFile?.lastPathComponent ?? "results") to Documents."
            } catch {
                errorMessage = "\(error)"
                status = "Finished, but the JSON could not be saved."
            }
        case .failure(let error):
            errorMessage = (error as? HarnessError)?.description ?? error.localizedDescription
            status = "Failed."
        }
    }

    /// Documents/mvit-results-<UTC time>.json: visible in the Files app and Finder (the
    /// Info.plist enables file sharing) and copyable with `xcrun devicectl device copy from`.
    private func save(_ report: BenchmarkReport) throws -> URL {
        let documents = try FileManager.default.url(
            for: .documentDirectory, in: .userDomainMask, appropriateFor: nil, create: true
        )
        let stamp = report.createdUtc
            .replacingOccurrences(of: ":", with: "-")
            .replacingOccurrences(of: ".", with: "-")
        let url = documents.appendingPathComponent("mvit-results-\(stamp).json")
        try ResultsFile.write(report, to: url)
        return url
    }
}
