import ArgumentParser
import Backbone
import Dataset
import Foundation
import Numerical
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Classify JPEG or PNG images (or Kaggle CSV rows) with a trained pipeline's head.",
        discussion: """
            Pictures of any size, grey or colour, 8 or 16 bit, are first made what the training \
            originals were (for Sign MNIST: converted to grey and reduced to 28x28 by area averaging), \
            then take exactly the training path: the stored size and resize, grey replicated to RGB, \
            the backbone and weights the head was trained with, the head. Answers are the dataset's \
            class names. A file that cannot be read is reported and the others are still predicted; \
            the exit status is then 1.
            """)

    @Option(help: ArgumentHelp("A pipeline file: its trained head is used.", valueName: "file"))
    var pipeline: String?

    @Option(help: ArgumentHelp("A head.sqlite to use instead of a pipeline's.", valueName: "file"))
    var model: String?

    @Option(help: ArgumentHelp("Rows in the Kaggle CSV layout to predict; prints the accuracy.", valueName: "file"))
    var csv: String?

    @Option(help: "How many classes to show per image, most probable first.")
    var top: Int = 3

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Argument(help: "JPEG or PNG files to classify.")
    var images: [String] = []

    func validate() throws {
        guard (pipeline == nil) != (model == nil) else { throw ValidationError("give --pipeline FILE or --model head.sqlite (one of them)") }
        guard !images.isEmpty || csv != nil else { throw ValidationError("give JPEG or PNG files to classify, or --csv FILE") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func headURL() throws -> URL {
        if let model { return URL(fileURLWithPath: model) }
        return try PipelineStages.trainedHead(pipeline: pipeline!)
    }

    func run() throws {
        let predictor = try Predictor(head: try headURL())
        if predictor.model.params["backbone_random"] == "1" {
            // As extract and train say: a head on a random backbone has learnt little, and its
            // answers are not to be relied on.
            FileHandle.standardError.write(Data("predict: warning: this head was trained on features from a RANDOM backbone (\(predictor.weightsSource)), not ImageNet weights: its answers are close to chance\n".utf8))
        }
        var names: [String] = [], inputs: [Predictor.Picture] = [], truth: [Int?] = []
        var failed = false
        for path in images {
            do {
                var isFolder: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                    throw StageError("a folder, not an image: give the JPEG or PNG files in it (e.g. \(path)/*)")
                }
                guard let data = FileManager.default.contents(atPath: path) else { throw StageError("no such file, or not readable") }
                guard !data.isEmpty else { throw StageError("the file is empty") }
                inputs.append(try predictor.picture(data))
                names.append(path)
                truth.append(nil)
            } catch {
                FileHandle.standardError.write(Data("predict: error: \(path): \(error.userMessage)\n".utf8))
                failed = true
            }
        }
        if let csv {
            let side = KaggleImages.side
            guard let geometry = predictor.sourceGeometry, geometry.width == side, geometry.height == side, geometry.channels == 1 else {
                throw StageError("--csv: the head was trained on \(predictor.sourceGeometry.map { "\($0.width)x\($0.height)x\($0.channels)" } ?? "images of several sizes") originals, not the CSV's \(side)x\(side) grey")
            }
            let vocabulary = ClassNames(zip(predictor.model.labels, predictor.model.names).map { ($0, $1) })
            let (rows, _) = try KaggleCSV.read(URL(fileURLWithPath: csv), classes: vocabulary)
            for row in 0 ..< rows.count {
                inputs.append(Predictor.Picture(pixels: Array(rows.image(row)), width: side, height: side, channels: 1))
                names.append("\(csv):\(rows.lines[row])")
                truth.append(Int(rows.labels[row]))
            }
        }
        let predictions = predictor.predict(inputs, top: top)
        if json {
            let entries: [[String: Any]] = zip(names, predictions).map { name, prediction in
                ["input": name, "top": prediction.top.map { ["class": predictor.name($0.label), "label": $0.label, "probability": Double($0.probability)] }]
            }
            let data = try JSONSerialization.data(withJSONObject: ["weights": predictor.weightsSource, "size": predictor.size, "predictions": entries],
                                                  options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let width = max(5, names.map(\.count).max() ?? 0)
            print("image".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (1 ... top).map { "top-\($0)      " }.joined())
            for (name, prediction) in zip(names, predictions) {
                let cells = prediction.top.map { "\(predictor.name($0.label)) \(String(format: "%.3f", $0.probability))".padding(toLength: max(11, predictor.model.names.map(\.count).max()! + 7), withPad: " ", startingAt: 0) }
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + cells.joined())
            }
        }
        let labelled = zip(truth, predictions).compactMap { label, prediction in label.map { $0 == prediction.top[0].label } }
        if !labelled.isEmpty {
            let right = labelled.filter { $0 }.count
            FileHandle.standardError.write(Data(String(format: "accuracy: %.4f (%d of %d rows)\n", Double(right) / Double(labelled.count), right, labelled.count).utf8))
        }
        if failed { throw ExitCode(1) }
    }
}

PredictCommand.runAsTool()
