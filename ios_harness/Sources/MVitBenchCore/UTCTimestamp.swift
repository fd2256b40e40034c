import Foundation

/// ISO-8601 UTC timestamps as the results schema wants them, e.g. 2026-11-23T04:40:28.123Z.
public enum UTCTimestamp {
    public static func string(from date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    public static func now() -> String {
        string(from: Date())
    }
}
