/// Sign Language MNIST labels: label i is the i-th letter, 0 = A ... 24 = Y. J (9) and Z (25) need
/// motion and never occur.
public enum SignLetters {
    public static let validLabels: [Int] = Array(0 ... 24).filter { $0 != 9 }

    public static func isValid(_ label: Int) -> Bool { label >= 0 && label <= 24 && label != 9 }

    public static func letter(_ label: Int) -> String {
        String(UnicodeScalar(UInt8(65 + label)))
    }
}
