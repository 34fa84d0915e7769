import ArgumentParser
import Foundation
import CToolSupport
import Numerical
import PipelineKit

extension ParsableCommand {
    /// Parses the command line and runs the command. Our own errors go to stderr as
    /// `TOOL: error: ...` (input errors already located as FILE:LINE:COLUMN as they are) with exit
    /// status 1; argument errors and help are ArgumentParser's.
    public static func runAsTool() -> Never {
        // A line at a time even into a file or a pipe, so that a log shows stdout's lines in order
        // with stderr's (warnings, progress) and a killed run loses none of what it said.
        signtransfer_line_buffer_stdout()
        signtransfer_keep_freed_memory()
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

/// For a process another one started and waits for (a sweep's variant run): killed when that parent
/// dies, by Ctrl-C or kill -9, instead of running on unseen. Foundation's Process puts each child in
/// its own process group, so a signal to the parent's group does not reach it.
public func endWithParentProcess() throws {
    if signtransfer_die_with_parent() != 0 { throw StageError("the process that started this run has ended; stopping") }
}

/// The folder of this process's own executable, where the package's other tools sit: read from
/// Linux's /proc/self/exe, never from argv[0], which is relative to wherever the user ran from (or a
/// bare name PATH found): a sweep started as `pipeline sweep ...` from another folder would otherwise
/// run whatever `./pipeline` was there, or nothing.
public let toolsFolder: URL = {
    #if os(Linux)
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        return URL(fileURLWithPath: path).deletingLastPathComponent()
    }
    #endif
    return (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().deletingLastPathComponent()
}()
