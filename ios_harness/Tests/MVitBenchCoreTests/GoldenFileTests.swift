import Foundation
import XCTest
@testable import MVitBenchCore

/// tests/data/harness_golden.json is the file the Python side ingests in
/// tests/test_ios_harness.py; decoding it here and recomputing its statistics ties both sides to
/// one sample.
final class GoldenFileTests: XCTestCase {
    private var goldenURL: URL {
        // ios_harness/Tests/MVitBenchCoreTests/<this file> -> repository root.
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tests/data/harness_golden.json")
    }

    func testGoldenDecodesAndStatsAreRecomputedBitForBit() throws {
        let report = try ResultsFile.decode(Data(contentsOf: goldenURL), source: goldenURL.path)
        XCTAssertEqual(report.schemaVersion, 1)
        XCTAssertEqual(report.tool.name, "mvit-ios-harness")
        XCTAssertFalse(report.results.isEmpty)
        for result in report.results {
            XCTAssertEqual(result.runtime, "coreml")
            XCTAssertNotNil(result.computeUnits)
            XCTAssertEqual(result.runs, result.timesMs.count)
            XCTAssertEqual(try LatencyStats(timesMs: result.timesMs), result.stats)
        }
    }

    func testRoundTripKeepsEveryKey() throws {
        let original = try Data(contentsOf: goldenURL)
        let report = try ResultsFile.decode(original)
        let again = try ResultsFile.decode(ResultsFile.encode(report))
        XCTAssertEqual(report, again)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: ResultsFile.encode(report)) as? [String: Any]).keys
        XCTAssertEqual(Set(keys), ["schema_version", "tool", "created_utc", "machine", "results"])
    }

    func testOtherSchemaVersionIsRefused() {
        let data = Data(#"{"schema_version": 2}"#.utf8)
        XCTAssertThrowsError(try ResultsFile.decode(data)) { error in
            XCTAssertTrue("\(error)".contains("schema_version 2"))
        }
    }
}
