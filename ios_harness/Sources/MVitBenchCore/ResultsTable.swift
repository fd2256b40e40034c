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
        /// Vision's mean ms and recognised objects, and the CPU/GPU/Neural Engine op split.
        public var vision: String
        public var computePlan: String
    }

    public static func rows(_ report: BenchmarkReport) -> [Row] {
        report.results.enumerated().map { index, result in
            Row(
                index: index,
                model: label(result),
                computeUnits: result.computeUnits?.rawValue ?? "-",
                loadMs: result.loadMs,
                firstMs: result.firstInferenceMs,
                stats: result.stats,
                vision: result.vision.map { "\(format($0.stats.meanMs)) ms, \($0.recognizedObjects) objects" } ?? "-",
                computePlan: result.computePlan?.summary ?? "-"
            )
        }
    }

    /// "mobilevit_xxs (A)", with the function of a multifunction package after it.
    static func label(_ result: BenchmarkResult) -> String {
        let model = result.config == "-" ? result.model : "\(result.model) (\(result.config))"
        return result.function.map { "\(model) \($0)" } ?? model
    }

    public static func format(_ ms: Double) -> String {
        String(format: "%.2f", ms)
    }

    public static func markdown(_ report: BenchmarkReport) -> String {
        var lines = [
            "| model | compute units | load ms | first ms | mean ms | median ms | p90 ms | min ms | std ms | Vision | ops CPU/GPU/ANE |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in rows(report) {
            let cells = [
                row.model, row.computeUnits, format(row.loadMs), format(row.firstMs),
                format(row.stats.meanMs), format(row.stats.medianMs), format(row.stats.p90Ms),
                format(row.stats.minMs), format(row.stats.stdMs), row.vision, row.computePlan,
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}
