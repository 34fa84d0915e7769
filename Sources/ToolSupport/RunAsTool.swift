import ArgumentParser
import Foundation
import Numerical
import PipelineKit

extension ParsableCommand {
    /// Parses the command line and runs the command. Our own errors go to stderr as
    /// `TOOL: error: ...` (input errors already located as FILE:LINE:COLUMN as they are) with exit
    /// status 1; argument errors and help are ArgumentParser's.
    public static func runAsTool() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            Foundation.exit(0)
        } catch let error as LocatedErrors {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            Foundation.exit(1)
        } catch let error as UserFacingError {
            FileHandle.standardError.write(Data("\(configuration.commandName ?? "signtransfer"): error: \(error.description)\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}
