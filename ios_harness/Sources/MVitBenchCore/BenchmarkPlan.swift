/// What to measure for each model: the same defaults as `mvit-bench run` (10 warm-ups, then
/// 100 timed runs, the paper's "mean of 100 runs").
public struct BenchmarkPlan: Equatable, Sendable {
    public static let defaultRuns = 100
    public static let defaultWarmupRuns = 10

    public var runs: Int
    public var warmupRuns: Int
    public var computeUnits: [ComputeUnitSetting]

    public init(
        runs: Int = BenchmarkPlan.defaultRuns,
        warmupRuns: Int = BenchmarkPlan.defaultWarmupRuns,
        computeUnits: [ComputeUnitSetting] = ComputeUnitSetting.allCases
    ) {
        self.runs = runs
        self.warmupRuns = warmupRuns
        self.computeUnits = computeUnits
    }
}
