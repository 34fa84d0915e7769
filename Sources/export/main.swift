import ArgumentParser
import Foundation
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a trained classifier as one ONNX model: images in (Sign MNIST's grey originals, or RGB at the network's size), the classes' probabilities out.",
        usage: "export (--pipeline <file> | --model <head.sqlite>) --output <model.onnx> [--weights <weights>]",
        discussion: """
            For a head trained on square grey originals of one size (Sign MNIST's 28x28), the model \
            takes them as they are: float32 images, N x 28 x 28 x 1, grey levels 0-255 (the Kaggle \
            CSV's pixels), and runs exactly predict's path: the resize to the head's size (bilinear \
            with half-pixel centres, as tf.image.resize, written as two MatMuls with preprocess's own \
            weights, which are exact in float32: ONNX's Resize derives its coordinates from an inexact \
            scale), rounding half to even and clipping, replication to three channels, Keras's caffe \
            preprocessing, ResNet50 with BatchNorm folded as far as the head reads (with a fine-tuned \
            conv5 when the head has one), the pooling, the standardization and the dense head with \
            softmax.

            For any other head (colour photos, images of several sizes) the model takes RGB images \
            already at the network's size, N x S x S x 3, float32 0-255: decoded as TensorFlow's \
            decode_image and resized by tf.image.resize (bilinear), rounded to integers, which is what \
            preprocess stores (and `preprocess --export DIR` writes as PNGs). The graph reverses the \
            channels to BGR for the caffe preprocessing; the rest is as above. Metadata \
            source_geometry and crop_to_aspect_ratio say what the training images were before the \
            resize.

            Opset 17. The class names (output order) and the provenance are in the model's metadata. \
            The backbone weights must be those the head was trained with (MD5 checked).
            """)

    @Option(help: ArgumentHelp("A pipeline file: its trained head is exported.", valueName: "file"))
    var pipeline: String?

    @Option(help: ArgumentHelp("A head.sqlite to export instead of a pipeline's.", valueName: "file"))
    var model: String?

    @Option(help: ArgumentHelp("The ONNX file to write.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("The backbone weights, when not where the head's provenance says (imagenet, a Keras .h5 path, random:SEED).", valueName: "weights"))
    var weights: String?

    func run() throws {
        let head: URL
        switch (pipeline, model) {
        case let (pipeline?, nil): head = try PipelineStages.trainedHead(pipeline: pipeline)
        case let (nil, model?): head = URL(fileURLWithPath: model)
        default: throw ValidationError("give either --pipeline FILE or --model head.sqlite")
        }
        let report = try ExportModel.run(head: head, output: URL(fileURLWithPath: output), weights: try weights.map(WeightsSpec.init))
        print(String(format: "wrote %@: %.1f MB, %d nodes, %d parameters; input %@; output probabilities of %@",
                     output, Double(report.bytes) / 1e6, report.nodes, report.parameters, report.input, report.classes.joined(separator: " ")))
    }
}

ExportCommand.runAsTool()
