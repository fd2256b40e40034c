import Foundation

/// Reads and writes results documents, the same files `mvit-bench report/compare` read.
public enum ResultsFile {
    public static func encode(_ report: BenchmarkReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(report)
        data.append(0x0A)
        return data
    }

    public static func decode(_ data: Data, source: String = "results") throws -> BenchmarkReport {
        struct VersionProbe: Decodable {
            let schemaVersion: Int?
            enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version" }
        }
        let probe: VersionProbe
        do {
            probe = try JSONDecoder().decode(VersionProbe.self, from: data)
        } catch {
            throw HarnessError.invalidInput("\(source): not a JSON object; pass a results JSON file")
        }
        guard probe.schemaVersion == BenchmarkReport.currentSchemaVersion else {
            let found = probe.schemaVersion.map { String($0) } ?? "missing"
            throw HarnessError.invalidInput(
                "\(source): schema_version \(found) is not supported (this harness reads version \(BenchmarkReport.currentSchemaVersion))"
            )
        }
        do {
            return try JSONDecoder().decode(BenchmarkReport.self, from: data)
        } catch {
            throw HarnessError.invalidInput("\(source): not a valid benchmark results file (\(error))")
        }
    }

    /// Writes atomically (`.atomic` writes a temporary file beside `url`, then renames it), so
    /// an interrupted run never leaves half a file behind.
    public static func write(_ report: BenchmarkReport, to url: URL) throws {
        let data = try encode(report)
        let folder = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try data.write(to: url, options: .atomic)
        } catch {
            throw HarnessError.io("cannot write \(url.path): \(error.localizedDescription); pass a writable --out path")
        }
    }
}
