import Dataset
import Foundation
import GRDB
import PipelineKit

/// What is wrong with one column of a row, before the file and the row are known.
struct ColumnProblem: Error {
    var message: String
}

/// Reading a row of an artifact as a record: every column checked for its type (a NULL, text where a
/// number or a blob belongs) and its meaning (a pixels blob of the wrong length, a label out of range
/// or not in the file's classes). Artifacts can be edited by hand; a bad row becomes an error naming the file,
/// the table and the row, never a crash of the stage reading it.
enum RecordColumns {
    static func describe(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return "NULL"
        case let .int64(number): return "the integer \(number)"
        case let .double(number): return "the number \(number)"
        case let .string(text): return "the text '\(text.prefix(40))'"
        case let .blob(data): return "a blob of \(data.count) bytes"
        }
    }

    static func integer(_ row: Row, _ column: String) throws -> Int {
        let value: DatabaseValue = row[column]
        guard case let .int64(number) = value.storage else { throw ColumnProblem(message: "\(column): expected an integer, found \(describe(value))") }
        return Int(number)
    }

    /// A REAL (or an INTEGER, which SQLite may store for a whole number).
    static func number(_ row: Row, _ column: String) throws -> Double {
        let value: DatabaseValue = row[column]
        switch value.storage {
        case let .double(number): return number
        case let .int64(number): return Double(number)
        default: throw ColumnProblem(message: "\(column): expected a number, found \(describe(value))")
        }
    }

    static func text(_ row: Row, _ column: String) throws -> String {
        let value: DatabaseValue = row[column]
        guard case let .string(text) = value.storage else { throw ColumnProblem(message: "\(column): expected text, found \(describe(value))") }
        return text
    }

    static func blob(_ row: Row, _ column: String, bytes: Int? = nil, multipleOf unit: Int = 1) throws -> Data {
        let value: DatabaseValue = row[column]
        guard case let .blob(data) = value.storage else { throw ColumnProblem(message: "\(column): expected a blob, found \(describe(value))") }
        if let bytes, data.count != bytes { throw ColumnProblem(message: "\(column): expected \(bytes) bytes, found \(data.count)") }
        guard data.count % unit == 0 else { throw ColumnProblem(message: "\(column): expected a multiple of \(unit) bytes, found \(data.count)") }
        return data
    }

    /// A label: in range, and one of `classes` where the file has them.
    static func label(_ row: Row, _ column: String = "label", classes: ClassNames? = nil) throws -> Int {
        let label = try integer(row, column)
        guard (0 ..< ClassNames.labelLimit).contains(label) else {
            throw ColumnProblem(message: "\(column): expected a label from 0 to \(ClassNames.labelLimit - 1), found \(label)")
        }
        if let classes, !classes.contains(label) {
            throw ColumnProblem(message: "\(column): \(label) is none of the file's classes (table classes: \(classes.labels.map(String.init).joined(separator: ", ")))")
        }
        return label
    }

    /// A split name as ingest allows it (`SplitName`).
    static func split(_ row: Row, _ column: String = "split") throws -> String {
        let split = try text(row, column)
        guard SplitName.isValid(split) else {
            throw ColumnProblem(message: "\(column): expected a split name of letters, digits, '-' and '_', found '\(split.prefix(40))'")
        }
        return split
    }

    /// Every row of `sql` through `make`, a problem reported with `file`, `table` and the row's id.
    static func fetch<Record>(_ db: Database, file: String, table: String, sql: String, arguments: StatementArguments = [],
                              _ make: (Row) throws -> Record) throws -> [Record] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { try checked($0, file: file, table: table, make) }
    }

    /// One row through `make`, a problem reported with `file`, `table` and the row (`which`, or its
    /// id), and what to do (`advice`).
    static func checked<Record>(_ row: Row, file: String, table: String, which: String? = nil,
                                advice: String = "the file was changed after it was written: rerun the stage that makes it",
                                _ make: (Row) throws -> Record) throws -> Record {
        do {
            return try make(row)
        } catch let problem as ColumnProblem {
            let id: DatabaseValue = row.hasColumn("id") ? row["id"] : .null
            let named = which ?? (id.isNull ? "a row" : "row id \(describe(id).replacingOccurrences(of: "the integer ", with: ""))")
            throw StageError("\(file): table \(table), \(named): \(problem.message); \(advice)")
        }
    }
}
