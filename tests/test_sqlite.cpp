// The SQLite helper the stores share: one wording for every failure, a
// statement reset on every path, the file's state told at open.
#include <kamaelia/sqlite/database.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace sq = kamaelia::sqlite;
namespace fs = std::filesystem;

namespace {

struct test_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void raise(const std::string& m) { throw test_error(m); }

struct scratch {
    fs::path dir;
    scratch() {
        std::random_device rd;
        dir = fs::temp_directory_path() / ("kamaelia-sqlite-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(dir);
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file(const char* name) const { return (dir / name).string(); }
};

sq::database::options named(const char* label, int busy_ms = 5000) {
    sq::database::options o;
    o.label = label;
    o.busy_timeout_ms = busy_ms;
    return o;
}

} // namespace

TEST_CASE("sqlite: a file that cannot be opened is named, with the reason, in the store's words", "[sqlite][store]") {
    scratch s;
    std::string path = s.file("no-such-dir/x.db");
    CHECK_THROWS_MATCHES(sq::database(path, named("board"), raise), test_error,
                         Catch::Matchers::Predicate<test_error>([&](const test_error& e) {
                             std::string w = e.what();
                             return w.rfind("board database " + path + " is not writable (open: ", 0) == 0;
                         }));
}

TEST_CASE("sqlite: a failed step names the operation, and the statement is reset for the next use", "[sqlite][store]") {
    scratch s;
    sq::database db(s.file("t.db"), named("greylist"), raise);
    db.exec("CREATE TABLE t(k TEXT PRIMARY KEY, v BLOB)");
    sq::statement ins(db, "INSERT INTO t(k, v) VALUES(?1, ?2)");
    sq::statement::use(ins).bind(1, "a").blob(2, std::string("x\0y", 3)).run("insert");
    CHECK(db.changes() == 1);
    CHECK_THROWS_WITH(sq::statement::use(ins).bind(1, "a").bind(2, "again").run("insert"),
                      Catch::StartsWith("greylist database " + s.file("t.db") + " is failing (insert: ") &&
                          Catch::Contains("UNIQUE"));
    // Reset and unbound after the throw: the next use runs with its own values.
    sq::statement::use(ins).bind(1, "b").run("insert");
    sq::statement sel(db, "SELECT k, v FROM t ORDER BY k");
    sq::statement::use q(sel);
    REQUIRE(q.step());
    CHECK(q.text(0) == "a");
    CHECK(q.text(1) == std::string("x\0y", 3)); // a BLOB with a NUL comes back whole
    REQUIRE(q.step());
    CHECK(q.text(0) == "b");
    CHECK(q.text(1).empty()); // b's value was never bound: NULL, not "again"
    CHECK_FALSE(q.step());
}

TEST_CASE("sqlite: a database another connection holds is 'locked by another process'", "[sqlite][store]") {
    scratch s;
    std::string path = s.file("locked.db");
    sq::database a(path, named("greylist"), raise);
    a.use_wal();
    a.exec("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES(1)");
    CHECK(a.in_transaction());
    sq::database b(path, named("greylist", 0), raise);
    CHECK_THROWS_WITH(b.exec("BEGIN IMMEDIATE"), Catch::Contains("is locked by another process (BEGIN IMMEDIATE: "));
    a.exec("COMMIT");
    b.exec("BEGIN IMMEDIATE; COMMIT");
    CHECK(b.pragma_int("PRAGMA user_version") == 0);
}

TEST_CASE("sqlite: a file that is not a database is refused as corrupt, at open", "[sqlite][store][hostile]") {
    scratch s;
    std::string path = s.file("garbage.db");
    std::ofstream(path, std::ios::binary) << std::string(8192, 'G');
    sq::database db(path, named("board"), raise);
    CHECK_THROWS_WITH(db.check_sound(),
                      Catch::Contains("board database " + path + " is corrupt (or not a SQLite database)"));
}

TEST_CASE("sqlite: a read-only database is refused by check_sound with what to look at", "[sqlite][store]") {
    scratch s;
    std::string path = s.file("ro.db");
    {
        sq::database w(path, named("greylist"), raise);
        w.exec("CREATE TABLE t(x)");
    }
    sq::database::options o = named("greylist");
    o.read_only = true;
    sq::database ro(path, o, raise);
    CHECK_THROWS_WITH(ro.check_sound(), Catch::Contains("is not writable (opened read-only: check its permissions"));
}
