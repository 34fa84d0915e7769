import Foundation
import Numerical

/// A problem found at a place in a text file: printed as `FILE:LINE:COLUMN: message`, the form editors
/// and terminals turn into a link.
public struct LocatedError: UserFacingError, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Several located problems found in one pass, reported together so that a user can fix them at once.
public struct LocatedErrors: UserFacingError, Sendable {
    public var errors: [LocatedError]
    /// True when the pass stopped at its error limit, so more problems may follow the ones listed.
    public var truncated: Bool

    public init(_ errors: [LocatedError], truncated: Bool) {
        self.errors = errors
        self.truncated = truncated
    }

    public var description: String {
        var lines = errors.map(\.description)
        if truncated { lines.append("stopped after \(errors.count) errors; raise --max-errors to see more") }
        return lines.joined(separator: "\n")
    }
}

/// An error a stage reports to its user: what went wrong, where, and what to do about it.
public struct StageError: UserFacingError, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
