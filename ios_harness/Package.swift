// swift-tools-version:5.9
// The mvit on-device benchmark harness: a Foundation-only core (statistics, results JSON,
// argument parsing), a CoreML backend, a macOS command-line tool, and (in App/) an iOS app.
// No outside packages: the harness must build offline on any Mac with Xcode 15+.
import PackageDescription

let package = Package(
    name: "MVitBench",
    platforms: [.macOS(.v14), .iOS(.v17)],
    products: [
        .library(name: "MVitBenchCore", targets: ["MVitBenchCore"]),
        .library(name: "MVitBenchCoreML", targets: ["MVitBenchCoreML"]),
        .executable(name: "mvit-harness", targets: ["mvit-harness"]),
    ],
    targets: [
        // Foundation only, so `swift test` covers the statistics and the JSON on any platform.
        .target(name: "MVitBenchCore"),
        // Every file is wrapped in `#if canImport(CoreML)`; elsewhere this module is empty.
        .target(name: "MVitBenchCoreML", dependencies: ["MVitBenchCore"]),
        .executableTarget(name: "mvit-harness", dependencies: ["MVitBenchCore", "MVitBenchCoreML"]),
        .testTarget(name: "MVitBenchCoreTests", dependencies: ["MVitBenchCore"]),
    ]
)
