import Foundation
import GRDB
import Dataset
import PipelineKit

/// The `classes(label, name)` table, in whichever artifact holds it.
public enum ClassesTable {
    public static func create(_ db: Database) throws {
        try db.execute(sql: "CREATE TABLE classes (label INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL)")
    }

    public static func write(_ db: Database, _ classes: ClassNames, into hasher: inout ContentHasher) throws {
        if try !db.tableExists("classes") { try create(db) }
        let insert = try db.cachedStatement(sql: "INSERT INTO classes VALUES (?, ?)")
        for (label, name) in classes.entries {
            try insert.execute(arguments: [label, name])
            hasher.update(integer: Int64(label))
            hasher.update(name)
        }
    }

    /// The file's vocabulary, checked; nil when the file predates it (no table).
    public static func read(_ db: Database, file: String) throws -> ClassNames? {
        guard try db.tableExists("classes") else { return nil }
        let rows = try RecordColumns.fetch(db, file: file, table: "classes", sql: "SELECT label, name FROM classes ORDER BY label") { row in
            (label: try RecordColumns.integer(row, "label"), name: try RecordColumns.text(row, "name"))
        }
        let classes = ClassNames(rows)
        if let problem = classes.problem { throw StageError("\(file): table classes: \(problem)") }
        return classes
    }

    /// Copies `source`'s table into `db` (nothing when the source has none).
    public static func copy(from source: DatabaseQueue, file: String, into db: Database) throws -> ClassNames? {
        guard let classes = try source.read({ try read($0, file: file) }) else { return nil }
        var ignored = ContentHasher()
        try write(db, classes, into: &ignored)
        return classes
    }
}
