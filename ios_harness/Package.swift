// swift-tools-version:5.9
// The mvit on-device benchmark harness: a Foundation-only core (statistics, results JSON,
// argument parsing), a CoreML backend, a Core AI backend (iOS / macOS 27, behind #available,
// with CoreML kept for older systems), a macOS command-line tool, and (in App/) an iOS app.
// No outside packages: the harness must build offline on any Mac with Xcode 15+.
// iOS 16 / macOS 13: what mvit-export's packages target, and the first with the
// cpuAndNeuralEngine compute units. Newer APIs (MLComputePlan, iOS 17.4; multifunction
// loading, iOS 18) run behind #available, so older systems get the rest of each row.
import PackageDescription

let package = Package(
    name: "MVitBench",
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "MVitBenchCore", targets: ["MVitBenchCore"]),
        .library(name: "MVitBenchCoreML", targets: ["MVitBenchCoreML"]),
        .library(name: "MVitBenchCoreAI", targets: ["MVitBenchCoreAI"]),
        .executable(name: "mvit-harness", targets: ["mvit-harness"]),
    ],
    targets: [
        // Foundation only, so `swift test` covers the statistics and the JSON on any platform.
        .target(name: "MVitBenchCore"),
        // Every file is wrapped in `#if canImport(CoreML)`; elsewhere this module is empty.
        .target(name: "MVitBenchCoreML", dependencies: ["MVitBenchCore"]),
        // Core AI rows where the system has it, CoreML for the rest (HarnessRun); files are inside
        // #if canImport(CoreML) or #if canImport(CoreAI), so an older SDK builds an empty module.
        .target(name: "MVitBenchCoreAI", dependencies: ["MVitBenchCore", "MVitBenchCoreML"]),
        .executableTarget(name: "mvit-harness", dependencies: ["MVitBenchCore", "MVitBenchCoreML", "MVitBenchCoreAI"]),
        .testTarget(name: "MVitBenchCoreTests", dependencies: ["MVitBenchCore"]),
    ]
)
