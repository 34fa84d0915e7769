import Foundation
import Imaging
import PipelineKit

/// The preprocess stage as a pipeline runs it.
public enum PreprocessStage {
    /// Declared once for the pipeline file, the `preprocess` command line and the fingerprint.
    public static let parameters = [
        ParameterSpec("size", .integer(Preprocess.sizes), default: "224",
                      help: "The side of the square output images, \(Preprocess.sizes.lowerBound) to \(Preprocess.sizes.upperBound)."),
        ParameterSpec("augment", .integer(0 ... 64), default: "0",
                      help: "Augmented views per training image (K), drawn with the ranges below and stored after the originals; validation and test images are never augmented; 0: none, the output exactly as without augmentation.", addedLater: true),
        ParameterSpec("rotation", .number(0 ... 180), default: "10", help: "Views: rotation up to this many degrees either way.", addedLater: true),
        ParameterSpec("translation", .number(0 ... 14), default: "2", help: "Views: shift up to this many pixels (of the 28x28 original) either way, in x and in y.", addedLater: true),
        ParameterSpec("scale", .number(0 ... 0.5), default: "0.1", help: "Views: zoom by a factor within 1 +/- this.", addedLater: true),
        ParameterSpec("brightness", .number(0 ... 1), default: "0.1", help: "Views: add up to this fraction of full scale either way.", addedLater: true),
        ParameterSpec("contrast", .number(0 ... 1), default: "0.2", help: "Views: scale contrast about mid-grey by a factor within 1 +/- this.", addedLater: true),
        ParameterSpec("flip", .choice(["off", "on"]), default: "off",
                      help: "Views: mirror half of them left-right. Off: a mirrored hand is the same letter signed with the other hand, which the data may not want.", addedLater: true),
        ParameterSpec("augment_seed", .integer(0 ... Int(Int32.max)), default: "0", help: "Views: the seed they are drawn with.", addedLater: true),
    ]

    /// The augmentation the canonical values ask for: (views, ranges, seed).
    public static func augmentation(_ parameters: StageParameters) -> (views: Int, ranges: Augment.Ranges, seed: UInt64) {
        let values = parameters.values
        func number(_ key: String) -> Double { values[key].flatMap(Double.init) ?? 0 }
        return (Int(values["augment"] ?? "0") ?? 0,
                Augment.Ranges(rotation: number("rotation"), translation: number("translation"), scale: number("scale"),
                               brightness: number("brightness"), contrast: number("contrast"), flip: values["flip"] == "on"),
                UInt64(values["augment_seed"] ?? "0") ?? 0)
    }

    public static let definition = StageDefinition(
        name: "preprocess",
        version: 1,
        parameters: parameters,
        output: "preprocessed.sqlite",
        sideOutputs: [Preprocess.contactSheetName],
        reads: ["images.sqlite"],
        run: { context in
            let augmentation = augmentation(context.parameters)
            let report = try Preprocess.run(.init(input: context.input!, output: context.output, size: Int(context.parameters.values["size"]!)!,
                                                  augment: augmentation.views, ranges: augmentation.ranges, augmentSeed: augmentation.seed))
            if report.views > 0 { context.log("preprocess: \(report.views) views of the training images (\(augmentation.views) each)") }
            context.log("preprocess: contact sheet \(report.contactSheet.path)")
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images)
        })
}
