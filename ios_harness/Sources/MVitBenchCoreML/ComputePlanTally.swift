#if canImport(CoreML)
import CoreML
import Foundation
import MVitBenchCore

/// Where CoreML plans to run each op of the function a row times: MLComputePlan's preferred
/// device per op and its estimated cost, summed per device. MLComputePlan exists from iOS 17.4 /
/// macOS 14.4; on older systems the row says so instead.
enum ComputePlanTally {
    static func split(
        compiledURL: URL, configuration: MLModelConfiguration, functionName: String?
    ) async -> ComputePlanSplit {
        guard #available(iOS 17.4, macOS 14.4, *) else {
            let version = ProcessInfo.processInfo.operatingSystemVersionString
            return .unavailable("MLComputePlan needs iOS 17.4 / macOS 14.4 (this is \(version))")
        }
        do {
            let plan = try await MLComputePlan.load(contentsOf: compiledURL, configuration: configuration)
            var walker = PlanWalker(plan: plan)
            walker.add(plan.modelStructure, functionName: functionName)
            return ComputePlanSplit(ops: walker.ops, costWeights: walker.costWeights)
        } catch {
            return .unavailable("MLComputePlan could not load the model (\(error.localizedDescription))")
        }
    }
}

@available(iOS 17.4, macOS 14.4, *)
private struct PlanWalker {
    let plan: MLComputePlan
    var ops: [ComputeDeviceKind: Int] = [:]
    var costWeights: [ComputeDeviceKind: Double] = [:]

    init(plan: MLComputePlan) {
        self.plan = plan
    }

    /// A program counts the timed function only ("main" when the model has one function); a
    /// pipeline counts its stages (the NonMaximumSuppression stage has no ops to count).
    mutating func add(_ structure: MLModelStructure, functionName: String?) {
        switch structure {
        case .program(let program):
            let name = functionName ?? "main"
            let functions = program.functions[name].map { [$0] } ?? Array(program.functions.values)
            for function in functions {
                add(function.block)
            }
        case .pipeline(let pipeline):
            for stage in pipeline.subModels {
                add(stage, functionName: nil)
            }
        case .neuralNetwork(let network):
            for layer in network.layers {
                if let usage = plan.deviceUsage(for: layer) {
                    count(usage.preferred, weight: nil)
                }
            }
        case .unsupported:
            break
        @unknown default:
            break
        }
    }

    private mutating func add(_ block: MLModelStructure.Program.Block) {
        for operation in block.operations {
            // Weight constants have no device usage: they are not counted as ops.
            if let usage = plan.deviceUsage(for: operation) {
                count(usage.preferred, weight: plan.estimatedCost(of: operation)?.weight)
            }
            for inner in operation.blocks {
                add(inner)
            }
        }
    }

    private mutating func count(_ device: MLComputeDevice, weight: Double?) {
        let kind: ComputeDeviceKind
        switch device {
        case .cpu:
            kind = .cpu
        case .gpu:
            kind = .gpu
        case .neuralEngine:
            kind = .neuralEngine
        @unknown default:
            return
        }
        ops[kind, default: 0] += 1
        if let weight {
            costWeights[kind, default: 0] += weight
        }
    }
}
#endif
