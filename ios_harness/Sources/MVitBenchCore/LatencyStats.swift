import Foundation

/// Summary of the timed runs, computed exactly as `benchmarks/stats.py` does so a phone's numbers
/// and a Linux box's numbers mean the same thing:
/// - mean: fsum(x) / n, with an exactly rounded sum (Python's `math.fsum`);
/// - std: population standard deviation, sqrt(fsum(d * d) / n) with d = x - mean (numpy's
///   default ddof=0); the square is a plain multiply on both sides (Python's `d ** 2` would call
///   pow(), which can differ from the product by one ULP);
/// - percentile p: sort ascending to s[0..n-1], h = (n - 1) * p / 100, lo = floor(h),
///   hi = min(lo + 1, n - 1), value = s[lo] + (h - lo) * (s[hi] - s[lo])
///   (numpy's default "linear", Hyndman & Fan type 7);
/// - median = p50, p90, p99; min = s[0]; max = s[n - 1].
/// Every step is a correctly rounded IEEE operation in the same order as the Python code, so
/// both sides produce bit-identical doubles for the same input.
public struct LatencyStats: Codable, Equatable, Sendable {
    public var meanMs: Double
    public var medianMs: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var minMs: Double
    public var maxMs: Double
    public var stdMs: Double

    enum CodingKeys: String, CodingKey {
        case meanMs = "mean_ms"
        case medianMs = "median_ms"
        case p90Ms = "p90_ms"
        case p99Ms = "p99_ms"
        case minMs = "min_ms"
        case maxMs = "max_ms"
        case stdMs = "std_ms"
    }

    public init(
        meanMs: Double, medianMs: Double, p90Ms: Double, p99Ms: Double,
        minMs: Double, maxMs: Double, stdMs: Double
    ) {
        self.meanMs = meanMs
        self.medianMs = medianMs
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.minMs = minMs
        self.maxMs = maxMs
        self.stdMs = stdMs
    }

    /// Summarises `timesMs`; throws when there is nothing to summarise.
    public init(timesMs: [Double]) throws {
        guard !timesMs.isEmpty else {
            throw HarnessError.invalidInput("no timed runs to summarise; use --runs 1 or more")
        }
        let sorted = timesMs.sorted()
        let count = Double(sorted.count)
        let mean = ExactSum.of(sorted) / count
        let variance = ExactSum.of(sorted.map { time -> Double in
            let deviation = time - mean
            return deviation * deviation
        }) / count
        self.init(
            meanMs: mean,
            medianMs: LatencyStats.percentile(sorted: sorted, 50),
            p90Ms: LatencyStats.percentile(sorted: sorted, 90),
            p99Ms: LatencyStats.percentile(sorted: sorted, 99),
            minMs: sorted[0],
            maxMs: sorted[sorted.count - 1],
            stdMs: variance.squareRoot()
        )
    }

    /// Linear-interpolation percentile of an ascending, non-empty array; `p` in 0...100.
    public static func percentile(sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty, "percentile of no values")
        precondition((0.0...100.0).contains(p), "percentile \(p) outside 0...100")
        let h = Double(sorted.count - 1) * p / 100.0
        let lo = Int(h.rounded(.down))
        let hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }
}

/// An exactly rounded floating-point sum (Shewchuk's partials, the algorithm behind Python's
/// `math.fsum`): naive summation differs from the Python side in the last bits.
enum ExactSum {
    static func of(_ values: [Double]) -> Double {
        // Non-overlapping partial sums, smallest magnitude first; their exact total is the sum.
        var partials: [Double] = []
        for value in values {
            var x = value
            var kept = 0
            for index in partials.indices {
                var y = partials[index]
                if abs(x) < abs(y) { swap(&x, &y) }
                let high = x + y
                let low = y - (high - x)
                if low != 0 {
                    partials[kept] = low
                    kept += 1
                }
                x = high
            }
            partials.removeSubrange(kept..<partials.count)
            if x != 0 { partials.append(x) }
        }
        return roundPartials(partials)
    }

    /// Adds the partials from the largest down, then corrects a result that landed exactly
    /// half-way between two doubles (the remaining partials decide which way to round).
    private static func roundPartials(_ partials: [Double]) -> Double {
        guard var n = partials.indices.last else { return 0.0 }
        var high = partials[n]
        var low = 0.0
        while n > 0 {
            let x = high
            n -= 1
            let y = partials[n]
            high = x + y
            low = y - (high - x)
            if low != 0 { break }
        }
        if n > 0 && ((low < 0 && partials[n - 1] < 0) || (low > 0 && partials[n - 1] > 0)) {
            let y = low * 2
            let x = high + y
            if y == x - high { high = x }
        }
        return high
    }
}
