import Foundation

/// The per-row summary the CLI prints and the app shows, with the columns of
/// `mvit-bench report` (milliseconds, two decimals).
public enum ResultsTable {
    public struct Row: Identifiable, Equatable, Sendable {
        public var id: String { "\(model)|\(computeUnits)|\(index)" }
        public var index: Int
        public var model: String
        public var computeUnits: String
        public var loadMs: Double
        public var firstMs: Double
        public var stats: LatencyStats
    }

    public static func rows(_ report: BenchmarkReport) -> [Row] {
        report.results.enumerated().map { index, result in
            Row(
                index: index,
                model: result.config == "-" ? result.model : "\(result.model) (\(result.config))",
                computeUnits: result.computeUnits?.rawValue ?? "-",
                loadMs: result.loadMs,
                firstMs: result.firstInferenceMs,
                stats: result.stats
            )
        }
    }

    public static func format(_ ms: Double) -> String {
        String(format: "%.2f", ms)
    }

    public static func markdown(_ report: BenchmarkReport) -> String {
        var lines = [
            "| model | compute units | load ms | first ms | mean ms | median ms | p90 ms | min ms | std ms |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows(report) {
            let cells = [
                row.model, row.computeUnits, format(row.loadMs), format(row.firstMs),
                format(row.stats.meanMs), format(row.stats.medianMs), format(row.stats.p90Ms),
                format(row.stats.minMs), format(row.stats.stdMs),
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}
