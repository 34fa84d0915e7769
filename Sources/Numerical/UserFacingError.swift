import Foundation

/// An error of ours whose description is written for the user: what went wrong, where, and what to
/// do. Every module's errors conform, so that every executable prints them the same way.
public protocol UserFacingError: Error, CustomStringConvertible {}

extension Error {
    /// The text to show a user: our own errors describe themselves; system errors (URLError,
    /// CocoaError) give their localized description rather than a debug dump.
    public var userMessage: String {
        if let ours = self as? UserFacingError { return ours.description }
        let error = self as NSError
        let text = error.localizedDescription
        // ENOSPC from the system (Foundation's writes say it as CocoaError.fileWriteOutOfSpace),
        // SQLITE_FULL (13) from SQLite: said plainly, with what to do.
        let posixFull = error.domain == NSPOSIXErrorDomain && error.code == Int(ENOSPC)
        let foundationFull = error.domain == NSCocoaErrorDomain && error.code == CocoaError.fileWriteOutOfSpace.rawValue
        if posixFull || foundationFull || text.contains("database or disk is full") || text.contains("SQLite error 13") {
            return "the disk is full (\(text)): free some space and run again; outputs written before are untouched"
        }
        return text
    }
}

/// A piece of untrusted input as an error may quote it: at most `limit` characters (then "..."),
/// control characters and other unprintables escaped (`\u{1B}`), so that a 10 MB field or a
/// terminal escape sequence never reaches the terminal whole or raw.
public func excerpt(_ text: some StringProtocol, limit: Int = 40) -> String {
    var out = ""
    for (index, scalar) in text.unicodeScalars.enumerated() {
        guard index < limit else {
            out += "..."
            break
        }
        let printable = scalar.properties.generalCategory != .control && scalar.properties.generalCategory != .format
            && scalar.properties.generalCategory != .unassigned && scalar.properties.generalCategory != .privateUse
        out += printable ? String(scalar) : "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
    }
    return out
}
