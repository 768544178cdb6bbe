import CSQLite
import Testing

@Suite("The C libraries the uplink is built on")
struct LibraryVersionTests {
    @Test("libsqlite3 is at least Debian 12's 3.40, with WAL available")
    func sqliteVersion() throws {
        #expect(sqlite3_libversion_number() >= 3_040_000)
        var db: OpaquePointer?
        #expect(sqlite3_open(":memory:", &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        #expect(sqlite3_threadsafe() != 0)
    }
}
