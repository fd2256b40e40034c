import Foundation
import XCTest
@testable import MVitBenchCore

/// tests/data/harness_golden.json is the file the Python side ingests in
/// tests/test_ios_harness.py; decoding it here and recomputing its statistics ties both sides to
/// one sample.
final class GoldenFileTests: XCTestCase {
    private var goldenURL: URL { dataFile("harness_golden.json") }

    private func dataFile(_ name: String) -> URL {
        // ios_harness/Tests/MVitBenchCoreTests/<this file> -> repository root.
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tests/data/\(name)")
    }

    /// Rows on which squaring with pow() and with a multiply round differently
    /// (tests/data/make_harness_golden_stats.py): the statistics must still equal Python's bits.
    func testStatsOfRowsWherePowAndMultiplyDifferAreBitIdentical() throws {
        struct Row: Decodable {
            let timesMs: [Double]
            let stats: LatencyStats
            let stdMsWithPow: Double

            enum CodingKeys: String, CodingKey {
                case timesMs = "times_ms"
                case stats
                case stdMsWithPow = "std_ms_with_pow"
            }
        }
        struct Rows: Decodable { let rows: [Row] }
        let rows = try JSONDecoder().decode(Rows.self, from: Data(contentsOf: dataFile("harness_golden_stats.json"))).rows
        XCTAssertFalse(rows.isEmpty)
        for row in rows {
            let stats = try LatencyStats(timesMs: row.timesMs)
            XCTAssertEqual(stats, row.stats)
            XCTAssertEqual(stats.stdMs.bitPattern, row.stats.stdMs.bitPattern)
            XCTAssertNotEqual(stats.stdMs, row.stdMsWithPow)
        }
    }

    /// Every golden (made from real exports by tests/harness_goldens.py) decodes, and its
    /// statistics, Vision runs included, are recomputed bit for bit.
    func testGoldensDecodeAndStatsAreRecomputedBitForBit() throws {
        let names = ["harness_golden.json", "harness_golden_multifunction.json",
                     "harness_golden_enumerated.json", "harness_golden_detector.json"]
        for name in names {
            let url = dataFile(name)
            let report = try ResultsFile.decode(Data(contentsOf: url), source: url.path)
            XCTAssertEqual(report.schemaVersion, 1)
            XCTAssertEqual(report.tool.name, "mvit-ios-harness")
            XCTAssertFalse(report.results.isEmpty, name)
            for result in report.results {
                XCTAssertEqual(result.runtime, "coreml")
                XCTAssertNotNil(result.computeUnits)
                XCTAssertEqual(result.runs, result.timesMs.count)
                XCTAssertEqual(try LatencyStats(timesMs: result.timesMs), result.stats, name)
                if let vision = result.vision {
                    XCTAssertEqual(try LatencyStats(timesMs: vision.timesMs), vision.stats, name)
                }
            }
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
