import Foundation
import Imaging
import PipelineKit

/// The preprocess stage as a pipeline runs it.
public enum PreprocessStage {
    /// Declared once for the pipeline file, the `preprocess` command line and the fingerprint.
    public static let parameters = [
        ParameterSpec("size", .integer(Preprocess.sizes), default: "224",
                      help: "The side of the square output images, \(Preprocess.sizes.lowerBound) to \(Preprocess.sizes.upperBound)."),
        ParameterSpec("crop_to_aspect_ratio", .choice(["off", "on"]), default: "off",
                      help: "on: resize each image's centre square (Keras's crop_to_aspect_ratio=True), keeping its aspect ratio; off: the whole image, stretched to a square (Keras's default).",
                      addedLater: true),
        ParameterSpec("augment", .integer(0 ... 64), default: "0",
                      help: "Augmented views per training image (K), drawn with the ranges below and stored after the originals; validation and test images are never augmented; 0: none, the output exactly as without augmentation.", addedLater: true),
        ParameterSpec("rotation", .number(0 ... 180), default: "10", help: "Views: rotation up to this many degrees either way.", addedLater: true),
        ParameterSpec("translation", .number(0 ... 512), default: "2",
                      help: "Views: shift up to this many pixels of the original (Sign MNIST's 28x28; a photo's own) either way, in x and in y.", addedLater: true),
        ParameterSpec("scale", .number(0 ... 0.5), default: "0.1", help: "Views: zoom by a factor within 1 +/- this.", addedLater: true),
        ParameterSpec("brightness", .number(0 ... 1), default: "0.1", help: "Views: add up to this fraction of full scale either way.", addedLater: true),
        ParameterSpec("contrast", .number(0 ... 1), default: "0.2", help: "Views: scale contrast about mid-grey by a factor within 1 +/- this.", addedLater: true),
        ParameterSpec("flip", .choice(["off", "on"]), default: "off",
                      help: "Views: mirror half of them left-right. Off: a mirrored hand is the same letter signed with the other hand, which the data may not want.", addedLater: true),
        ParameterSpec("augment_seed", .integer(0 ... Int(Int32.max)), default: "0", help: "Views: the seed they are drawn with.", addedLater: true),
    ]

    /// The stage's checked parameters, typed: built once from canonical values, the one way to
    /// `Preprocess.Options`.
    public struct Params: Sendable {
        public var size: Int
        /// Views per training image, their ranges and seed.
        public var views: Int
        public var ranges: Augment.Ranges
        public var seed: UInt64
        public var cropToAspectRatio: Bool

        public init(_ parameters: StageParameters) throws {
            size = try parameters.integer("size")
            cropToAspectRatio = try parameters.text("crop_to_aspect_ratio", default: "off") == "on"
            views = Int(try parameters.number("augment", default: "0"))
            ranges = Augment.Ranges(rotation: try parameters.number("rotation", default: "10"), translation: try parameters.number("translation", default: "2"),
                                    scale: try parameters.number("scale", default: "0.1"), brightness: try parameters.number("brightness", default: "0.1"),
                                    contrast: try parameters.number("contrast", default: "0.2"),
                                    flip: try parameters.text("flip", default: "off") == "on")
            seed = UInt64(try parameters.number("augment_seed", default: "0"))
        }

        public func options(input: URL, output: URL, export: URL? = nil, exportLimit: Int? = nil, exportOriginals: Bool = false) -> Preprocess.Options {
            var options = Preprocess.Options(input: input, output: output, size: size, export: export, exportLimit: exportLimit, exportOriginals: exportOriginals,
                                             augment: views, ranges: ranges, augmentSeed: seed)
            options.cropToAspectRatio = cropToAspectRatio
            return options
        }
    }

    public static let definition = StageDefinition(
        name: "preprocess",
        // 2: the content hash covers each image's RGB pixels (not its PNG bytes, which depend on zlib)
        // and the classes table.
        version: 2,
        parameters: parameters,
        output: "preprocessed.sqlite",
        sideOutputs: [Preprocess.contactSheetName],
        reads: ["images.sqlite"],
        run: { context in
            let params = try Params(context.parameters)
            let report = try Preprocess.run(params.options(input: context.input!, output: context.output))
            if report.views > 0 { context.log("preprocess: \(report.views) views of the training images (\(params.views) each)") }
            context.log("preprocess: contact sheet \(report.contactSheet.path)")
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images)
        })
}
