import Foundation

/// An error of ours whose description is written for the user: what went wrong, where, and what to
/// do. Every module's errors conform, so that every executable prints them the same way.
public protocol UserFacingError: Error, CustomStringConvertible {}

extension Error {
    /// The text to show a user: our own errors describe themselves; system errors (URLError,
    /// CocoaError) give their localized description rather than a debug dump.
    public var userMessage: String {
        if let ours = self as? UserFacingError { return ours.description }
        return (self as NSError).localizedDescription
    }
}
