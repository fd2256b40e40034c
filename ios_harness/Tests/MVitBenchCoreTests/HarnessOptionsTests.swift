import XCTest
@testable import MVitBenchCore

final class HarnessOptionsTests: XCTestCase {
    func testDefaultsAreTheRunnersDefaults() throws {
        guard case .run(let options) = try HarnessOptions.parse(["m.mlpackage"]) else {
            return XCTFail("expected a run")
        }
        XCTAssertEqual(options.modelPaths, ["m.mlpackage"])
        XCTAssertEqual(options.plan.runs, 100)
        XCTAssertEqual(options.plan.warmupRuns, 10)
        XCTAssertEqual(options.plan.computeUnits, ComputeUnitSetting.allCases)
        XCTAssertEqual(options.outPath, "harness_results.json")
    }

    func testAllFlags() throws {
        let arguments = ["a.mlpackage", "--runs", "5", "--warmup", "0",
                         "--compute-units", "cpuOnly,all", "--out", "r.json", "--quiet", "b.mlmodelc"]
        guard case .run(let options) = try HarnessOptions.parse(arguments) else {
            return XCTFail("expected a run")
        }
        XCTAssertEqual(options.modelPaths, ["a.mlpackage", "b.mlmodelc"])
        XCTAssertEqual(options.plan, BenchmarkPlan(runs: 5, warmupRuns: 0, computeUnits: [.cpuOnly, .all]))
        XCTAssertEqual(options.outPath, "r.json")
        XCTAssertTrue(options.quiet)
    }

    func testBadInputIsOneClearError() {
        let cases: [[String]] = [
            [],
            ["m.mlpackage", "--runs", "0"],
            ["m.mlpackage", "--runs"],
            ["m.mlpackage", "--compute-units", "gpuOnly"],
            ["m.mlpackage", "--frobnicate"],
        ]
        for arguments in cases {
            XCTAssertThrowsError(try HarnessOptions.parse(arguments), "\(arguments)") { error in
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }
}
