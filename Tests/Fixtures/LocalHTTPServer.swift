import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-file HTTP server on 127.0.0.1 for download tests: serves `body` to every GET, or, when
/// `cutAfter` is set, announces the whole length and closes the connection after that many bytes.
public final class LocalHTTPServer: @unchecked Sendable {
    public let port: UInt16
    private let socketDescriptor: Int32
    private let body: Data
    private let cutAfter: Int?
    private var thread: Thread?
    /// Signalled when the serving thread has returned.
    private let finished = DispatchSemaphore(value: 0)

    public init(body: Data, cutAfter: Int? = nil) throws {
        self.body = body
        self.cutAfter = cutAfter
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        socketDescriptor = descriptor
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        self.thread = thread
        thread.start()
    }

    /// A port on which nothing listens: a server that is down.
    public static func closedPort() throws -> UInt16 {
        let server = try LocalHTTPServer(body: Data())
        let port = server.port
        server.stop()
        return port
    }

    public var url: URL { URL(string: "http://127.0.0.1:\(port)/weights.h5")! }

    /// Stops accepting, waits for the serving thread to return, then closes the socket. Closing first
    /// let the thread's pending accept() run on a reused descriptor number: a stopped server's thread
    /// then answered another test's new server with its own (empty) body.
    public func stop() {
        shutdown(socketDescriptor, Int32(SHUT_RDWR))
        finished.wait()
        close(socketDescriptor)
    }

    private func serve() {
        while true {
            let client = accept(socketDescriptor, nil, nil)
            guard client >= 0 else { return }
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(client, &request, request.count)
            let header = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            send(client, Data(header.utf8))
            send(client, cutAfter.map { body.prefix($0) } ?? body)
            close(client)
        }
    }

    private func send(_ client: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = write(client, raw.baseAddress! + offset, raw.count - offset)
                if sent <= 0 { return }
                offset += sent
            }
        }
    }
}
