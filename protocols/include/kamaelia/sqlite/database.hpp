#ifndef KAMAELIA_SQLITE_DATABASE_HPP
#define KAMAELIA_SQLITE_DATABASE_HPP

// One SQLite connection and its prepared statements, shared by the stores
// (the greylist's and the board's): a statement is finalized with its owner
// and reset after every use on every path, and every failure is worded one
// way for an operator -- "<what> database PATH is locked by another process
// (begin: database is locked)" -- and thrown as the store's own error type.
// Not thread-safe (SQLITE_OPEN_NOMUTEX): a store uses it from one thread;
// interrupt() alone may be called from another.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace kamaelia::sqlite {

// Thrown by database::fail. `message` is the whole operator-facing text.
using error_factory = std::function<void(const std::string& message)>; // must throw

// What a result code means for an operator: "locked by another process",
// "corrupt (or not a SQLite database)", "not writable", "on a full disk"...
const char* kind_of(int rc) noexcept;

class database {
public:
    struct options {
        std::string label = "sqlite"; // "greylist", "board": the first word of every message
        bool read_only = false;
        int busy_timeout_ms = 5000; // a locked database waits this long, then fails
    };

    // Opens (creating unless read-only) the file at `path`; failures throw
    // through `raise`.
    database(const std::string& path, options o, error_factory raise);
    ~database(); // statements made on it must be gone first
    database(const database&) = delete;
    database& operator=(const database&) = delete;

    sqlite3* handle() const noexcept { return db_; }
    const std::string& path() const noexcept { return path_; }

    // Throws the store's error for result code `rc` met while doing `what`.
    [[noreturn]] void fail(int rc, std::string_view what) const;
    // The same with a message of the store's own, after the "<label> database PATH".
    [[noreturn]] void fail_with(std::string_view text) const;

    void exec(const char* sql); // one or more statements, no results
    // PRAGMA journal_mode=WAL; fails unless the database ends in WAL.
    void use_wal();
    // Writable (a write lock can be taken) and PRAGMA quick_check says "ok",
    // else fails, telling the operator to move the file aside.
    void check_sound();
    std::int64_t pragma_int(const char* pragma); // PRAGMA user_version and the like

    bool in_transaction() const noexcept;
    std::int64_t last_insert_rowid() const noexcept;
    int changes() const noexcept;
    // Thread-safe: makes a long statement on the store's thread give up.
    void interrupt() noexcept;

private:
    std::string path_;
    options opt_;
    error_factory raise_;
    sqlite3* db_ = nullptr;
};

// A prepared statement; `use` binds, steps and reads one execution and
// resets the statement when it goes, whatever happened.
class statement {
public:
    // `persistent`: kept for the store's life (SQLITE_PREPARE_PERSISTENT).
    statement(database& db, const char* sql, bool persistent = true);
    ~statement();
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    class use {
    public:
        explicit use(statement& s) noexcept : s_(s) {}
        ~use();
        use(const use&) = delete;
        use& operator=(const use&) = delete;

        use& bind(int i, std::int64_t v);
        use& bind(int i, std::string_view text);
        // The same without a copy: `text` must outlive this use.
        use& bind_ref(int i, std::string_view text);
        use& blob(int i, std::string_view bytes);
        // True while there is a row; a failure throws, naming `what`.
        bool step(std::string_view what = "step");
        void run(std::string_view what = "step") { step(what); }
        std::int64_t i64(int col) const noexcept;
        std::string text(int col) const; // TEXT or BLOB, embedded NULs kept

    private:
        use& bound(int rc); // a bind's result: fails unless SQLITE_OK
        statement& s_;
    };

private:
    database& db_;
    sqlite3_stmt* st_ = nullptr;
};

} // namespace kamaelia::sqlite

#endif
