#if canImport(CoreML)
import CoreML
import CoreVideo
import Foundation
import MVitBenchCore
import Vision

/// Times a detector through Vision, the way an app runs it: a `VNCoreMLRequest` performed by a
/// new `VNImageRequestHandler` per frame. Vision turns the outputs of Core ML's
/// NonMaximumSuppression model (`confidence`, `coordinates`) into `VNRecognizedObjectObservation`s;
/// the count of the last run goes beside the latency.
enum VisionTiming {
    /// The detector form Vision reads as objects: an image input, and the pipeline outputs
    /// `mvit-export`'s default CoreML detector (`--coreml-nms vision`) has.
    static func applies(to description: MLModelDescription) -> Bool {
        let outputs = Set(description.outputDescriptionsByName.keys)
        let takesImage = description.inputDescriptionsByName.values.contains { $0.type == .image }
        return takesImage && outputs.isSuperset(of: ["confidence", "coordinates"])
    }

    static func run(model: MLModel, pixelBuffer: CVPixelBuffer, plan: BenchmarkPlan) throws -> VisionRun {
        let visionModel: VNCoreMLModel
        do {
            visionModel = try VNCoreMLModel(for: model)
        } catch {
            throw HarnessError.unsupportedModel(
                "Vision cannot use the model (\(error.localizedDescription))"
            )
        }
        let request = VNCoreMLRequest(model: visionModel)
        // The input already has the model's size; scaleFill keeps Vision from cropping it.
        request.imageCropAndScaleOption = .scaleFill

        func perform() throws -> (ms: Double, objects: Int, others: Int) {
            try autoreleasepool { () throws -> (ms: Double, objects: Int, others: Int) in
                let stopwatch = Stopwatch()
                let handler = VNImageRequestHandler(cvPixelBuffer: pixelBuffer, options: [:])
                try handler.perform([request])
                // The handler (and what it cached for this image) is released after the read.
                let ms = withExtendedLifetime(handler) { stopwatch.elapsedMs }
                let results = request.results ?? []
                let objects = results.filter { $0 is VNRecognizedObjectObservation }.count
                return (ms, objects, results.count - objects)
            }
        }

        let first = try perform()
        for _ in 0..<plan.warmupRuns {
            _ = try perform()
        }
        var last = first
        var timesMs: [Double] = []
        timesMs.reserveCapacity(plan.runs)
        for _ in 0..<plan.runs {
            last = try perform()
            timesMs.append(last.ms)
        }
        return try VisionRun(
            firstRequestMs: first.ms, warmupRuns: plan.warmupRuns, timesMs: timesMs,
            recognizedObjects: last.objects, otherObservations: last.others
        )
    }
}
#endif
