#include <kamaelia/sqlite/database.hpp>

#include <sqlite3.h>

#include <stdexcept>
#include <utility>

namespace kamaelia::sqlite {

const char* kind_of(int rc) noexcept {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return "locked by another process";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return "corrupt (or not a SQLite database)";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN: return "not writable";
    case SQLITE_FULL: return "on a full disk";
    case SQLITE_IOERR: return "failing with an I/O error";
    case SQLITE_INTERRUPT: return "interrupted";
    default: return "failing";
    }
}

database::database(const std::string& path, options o, error_factory raise)
    : path_(path),
      opt_(std::move(o)),
      raise_(std::move(raise)) {
    int flags =
        SQLITE_OPEN_NOMUTEX | (opt_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        fail_with(std::string(" is ") + kind_of(rc) + " (open: " + why + ")");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, opt_.busy_timeout_ms);
}

database::~database() {
    if (db_) sqlite3_close_v2(db_);
}

void database::fail(int rc, std::string_view what) const {
    std::string text = std::string(" is ") + kind_of(rc) + " (" + std::string(what) + ": ";
    text += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    text += ")";
    fail_with(text);
}

void database::fail_with(std::string_view text) const {
    raise_(opt_.label + " database " + path_ + std::string(text));
    throw std::logic_error("sqlite::database: the error factory returned"); // it must throw
}

void database::exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err); // sqlite3_errmsg says the same, and fail() reads it
    if (rc != SQLITE_OK) fail(rc, sql);
}

void database::use_wal() {
    // journal_mode answers with the mode it ended in.
    statement s(*this, "PRAGMA journal_mode=WAL", false);
    statement::use q(s);
    std::string mode = q.step("switch to WAL") ? q.text(0) : std::string();
    if (mode != "wal") fail_with(": cannot use WAL (journal mode " + mode + ")");
}

void database::check_sound() {
    if (sqlite3_db_readonly(db_, "main") == 1)
        fail_with(" is not writable (opened read-only: check its permissions, its directory and chattr +i)");
    exec("BEGIN IMMEDIATE; COMMIT"); // takes the write lock: a file that cannot be written fails here
    statement s(*this, "PRAGMA quick_check", false);
    statement::use q(s);
    std::string verdict = q.step("quick_check") ? q.text(0) : std::string();
    if (verdict.size() > 200) verdict = verdict.substr(0, 200) + "..."; // the first of its complaints
    if (verdict != "ok")
        fail_with(" is corrupt (quick_check: " + verdict + "); move it aside to start with an empty one");
}

std::int64_t database::pragma_int(const char* pragma) {
    statement s(*this, pragma, false);
    statement::use q(s);
    if (!q.step(pragma)) fail_with(std::string(": ") + pragma + " gave no answer");
    return q.i64(0);
}

bool database::in_transaction() const noexcept { return db_ && !sqlite3_get_autocommit(db_); }
std::int64_t database::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }
int database::changes() const noexcept { return sqlite3_changes(db_); }

void database::interrupt() noexcept {
    if (db_) sqlite3_interrupt(db_);
}

statement::statement(database& db, const char* sql, bool persistent) : db_(db) {
    int rc = sqlite3_prepare_v3(db.handle(), sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &st_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, std::string("prepare ") + sql);
}

statement::~statement() { sqlite3_finalize(st_); }

statement::use::~use() {
    sqlite3_reset(s_.st_);
    sqlite3_clear_bindings(s_.st_);
}

statement::use& statement::use::bound(int rc) {
    if (rc != SQLITE_OK) s_.db_.fail(rc, "bind");
    return *this;
}

statement::use& statement::use::bind(int i, std::int64_t v) { return bound(sqlite3_bind_int64(s_.st_, i, v)); }

statement::use& statement::use::bind(int i, std::string_view v) {
    return bound(sqlite3_bind_text(s_.st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}

statement::use& statement::use::bind_ref(int i, std::string_view v) {
    return bound(sqlite3_bind_text(s_.st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
}

statement::use& statement::use::blob(int i, std::string_view v) {
    return bound(sqlite3_bind_blob(s_.st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}

bool statement::use::step(std::string_view what) {
    int rc = sqlite3_step(s_.st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    s_.db_.fail(rc, what);
}

std::int64_t statement::use::i64(int col) const noexcept { return sqlite3_column_int64(s_.st_, col); }

std::string statement::use::text(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_.st_, col));
    int n = sqlite3_column_bytes(s_.st_, col);
    return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

} // namespace kamaelia::sqlite
