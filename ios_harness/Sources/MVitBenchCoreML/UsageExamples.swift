#if canImport(CoreML)
import CoreImage
import CoreImage.CIFilterBuiltins
import CoreML
import CoreVideo
import Foundation
import Vision

/// The Swift an app needs for each kind of package `mvit-export --target coreml` writes. README.md
/// and ios_harness/README.md show these snippets (between the `snippet:` markers) as they are
/// here; tests/test_swift_usage_docs.py fails when the two drift apart. This file is compiled
/// with the package on a Mac; no Swift toolchain runs it in this repository's CI.
public enum UsageExamples {
    // snippet: classifier
    /// The top label of a classifier (`mvit-export --model mobilevit_xs`) for an upright photo,
    /// fed what the export was verified on: the shortest side resized to the recipe's size and
    /// the centre crop at the model's size (288 then 256 for a 256-pixel MobileViT), both read
    /// from the package's "preprocess" metadata. Vision then gets an image of exactly the
    /// model's size, so its own crop-and-scale option has nothing left to do.
    public static func classify(_ photo: CIImage, with model: MLModel) throws -> (label: String, confidence: Float)? {
        let recipe = try PreprocessRecipe(of: model)
        let request = VNCoreMLRequest(model: try VNCoreMLModel(for: model))
        request.imageCropAndScaleOption = .scaleFill  // the input is already crop x crop
        try VNImageRequestHandler(ciImage: recipe.resizedAndCropped(photo), options: [:]).perform([request])
        guard let best = (request.results as? [VNClassificationObservation])?.first else { return nil }
        return (best.identifier, best.confidence)
    }

    /// The resize-and-crop recipe `mvit-export` records in a package's "preprocess" metadata,
    /// e.g. {"resize_shortest": 288, "crop": 256, ...}.
    public struct PreprocessRecipe: Decodable {
        public var resizeShortest: Int
        public var crop: Int

        enum CodingKeys: String, CodingKey {
            case resizeShortest = "resize_shortest"
            case crop
        }

        public init(of model: MLModel) throws {
            let metadata = model.modelDescription.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
            guard let json = metadata["preprocess"] else {
                throw CocoaError(.coderValueNotFound)  // not an mvit export: no recorded recipe
            }
            self = try JSONDecoder().decode(PreprocessRecipe.self, from: Data(json.utf8))
        }

        /// As mvit's verification does it: sizes rounded half to even, never below the crop, the crop's
        /// top-left corner at ((w - crop) / 2, (h - crop) / 2) rounded down. Core Image's Lanczos
        /// resize is antialiased like Pillow's bilinear shrink, so pixels differ by a few levels,
        /// not in what part of the photo the model sees.
        public func resizedAndCropped(_ photo: CIImage) -> CIImage {
            let width = photo.extent.width, height = photo.extent.height
            let scale = CGFloat(resizeShortest) / min(width, height)
            let newWidth = max(CGFloat(crop), (width * scale).rounded(.toNearestOrEven))
            let newHeight = max(CGFloat(crop), (height * scale).rounded(.toNearestOrEven))
            let resize = CIFilter.lanczosScaleTransform()
            resize.inputImage = photo.transformed(
                by: CGAffineTransform(translationX: -photo.extent.minX, y: -photo.extent.minY)
            )
            resize.scale = Float(newHeight / height)
            resize.aspectRatio = Float((newWidth / width) / (newHeight / height))
            guard let resized = resize.outputImage else { return photo }
            let left = ((newWidth - CGFloat(crop)) / 2).rounded(.down)
            let top = ((newHeight - CGFloat(crop)) / 2).rounded(.down)
            // Core Image's origin is bottom-left: the top offset is counted from the other edge.
            let box = CGRect(x: left, y: newHeight - CGFloat(crop) - top, width: CGFloat(crop), height: CGFloat(crop))
            return resized.cropped(to: box).transformed(by: CGAffineTransform(translationX: -box.minX, y: -box.minY))
        }
    }
    // end snippet

    // snippet: segmenter
    /// The class of every pixel from a segmenter (`mvit-export --model deeplabv3_mobilevit_xs`):
    /// its `mask` output, Int32 [1, H, W] at the model's input size (`logits` are there too).
    public static func segment(_ image: CVPixelBuffer, with model: MLModel) throws -> MLMultiArray? {
        let request = VNCoreMLRequest(model: try VNCoreMLModel(for: model))
        request.imageCropAndScaleOption = .scaleFill  // the mask then covers the whole image
        try VNImageRequestHandler(cvPixelBuffer: image, options: [:]).perform([request])
        let outputs = request.results as? [VNCoreMLFeatureValueObservation] ?? []
        return outputs.first { $0.featureName == "mask" }?.featureValue.multiArrayValue
    }

    /// The class index at pixel (x, y) of that mask; the labels are in the model's metadata.
    public static func classIndex(atX x: Int, y: Int, of mask: MLMultiArray) -> Int {
        mask[[0, NSNumber(value: y), NSNumber(value: x)]].intValue
    }
    // end snippet

    // snippet: detector
    /// Objects from a detector (`mvit-export --model ssdlite_mobilevit_xs`, the default Vision
    /// pipeline). The thresholds replace the exported defaults (IoU 0.5, confidence 0.05).
    public static func detect(
        _ image: CVPixelBuffer, with model: MLModel, iouThreshold: Double = 0.5, confidenceThreshold: Double = 0.3
    ) throws -> [(label: String, confidence: Float, box: CGRect)] {
        let visionModel = try VNCoreMLModel(for: model)
        // Vision feeds the model's inputs other than the image from this provider.
        visionModel.featureProvider = try MLDictionaryFeatureProvider(dictionary: [
            "iouThreshold": iouThreshold, "confidenceThreshold": confidenceThreshold,
        ])
        let request = VNCoreMLRequest(model: visionModel)
        request.imageCropAndScaleOption = .scaleFill
        try VNImageRequestHandler(cvPixelBuffer: image, options: [:]).perform([request])
        let objects = request.results as? [VNRecognizedObjectObservation] ?? []
        // boundingBox is normalised with its origin bottom-left: VNImageRectForNormalizedRect gives pixels.
        return objects.map { ($0.labels.first?.identifier ?? "?", $0.confidence, $0.boundingBox) }
    }
    // end snippet

    // snippet: multifunction
    /// One function of a multifunction package (iOS 18 / macOS 15). Its functions are named like
    /// "A_256" and "A_320"; the package's "functions" metadata lists them, the default first.
    @available(iOS 18.0, macOS 15.0, *)
    public static func load(function name: String, compiledModel url: URL) async throws -> MLModel {
        let configuration = MLModelConfiguration()
        configuration.functionName = name  // nil loads the default function
        return try await MLModel.load(contentsOf: url, configuration: configuration)
    }

    /// The functions a compiled package holds, e.g. ["A_256", "A_320"].
    @available(iOS 18.0, macOS 15.0, *)
    public static func functionNames(compiledModel url: URL) async throws -> [String] {
        try await MLModelAsset(url: url).functionNames
    }
    // end snippet
}
#endif
