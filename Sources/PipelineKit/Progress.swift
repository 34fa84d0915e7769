import Foundation

/// Progress of a long stage on stderr: a redrawn bar with rate and ETA on a terminal, a plain line
/// every few seconds otherwise (logs, CI), so that neither floods nor stays silent.
public final class ProgressBar {
    let label: String
    let total: Int
    let unit: String
    let interactive: Bool
    let started = Date()
    public private(set) var done = 0
    var lastDraw = Date.distantPast

    public init(_ label: String, total: Int, unit: String = "images") {
        self.label = label
        self.total = total
        self.unit = unit
        interactive = isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    public func advance(by count: Int) {
        done += count
        let now = Date()
        let interval = interactive ? 0.1 : 5
        if now.timeIntervalSince(lastDraw) >= interval || done >= total {
            lastDraw = now
            draw(now)
        }
    }

    public func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    var rate: Double { Double(done) / max(Date().timeIntervalSince(started), 1e-9) }

    func draw(_ now: Date) {
        let elapsed = now.timeIntervalSince(started)
        let rate = Double(done) / max(elapsed, 1e-9)
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let figures = "\(done)/\(total) \(unit), \(Self.format(rate: rate))/s, ETA \(Self.clock(remaining))"
        if interactive {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(figures)  ".utf8))
        } else {
            FileHandle.standardError.write(Data("\(label): \(figures)\n".utf8))
        }
    }

    static func format(rate: Double) -> String { rate >= 100 ? String(format: "%.0f", rate) : String(format: "%.1f", rate) }

    static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return String(format: "%d:%02d", whole / 60, whole % 60)
    }
}
