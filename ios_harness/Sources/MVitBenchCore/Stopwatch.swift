import Foundation

/// Monotonic wall-clock timing in milliseconds. `DispatchTime` reads the same monotonic clock
/// (`mach_absolute_time` on Apple platforms) that Instruments uses, unaffected by clock changes.
public struct Stopwatch: Sendable {
    private let startNanoseconds: UInt64

    public init() {
        startNanoseconds = DispatchTime.now().uptimeNanoseconds
    }

    public var elapsedMs: Double {
        Double(DispatchTime.now().uptimeNanoseconds - startNanoseconds) / 1_000_000.0
    }

    /// Runs `body` once and returns its value with the time it took, read while the value is
    /// held (no release of it can fall inside the span).
    public static func time<T>(_ body: () throws -> T) rethrows -> (value: T, ms: Double) {
        let stopwatch = Stopwatch()
        let value = try body()
        let ms = withExtendedLifetime(value) { stopwatch.elapsedMs }
        return (value, ms)
    }
}
