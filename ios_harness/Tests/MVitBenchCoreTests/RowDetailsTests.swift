import Foundation
import XCTest
@testable import MVitBenchCore

/// The parts of a results row beside the timings: functions of a multifunction package, rows per
/// enumerated size, the Vision run and the compute-plan split, checked against the goldens
/// tests/harness_goldens.py makes from real exports (tests/test_harness_goldens.py regenerates them).
final class RowDetailsTests: XCTestCase {
    private func golden(_ name: String) throws -> BenchmarkReport {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tests/data/\(name)")
        return try ResultsFile.decode(Data(contentsOf: url), source: url.path)
    }

    func testMultifunctionGoldenHasARowPerFunctionAndAPlan() throws {
        let report = try golden("harness_golden_multifunction.json")
        XCTAssertEqual(report.results.map(\.function), ["A_64", "A_64", "A_128", "A_128"])
        for result in report.results {
            let plan = try XCTUnwrap(result.computePlan)
            XCTAssertTrue(plan.available)
            XCTAssertEqual(plan.operations, (plan.cpuOps ?? 0) + (plan.gpuOps ?? 0) + (plan.neuralEngineOps ?? 0))
        }
        XCTAssertEqual(try ResultsFile.decode(ResultsFile.encode(report)), report)
    }

    func testEnumeratedGoldenHasARowPerSize() throws {
        let report = try golden("harness_golden_enumerated.json")
        XCTAssertEqual(report.results.map(\.inputSize), [[64, 64], [128, 128], [64, 64], [128, 128]])
        XCTAssertTrue(report.results.allSatisfy { $0.computePlan?.available == false })
    }

    func testDetectorGoldenHasVisionRuns() throws {
        let report = try golden("harness_golden_detector.json")
        XCTAssertFalse(report.results.isEmpty)
        for result in report.results {
            let vision = try XCTUnwrap(result.vision)
            XCTAssertEqual(vision.runs, vision.timesMs.count)
            XCTAssertEqual(try LatencyStats(timesMs: vision.timesMs), vision.stats)
        }
    }

    func testSplitCountsOpsAndNormalisesCost() {
        let split = ComputePlanSplit(ops: [.cpu: 2, .neuralEngine: 6], costWeights: [.cpu: 0.1, .neuralEngine: 0.3])
        XCTAssertEqual(split.operations, 8)
        XCTAssertEqual(split.gpuOps, 0)
        XCTAssertEqual(split.cpuCost ?? -1, 0.25, accuracy: 1e-12)
        XCTAssertEqual(split.neuralEngineCost ?? -1, 0.75, accuracy: 1e-12)
        XCTAssertEqual(split.summary, "2/0/6")
        // A neural network has no cost estimates: counts only.
        XCTAssertNil(ComputePlanSplit(ops: [.gpu: 3], costWeights: [:]).gpuCost)
    }

    func testUnavailablePlanWritesOnlyTheFlagAndTheReason() throws {
        let split = ComputePlanSplit.unavailable("MLComputePlan needs iOS 17.4 / macOS 14.4")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(split)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["available", "reason"])
        XCTAssertEqual(split.summary, "n/a")
    }

    func testFunctionListFromMetadata() throws {
        let json = #"[{"name": "A_256", "image_size": 256, "config": "A"}, {"name": "B_320", "image_size": 320, "config": "B"}]"#
        XCTAssertEqual(try ModelFunction.list(fromMetadata: json), [
            ModelFunction(name: "A_256", config: "A", imageSize: 256),
            ModelFunction(name: "B_320", config: "B", imageSize: 320),
        ])
        XCTAssertEqual(try ModelFunction.list(fromMetadata: nil), [])
        for bad in [#"{"name": "A_256"}"#, #"[{"name": "A_256"}, {"name": "A_256"}]"#, #"[{"name": ""}]"#] {
            XCTAssertThrowsError(try ModelFunction.list(fromMetadata: bad), bad) { error in
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }
}
