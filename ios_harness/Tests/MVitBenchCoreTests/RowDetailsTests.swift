import Foundation
import XCTest
@testable import MVitBenchCore

/// The issue-11 parts of a results row: functions of a multifunction package, the Vision run and
/// the compute-plan split, checked against tests/data/harness_golden_multifunction.json (the file
/// tests/test_ios_harness.py validates on the Python side).
final class RowDetailsTests: XCTestCase {
    private var goldenURL: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tests/data/harness_golden_multifunction.json")
    }

    func testMultifunctionGoldenDecodesWithVisionAndPlan() throws {
        let report = try ResultsFile.decode(Data(contentsOf: goldenURL), source: goldenURL.path)
        XCTAssertEqual(report.results.map(\.function), ["A_256", "A_256", "A_320", "A_320"])
        for result in report.results {
            let vision = try XCTUnwrap(result.vision)
            XCTAssertEqual(vision.runs, vision.timesMs.count)
            XCTAssertEqual(try LatencyStats(timesMs: vision.timesMs), vision.stats)
            let plan = try XCTUnwrap(result.computePlan)
            XCTAssertTrue(plan.available)
            XCTAssertEqual(plan.operations, (plan.cpuOps ?? 0) + (plan.gpuOps ?? 0) + (plan.neuralEngineOps ?? 0))
        }
        XCTAssertEqual(try ResultsFile.decode(ResultsFile.encode(report)), report)
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
