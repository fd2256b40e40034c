/// Command-line options of `mvit-harness`, parsed by hand (no outside packages).
public struct HarnessOptions: Equatable, Sendable {
    public var modelPaths: [String]
    public var plan: BenchmarkPlan
    public var outPath: String
    public var quiet: Bool

    public static let defaultOutPath = "harness_results.json"

    public static let usage = """
        usage: mvit-harness MODEL [MODEL ...] [--runs N] [--warmup N]
                            [--compute-units LIST] [--out PATH] [--quiet]

        Times each CoreML model (.mlpackage, .mlmodel or compiled .mlmodelc): compile, first
        load, first prediction, warm-ups, then timed predictions, once per compute-unit setting.
        A Core AI asset (.aimodel) is specialised for each setting and timed the same way on
        macOS 27; older systems report it as failed and time the rest.

          --runs N              timed predictions per setting (default \(BenchmarkPlan.defaultRuns))
          --warmup N            untimed predictions before them (default \(BenchmarkPlan.defaultWarmupRuns))
          --compute-units LIST  comma-separated cpuOnly,cpuAndGPU,cpuAndNeuralEngine,all,
                                or every (default every: all four settings)
          --out PATH            results JSON, schema_version 1 (default \(defaultOutPath))
          --quiet               no progress lines
          --help, --version
        """

    public enum Outcome: Equatable, Sendable {
        case run(HarnessOptions)
        case help
        case version
    }

    public static func parse(_ arguments: [String]) throws -> Outcome {
        var modelPaths: [String] = []
        var plan = BenchmarkPlan()
        var outPath = defaultOutPath
        var quiet = false
        var remaining = arguments[...]

        func value(for flag: String) throws -> String {
            guard let next = remaining.popFirst(), !next.hasPrefix("--") else {
                throw HarnessError.invalidArgument("\(flag) needs a value; see mvit-harness --help")
            }
            return next
        }

        func count(for flag: String, minimum: Int) throws -> Int {
            let text = try value(for: flag)
            guard let number = Int(text), number >= minimum else {
                throw HarnessError.invalidArgument(
                    "\(flag) must be a whole number >= \(minimum), got '\(text)'"
                )
            }
            return number
        }

        while let argument = remaining.popFirst() {
            switch argument {
            case "--help", "-h":
                return .help
            case "--version":
                return .version
            case "--runs":
                plan.runs = try count(for: argument, minimum: 1)
            case "--warmup":
                plan.warmupRuns = try count(for: argument, minimum: 0)
            case "--compute-units":
                plan.computeUnits = try ComputeUnitSetting.parseList(value(for: argument))
            case "--out":
                outPath = try value(for: argument)
            case "--quiet":
                quiet = true
            default:
                if argument.hasPrefix("-") {
                    throw HarnessError.invalidArgument(
                        "unknown option '\(argument)'; see mvit-harness --help"
                    )
                }
                modelPaths.append(argument)
            }
        }
        guard !modelPaths.isEmpty else {
            throw HarnessError.invalidArgument(
                "no model given; pass an .aimodel, .mlpackage, .mlmodel or .mlmodelc path (see --help)"
            )
        }
        return .run(HarnessOptions(modelPaths: modelPaths, plan: plan, outPath: outPath, quiet: quiet))
    }
}
