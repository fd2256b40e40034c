import XCTest
@testable import MVitBenchCore

final class LatencyStatsTests: XCTestCase {
    // Expected values from benchmarks/stats.py (LatencyStats.from_times) on the same input.
    func testMatchesPythonDefinitions() throws {
        let stats = try LatencyStats(timesMs: [4.0, 1.0, 3.0, 2.0, 10.0])
        XCTAssertEqual(stats.meanMs, 4.0)
        XCTAssertEqual(stats.medianMs, 3.0)
        XCTAssertEqual(stats.p90Ms, 7.6, accuracy: 1e-12)
        XCTAssertEqual(stats.p99Ms, 9.76, accuracy: 1e-12)
        XCTAssertEqual(stats.minMs, 1.0)
        XCTAssertEqual(stats.maxMs, 10.0)
        XCTAssertEqual(stats.stdMs, 10.0.squareRoot(), accuracy: 1e-12)
    }

    func testSingleRunHasZeroSpread() throws {
        let stats = try LatencyStats(timesMs: [2.5])
        XCTAssertEqual(stats.medianMs, 2.5)
        XCTAssertEqual(stats.p99Ms, 2.5)
        XCTAssertEqual(stats.stdMs, 0.0)
    }

    func testNoRunsIsAnError() {
        XCTAssertThrowsError(try LatencyStats(timesMs: []))
    }

    func testExactSumMatchesFsum() {
        // Naive left-to-right addition gives 0.0 here; math.fsum gives 1.0 (and so must we).
        XCTAssertEqual(ExactSum.of([1e100, 1.0, -1e100]), 1.0)
        XCTAssertEqual(ExactSum.of(Array(repeating: 0.1, count: 10)), 1.0)
    }
}
