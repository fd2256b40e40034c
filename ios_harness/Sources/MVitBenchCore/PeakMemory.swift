import Foundation

/// The process's peak resident set size so far, in MB (2^20 bytes), as `mvit-bench run`
/// reports it. It only grows, so a row records the peak up to the end of its own runs.
public enum PeakMemory {
    public static func residentMB() -> Double? {
        #if canImport(Darwin)
        var usage = rusage()
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        // Darwin reports ru_maxrss in bytes (Linux would report kilobytes).
        return Double(usage.ru_maxrss) / 1_048_576.0
        #else
        return nil
        #endif
    }
}
