import ArgumentParser
import Foundation
import Numerical
import PipelineKit

extension ParsableCommand {
    /// Parses the command line and runs the command. Our own errors go to stderr as
    /// `TOOL: error: ...` (input errors already located as FILE:LINE:COLUMN as they are) with exit
    /// status 1; argument errors and help are ArgumentParser's.
    public static func runAsTool() -> Never {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        let name = configuration.commandName ?? "signtransfer"
        do {
            try command.run()
            Foundation.exit(0)
        } catch let error as LocatedErrors {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            Foundation.exit(1)
        } catch let error as UserFacingError {
            FileHandle.standardError.write(Data("\(name): error: \(error.description)\n".utf8))
            Foundation.exit(1)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // Help (a help command's run throws), validation errors, clean exits: ArgumentParser's to print.
            exit(withError: error)
        } catch {
            // Anything else (SQLite, the file system): its plain description, in our form.
            FileHandle.standardError.write(Data("\(name): error: \(error.userMessage)\n".utf8))
            Foundation.exit(1)
        }
    }
}
