import Foundation

/// The process's peak resident set size so far, in MB (2^20 bytes), as `mvit-bench run`
/// reports it. It only grows, so a row records the peak up to the end of its own runs.
public enum PeakMemory {
    public static func residentMB() -> Double? {
        #if canImport(Darwin) || canImport(Glibc)
        var usage = rusage()
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        #if canImport(Darwin)
        // Darwin reports ru_maxrss in bytes.
        return Double(usage.ru_maxrss) / 1_048_576.0
        #else
        // Linux reports ru_maxrss in kilobytes.
        return Double(usage.ru_maxrss) / 1024.0
        #endif
        #else
        return nil
        #endif
    }
}
