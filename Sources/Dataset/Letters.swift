/// Sign Language MNIST labels: label i is the i-th letter, 0 = A ... 24 = Y. J (9) and Z (25) need
/// motion and never occur.
public enum SignLetters {
    public static let validLabels: [Int] = Array(0 ... 24).filter { $0 != 9 }

    public static func isValid(_ label: Int) -> Bool { label >= 0 && label <= 24 && label != 9 }

    public static func letter(_ label: Int) -> String {
        String(UnicodeScalar(UInt8(65 + label)))
    }
}

/// A split's name (train, test, ...): letters, digits, '_' and '-' only, since it becomes part of
/// file names (`preprocess --export`). Ingest checks it on the way in; reading an artifact checks it
/// again, for a file edited since.
public enum SplitName {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
    }
}
