import Foundation
import GRDB
import PipelineKit

/// Every artifact carries a `meta(key, value)` table naming its kind, its schema version and the
/// content hash of its rows, so that a stage can tell a wrong input at once and the manifest can
/// compare content without rereading the rows.
public enum Artifact {
    public static let kindKey = "kind"
    public static let contentKey = "content_sha256"

    /// A database for writing a new artifact at a temporary path. Without `durable`: no journal and
    /// no syncs, since the file is renamed into place only once complete and discarded otherwise.
    /// With it, a rollback journal keeps each committed transaction intact when the process is
    /// killed, for work that resumes.
    public static func create(at url: URL, durable: Bool = false) throws -> DatabaseQueue {
        unlink(url.path)
        var configuration = writing
        configuration.prepareDatabase { db in
            if !durable { try db.execute(sql: "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF") }
        }
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
        }
        return queue
    }

    /// How a stage opens a file it writes. Someone may be reading it meanwhile (`sqlite3` on a partial
    /// extract, a test counting its rows): a commit that meets their shared lock waits for it instead
    /// of failing at once with "database is locked", which ended the stage.
    public static var writing: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        return configuration
    }

    public static func writeMeta(_ db: Database, _ values: [String: String]) throws {
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, value])
        }
    }

    public static func readMeta(_ db: Database) throws -> [String: String] {
        try keyValues(db, table: "meta")
    }

    /// A `(key, value)` table (meta, params, backbone) as a dictionary.
    public static func keyValues(_ db: Database, table: String) throws -> [String: String] {
        let rows = try Row.fetchAll(db, sql: "SELECT key, value FROM \(table)")
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as String, $0["value"] as String) })
    }

    public static let schemaKey = "schema_version"
    public static let toolKey = "tool_version"

    /// Opens an existing artifact read-only and checks that it is of `kind` and of a schema version
    /// this tool reads (`versions`); `role` names what the stage expected in messages ("an ingest output").
    public static func open(_ url: URL, kind: String, role: String, versions: Set<String>) throws -> (DatabaseQueue, [String: String]) {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw StageError("\(url.path): no such file; expected \(role)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: url.path, configuration: configuration)
            let meta = try queue.read { db -> [String: String]? in
                guard try db.tableExists("meta") else { return nil }
                return try readMeta(db)
            }
            guard let meta, meta[kindKey] == kind else {
                let found = meta?[kindKey].map { "a \($0) artifact" } ?? "a database without a SignTransfer meta table"
                throw StageError("\(url.path): expected \(role) (kind \(kind)), found \(found)")
            }
            guard let version = meta[schemaKey], versions.contains(version) else {
                throw StageError("\(url.path): table meta gives \(schemaKey) \(meta[schemaKey].map { "'\($0)'" } ?? "nothing"), but this tool reads \(kind) version \(versions.sorted().joined(separator: " or ")); rebuild the file with this version of the tool")
            }
            return (queue, meta)
        } catch let error as DatabaseError {
            throw StageError("\(url.path): expected \(role), but SQLite cannot read it: \(error.message ?? "\(error.resultCode)")")
        }
    }
}
