#if canImport(CoreML)
import CoreML
import CoreVideo
import Foundation
import MVitBenchCore

/// Builds one input for any model from its input description. The values are a fixed
/// deterministic pattern, not a photo: latency does not depend on pixel values, and a pattern
/// (rather than zeros) keeps any data-dependent fast path from flattering the numbers.
enum ModelInputFactory {
    /// An input of `size` ([height, width], one of `inputSizes(for:)`; nil: the default size).
    static func makeInput(for description: MLModelDescription, size: [Int]? = nil) throws -> MLFeatureProvider {
        var features: [String: MLFeatureValue] = [:]
        // Optional inputs (a Vision detector's iouThreshold / confidenceThreshold) are left out,
        // so the model runs with the defaults it was exported with, as an app's would.
        for (name, feature) in description.inputDescriptionsByName where !feature.isOptional {
            features[name] = try value(for: feature, size: size)
        }
        return try MLDictionaryFeatureProvider(dictionary: features)
    }

    /// Every size the model takes, [height, width], the default first: each size of an
    /// EnumeratedShapes image input (`mvit-export --coreml-shapes enumerated`) or multi-array
    /// input, else the one size it has. Each is timed as its own row, since an app may feed any
    /// of them and their latencies differ. A range-flexible input is timed at its default size.
    static func inputSizes(for description: MLModelDescription) -> [[Int]] {
        let inputs = description.inputDescriptionsByName.values.sorted { $0.name < $1.name }
        var sizes = [inputSize(for: description)]
        if let image = inputs.compactMap(\.imageConstraint).first {
            if image.sizeConstraint.type == .enumerated {
                sizes += image.sizeConstraint.enumeratedImageSizes.map { [$0.pixelsHigh, $0.pixelsWide] }
            }
        } else if let array = inputs.compactMap(\.multiArrayConstraint).first,
                  array.shapeConstraint.type == .enumerated {
            sizes += array.shapeConstraint.enumeratedShapes.map { shape in
                Array(shape.map(\.intValue).suffix(2))
            }
        }
        var seen = Set<[Int]>()
        return sizes.filter { seen.insert($0).inserted }
    }

    /// The pixel buffer of the model's first image input in `input`, for Vision.
    static func pixelBuffer(of input: MLFeatureProvider, _ description: MLModelDescription) -> CVPixelBuffer? {
        let images = description.inputDescriptionsByName.values.filter { $0.type == .image }
        guard let name = images.map(\.name).sorted().first else { return nil }
        return input.featureValue(for: name)?.imageBufferValue
    }

    /// [height, width] of the first image input, or the last two dimensions of the first
    /// multi-array input (NCHW), for the results row.
    static func inputSize(for description: MLModelDescription) -> [Int] {
        let inputs = description.inputDescriptionsByName.values.sorted { $0.name < $1.name }
        if let image = inputs.compactMap(\.imageConstraint).first {
            return [image.pixelsHigh, image.pixelsWide]
        }
        if let array = inputs.compactMap(\.multiArrayConstraint).first {
            let shape = array.shape.map(\.intValue)
            if shape.count >= 2 { return Array(shape.suffix(2)) }
            return [1, max(shape.first ?? 1, 1)]
        }
        return [1, 1]
    }

    /// The leading dimension of a rank-4 multi-array input, else 1 (image inputs are batch 1).
    static func batchSize(for description: MLModelDescription) -> Int {
        let inputs = description.inputDescriptionsByName.values.sorted { $0.name < $1.name }
        if inputs.contains(where: { $0.imageConstraint != nil }) { return 1 }
        if let array = inputs.compactMap(\.multiArrayConstraint).first, array.shape.count == 4 {
            return max(array.shape[0].intValue, 1)
        }
        return 1
    }

    private static func value(for feature: MLFeatureDescription, size: [Int]?) throws -> MLFeatureValue {
        switch feature.type {
        case .image:
            guard let constraint = feature.imageConstraint else { break }
            return MLFeatureValue(pixelBuffer: try pixelBuffer(for: constraint, size: size, name: feature.name))
        case .multiArray:
            guard let constraint = feature.multiArrayConstraint else { break }
            return MLFeatureValue(multiArray: try multiArray(for: constraint, size: size))
        case .int64:
            return MLFeatureValue(int64: 0)
        case .double:
            return MLFeatureValue(double: 0)
        case .string:
            return MLFeatureValue(string: "")
        default:
            break
        }
        throw HarnessError.unsupportedModel(
            "input '\(feature.name)' has a type the harness cannot fill (\(feature.type.rawValue)); "
                + "export with an image or multi-array input"
        )
    }

    /// A pixel buffer of the model's size and format, backed by IOSurface so the GPU and the
    /// Neural Engine can read it without a copy (as a camera frame would be).
    private static func pixelBuffer(
        for constraint: MLImageConstraint, size: [Int]?, name: String
    ) throws -> CVPixelBuffer {
        let height = size?.first ?? constraint.pixelsHigh
        let width = size?.last ?? constraint.pixelsWide
        let format = constraint.pixelFormatType
        let attributes: [CFString: Any] = [
            kCVPixelBufferIOSurfacePropertiesKey: [String: Any](),
            kCVPixelBufferCGImageCompatibilityKey: true,
            kCVPixelBufferCGBitmapContextCompatibilityKey: true,
        ]
        var created: CVPixelBuffer?
        let status = CVPixelBufferCreate(
            kCFAllocatorDefault, width, height, format, attributes as CFDictionary, &created
        )
        guard status == kCVReturnSuccess, let buffer = created else {
            throw HarnessError.unsupportedModel(
                "cannot create a \(width)x\(height) pixel buffer of format \(format) for input '\(name)' (CVReturn \(status))"
            )
        }
        fillPattern(buffer)
        return buffer
    }

    /// Writes byte (x * 7 + y * 13 + plane * 29) mod 256 into every plane: the same bytes on
    /// every run and device, whatever the pixel format.
    private static func fillPattern(_ buffer: CVPixelBuffer) {
        CVPixelBufferLockBaseAddress(buffer, [])
        defer { CVPixelBufferUnlockBaseAddress(buffer, []) }
        let planar = CVPixelBufferIsPlanar(buffer)
        let planes = planar ? CVPixelBufferGetPlaneCount(buffer) : 1
        for plane in 0..<planes {
            let base = planar
                ? CVPixelBufferGetBaseAddressOfPlane(buffer, plane)
                : CVPixelBufferGetBaseAddress(buffer)
            guard let base else { continue }
            let rowBytes = planar
                ? CVPixelBufferGetBytesPerRowOfPlane(buffer, plane)
                : CVPixelBufferGetBytesPerRow(buffer)
            let rows = planar
                ? CVPixelBufferGetHeightOfPlane(buffer, plane)
                : CVPixelBufferGetHeight(buffer)
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            for y in 0..<rows {
                for x in 0..<rowBytes {
                    bytes[y * rowBytes + x] = UInt8(truncatingIfNeeded: x * 7 + y * 13 + plane * 29)
                }
            }
        }
    }

    /// A multi-array of the model's default shape filled with values in [-1, 1): the range of a
    /// normalised image, for models exported with a raw (already normalised) input.
    /// `size`: the enumerated shape ending in [height, width], else the default shape.
    private static func multiArray(for constraint: MLMultiArrayConstraint, size: [Int]?) throws -> MLMultiArray {
        var shape = constraint.shape
        if let size, constraint.shapeConstraint.type == .enumerated,
           let match = constraint.shapeConstraint.enumeratedShapes.first(where: { Array($0.map(\.intValue).suffix(2)) == size }) {
            shape = match
        }
        let array = try MLMultiArray(shape: shape, dataType: constraint.dataType)
        for index in 0..<array.count {
            let value = Double(index % 256) / 128.0 - 1.0
            array[index] = NSNumber(value: value)
        }
        return array
    }
}
#endif
