import CHDF5
import Foundation
import Numerical

public struct WeightsError: UserFacingError, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A read-only HDF5 file. HDF5's own error printing is switched off: every failure becomes a
/// `WeightsError` naming the file and the object.
final class HDF5File {
    let path: String
    private let id: hid_t

    init(_ url: URL) throws {
        path = url.path
        H5Eset_auto2(st_h5e_default(), nil, nil)
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw WeightsError("\(path): no such file, or not readable")
        }
        guard H5Fis_hdf5(path) > 0 else {
            throw WeightsError("\(path): not an HDF5 file (expected Keras weights in .h5 format)")
        }
        let file = H5Fopen(path, st_h5f_acc_rdonly(), st_h5p_default())
        guard file >= 0 else { throw WeightsError("\(path): HDF5 cannot open it; is the file truncated or damaged?") }
        id = file
    }

    deinit { H5Fclose(id) }

    /// Whether every component of an absolute path exists.
    func exists(_ objectPath: String) -> Bool {
        var prefix = ""
        for component in objectPath.split(separator: "/") {
            prefix += "/" + component
            guard H5Lexists(id, prefix, st_h5p_default()) > 0 else { return false }
        }
        return true
    }

    /// A string or string-array attribute of an object, fixed-length or variable-length; nil when the
    /// attribute is absent.
    func strings(attribute name: String, of objectPath: String) throws -> [String]? {
        let object = H5Oopen(id, objectPath, st_h5p_default())
        guard object >= 0 else { throw WeightsError("\(path): cannot open \(objectPath)") }
        defer { H5Oclose(object) }
        guard H5Aexists(object, name) > 0 else { return nil }
        let attribute = H5Aopen(object, name, st_h5p_default())
        guard attribute >= 0 else { throw WeightsError("\(path): cannot open attribute '\(name)' of \(objectPath)") }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute), space = H5Aget_space(attribute)
        defer { H5Tclose(type); H5Sclose(space) }
        guard H5Tget_class(type) == H5T_STRING else {
            throw WeightsError("\(path): attribute '\(name)' of \(objectPath) is not a string attribute")
        }
        let count = Int(H5Sget_simple_extent_npoints(space))
        let memory = H5Tcopy(st_h5t_c_s1())
        defer { H5Tclose(memory) }
        // HDF5 converts between strings of one character set only: h5py writes UTF-8.
        H5Tset_cset(memory, H5Tget_cset(type))
        if H5Tis_variable_str(type) > 0 {
            H5Tset_size(memory, st_h5t_variable())
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attribute, memory, &pointers) >= 0 else {
                throw WeightsError("\(path): cannot read attribute '\(name)' of \(objectPath)")
            }
            defer { H5Dvlen_reclaim(memory, space, st_h5p_default(), &pointers) }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        // h5py writes null-padded strings that fill their size; a null-terminated memory type would
        // drop each name's last character.
        let size = H5Tget_size(type)
        H5Tset_size(memory, size)
        H5Tset_strpad(memory, H5T_STR_NULLPAD)
        var bytes = [UInt8](repeating: 0, count: count * size)
        guard H5Aread(attribute, memory, &bytes) >= 0 else {
            throw WeightsError("\(path): cannot read attribute '\(name)' of \(objectPath)")
        }
        return (0 ..< count).map { index in
            String(decoding: bytes[index * size ..< (index + 1) * size].prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// A numeric dataset converted to float32, with its shape.
    func floats(dataset objectPath: String) throws -> (shape: [Int], values: [Float]) {
        let dataset = H5Dopen2(id, objectPath, st_h5p_default())
        guard dataset >= 0 else { throw WeightsError("\(path): cannot open dataset \(objectPath)") }
        defer { H5Dclose(dataset) }
        // HDF5 converts any stored number to float32 on reading; integers are no weights file's.
        let type = H5Dget_type(dataset)
        let typeClass = H5Tget_class(type)
        let bytes = H5Tget_size(type)
        H5Tclose(type)
        guard typeClass == H5T_FLOAT else {
            throw WeightsError("\(path): dataset \(objectPath) holds \(typeClass == H5T_INTEGER ? "integers" : "values that are not numbers") (\(bytes) bytes each), expected floating-point weights; is this a Keras weights file?")
        }
        let space = H5Dget_space(dataset)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0 else { throw WeightsError("\(path): cannot read the shape of \(objectPath)") }
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(space, &dims, nil)
        let shape = dims.map { Int($0) }
        var values = [Float](repeating: 0, count: shape.reduce(1, *))
        let status = values.withUnsafeMutableBytes {
            H5Dread(dataset, st_h5t_native_float(), st_h5s_all(), st_h5s_all(), st_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else {
            throw WeightsError("\(path): cannot read dataset \(objectPath) (is the file truncated?)")
        }
        return (shape, values)
    }
}
