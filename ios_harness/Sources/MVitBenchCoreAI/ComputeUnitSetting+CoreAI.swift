#if canImport(CoreAI)
import CoreAI
import MVitBenchCore

// Core AI API names and versions in this folder are those of Apple's documentation
// (developer.apple.com/documentation/coreai): its symbol pages give iOS, iPadOS, tvOS,
// visionOS and watchOS 27.0 and leave macOS out, while the framework's own page lists
// macOS 27.0 too; the gates say iOS 27 / macOS 27, which the first build on a Mac confirms.
// Nothing here has been compiled or run: no Swift toolchain exists where mvit is tested.

@available(iOS 27.0, macOS 27.0, *)
extension ComputeUnitSetting {
    /// The specialisation for each setting. Core AI specialises for a *preferred* compute-unit
    /// kind rather than a set: only `SpecializationOptions.cpuOnly` restricts; `cpuAndGPU` and
    /// `cpuAndNeuralEngine` prefer the GPU / Neural Engine and fall back to the other units for
    /// ops the preferred one cannot run (Apple's answer on the developer forums, thread 831967,
    /// "Compute unit specification for function runs"); `all` is `SpecializationOptions.default`.
    var coreAIOptions: SpecializationOptions {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return SpecializationOptions(preferredComputeUnitKind: .gpu)
        case .cpuAndNeuralEngine: return SpecializationOptions(preferredComputeUnitKind: .neuralEngine)
        case .all: return .default
        }
    }

    /// The compute-unit kind this setting needs on the device (nil: the CPU, which every device has).
    var coreAIKind: ComputeUnitKind? {
        switch self {
        case .cpuAndGPU: return .gpu
        case .cpuAndNeuralEngine: return .neuralEngine
        case .cpuOnly, .all: return nil
        }
    }
}
#endif
