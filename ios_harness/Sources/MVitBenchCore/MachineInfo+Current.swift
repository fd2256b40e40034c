import Foundation

extension MachineInfo {
    /// Describes the device this process runs on. `libraries` names the runtime versions the
    /// caller knows (the CoreML backend adds CoreML's framework version).
    public static func current(libraries: [String: String] = [:]) -> MachineInfo {
        let process = ProcessInfo.processInfo
        let version = process.operatingSystemVersion
        var osVersion = "\(version.majorVersion).\(version.minorVersion).\(version.patchVersion)"
        if let build = SystemControl.string("kern.osversion") {
            osVersion += " (\(build))"
        }
        let model = deviceModel()
        return MachineInfo(
            os: operatingSystemName(),
            osVersion: osVersion,
            deviceModel: model,
            cpu: SystemControl.string("machdep.cpu.brand_string") ?? model,
            cores: process.activeProcessorCount,
            thermalState: ThermalStateName.current(),
            lowPowerMode: lowPowerModeEnabled(),
            libraries: libraries
        )
    }

    static func operatingSystemName() -> String {
        #if targetEnvironment(simulator)
        return "iOS Simulator"
        #elseif os(iOS)
        return "iOS"
        #elseif os(macOS)
        return "macOS"
        #elseif os(Linux)
        return "Linux"
        #else
        return "unknown"
        #endif
    }

    /// "iPhone13,2" on a phone, "Mac14,2" on a Mac: the identifier Apple's spec pages use.
    static func deviceModel() -> String {
        #if targetEnvironment(simulator)
        // In the simulator hw.machine is the Mac's CPU; the simulated device is in the environment.
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] {
            return simulated
        }
        #endif
        #if os(macOS)
        // On a Mac hw.machine is only "arm64"; hw.model names the machine.
        if let model = SystemControl.string("hw.model") { return model }
        #endif
        if let machine = SystemControl.string("hw.machine") { return machine }
        return unameMachine()
    }

    static func unameMachine() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func lowPowerModeEnabled() -> Bool? {
        #if canImport(Darwin)
        return ProcessInfo.processInfo.isLowPowerModeEnabled
        #else
        return nil
        #endif
    }
}

/// Names for ProcessInfo.ThermalState, and the worst state seen during a run: a phone that
/// reached "serious" throttles, so a reader must know even if it had cooled by the end.
public enum ThermalStateName {
    public static func current() -> String? {
        #if canImport(Darwin)
        return name(of: ProcessInfo.processInfo.thermalState)
        #else
        return nil
        #endif
    }

    #if canImport(Darwin)
    public static func name(of state: ProcessInfo.ThermalState) -> String {
        switch state {
        case .nominal: return "nominal"
        case .fair: return "fair"
        case .serious: return "serious"
        case .critical: return "critical"
        @unknown default: return "unknown"
        }
    }
    #endif

    static let severityOrder = ["nominal", "fair", "serious", "critical"]

    /// The hotter of two states; unknown or nil names never hide a known one.
    public static func worst(_ a: String?, _ b: String?) -> String? {
        guard let a else { return b }
        guard let b else { return a }
        let rankA = severityOrder.firstIndex(of: a) ?? -1
        let rankB = severityOrder.firstIndex(of: b) ?? -1
        return rankB > rankA ? b : a
    }
}

/// sysctlbyname string values (Apple platforms); nil where the key or the call is missing.
enum SystemControl {
    static func string(_ name: String) -> String? {
        #if canImport(Darwin)
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        let value = String(cString: buffer)
        return value.isEmpty ? nil : value
        #else
        return nil
        #endif
    }
}
