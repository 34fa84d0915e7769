import Foundation

/// An advisory lock on a file (flock), held until `release()` or the process ends, so a killed run
/// never leaves a stale lock behind. The holder's pid is written into the file for messages; the file
/// is removed on release unless others may share it.
public final class FileLock {
    public let url: URL
    private var descriptor: Int32
    private let removeOnRelease: Bool

    /// Takes the lock. `wait`: blocks until the holder lets go (calling `waiting` once first, to say
    /// so); otherwise throws at once, naming the holder. `shared`: many shared holders at once, none
    /// beside an exclusive one (runs share the cache; gc takes it alone); a shared lock's file stays.
    /// `what` says what the lock protects.
    public init(_ url: URL, what: String, wait: Bool = false, shared: Bool = false, waiting: (() -> Void)? = nil) throws {
        self.url = url
        removeOnRelease = !shared
        let mode = shared ? LOCK_SH : LOCK_EX
        var announced = false
        while true {
            descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw StageError("\(url.path): cannot create the lock file: \(String(cString: strerror(errno)))")
            }
            if flock(descriptor, mode | LOCK_NB) != 0 {
                guard wait else {
                    let holder = (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                    close(descriptor)
                    // A class whose properties are all set runs deinit when its init throws: without this,
                    // the refused run's release() would unlink the holder's lock file, and a third run would
                    // lock a new file and run beside the holder (found by a test running three at once).
                    descriptor = -1
                    throw StageError("\(what) is in use by another run\(holder.isEmpty || shared ? "" : " (pid \(holder))"); wait for it to finish, or stop it")
                }
                if !announced { waiting?() }
                announced = true
                while flock(descriptor, mode) != 0 && errno == EINTR {}
            }
            // The holder before us may have removed the file between our open and our flock: then
            // the lock we hold is on a file nobody else will see. Try again on the current file.
            var held = stat(), current = stat()
            if fstat(descriptor, &held) == 0, stat(url.path, &current) == 0, held.st_ino == current.st_ino, held.st_dev == current.st_dev {
                break
            }
            close(descriptor)
        }
        if !shared {
            ftruncate(descriptor, 0)
            let pid = "\(getpid())\n"
            _ = pid.withCString { write(descriptor, $0, strlen($0)) }
        }
    }

    public func release() {
        guard descriptor >= 0 else { return }
        if removeOnRelease { unlink(url.path) }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
