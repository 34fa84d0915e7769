import Foundation
import ONNXProto

/// Builds an ONNX graph a node at a time: each node's output gets a fresh name, constants become
/// initializers. Shapes are the ONNX ones (NCHW for images).
struct GraphBuilder {
    var nodes: [Onnx_NodeProto] = []
    var initializers: [Onnx_TensorProto] = []
    private var used: [String: Int] = [:]

    /// A name not used before, from `hint`.
    mutating func fresh(_ hint: String) -> String {
        let count = used[hint, default: 0]
        used[hint] = count + 1
        return count == 0 ? hint : "\(hint)_\(count)"
    }

    /// A float32 initializer of `dims`, little-endian raw data.
    mutating func constant(_ hint: String, _ values: [Float], dims: [Int]) -> String {
        precondition(values.count == dims.reduce(1, *), "\(hint): \(values.count) values for \(dims)")
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(hint)
        tensor.dims = dims.map(Int64.init)
        tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var data = Data(count: values.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() { raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self) }
        }
        tensor.rawData = data
        initializers.append(tensor)
        return tensor.name
    }

    /// An int64 initializer (shapes, axes, slice bounds).
    mutating func constant(_ hint: String, int64 values: [Int]) -> String {
        var tensor = Onnx_TensorProto()
        tensor.name = fresh(hint)
        tensor.dims = [Int64(values.count)]
        tensor.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        tensor.int64Data = values.map(Int64.init)
        initializers.append(tensor)
        return tensor.name
    }

    /// Appends a node; returns its (single) output's name. An input of "" is an omitted optional one.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], name hint: String? = nil) -> String {
        var node = Onnx_NodeProto()
        node.opType = op
        node.input = inputs
        node.attribute = attributes
        node.name = fresh(hint ?? op.lowercased())
        node.output = [node.name]
        nodes.append(node)
        return node.name
    }
}

/// ONNX attributes by kind.
enum Attribute {
    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .int
        attribute.i = Int64(value)
        return attribute
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .ints
        attribute.ints = values.map(Int64.init)
        return attribute
    }

    static func string(_ name: String, _ value: String) -> Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        attribute.name = name
        attribute.type = .string
        attribute.s = Data(value.utf8)
        return attribute
    }
}

/// A float tensor's type: `dims` entries are sizes, or nil for the batch (named `N`).
func tensorValue(_ name: String, dims: [Int?]) -> Onnx_ValueInfoProto {
    var shape = Onnx_TensorShapeProto()
    shape.dim = dims.map { size in
        var dimension = Onnx_TensorShapeProto.Dimension()
        if let size { dimension.dimValue = Int64(size) } else { dimension.dimParam = "N" }
        return dimension
    }
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
    tensor.shape = shape
    var type = Onnx_TypeProto()
    type.tensorType = tensor
    var value = Onnx_ValueInfoProto()
    value.name = name
    value.type = type
    return value
}
