#include <kamaelia/greylist/sqlite_store.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <string>

namespace kamaelia::greylist {

namespace {

// The schema, one step per version; a database at version N runs steps
// N+1.. at open. Version 1 kept only the triplets (no index: expiry scanned
// the table); version 2 adds the index expiry walks in batches and the
// client auto-whitelist.
const char* const migrations[] = {
    // 0 -> 1
    "CREATE TABLE triplets(net TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,"
    " first INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(net, sender, recipient)) WITHOUT ROWID;",
    // 1 -> 2
    "CREATE INDEX triplets_last ON triplets(last);"
    "CREATE TABLE clients(address TEXT PRIMARY KEY NOT NULL, count INTEGER NOT NULL, last INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX clients_last ON clients(last);",
};
static_assert(sizeof(migrations) / sizeof(migrations[0]) == sqlite_store::schema_version);

const char* kind_of(int rc) {
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

// Resets a statement on every exit path.
struct reset_guard {
    sqlite3_stmt* s;
    ~reset_guard() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
};

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

std::string column_text(sqlite3_stmt* s, int i) {
    auto p = sqlite3_column_text(s, i);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
             : std::string();
}

} // namespace

sqlite_store::sqlite_store(const options& o) : opt_(o) {
    int flags = SQLITE_OPEN_NOMUTEX | (o.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(o.path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) fail(rc, "open");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(o.busy_timeout.count()));
    try {
        if (!o.read_only) {
            // journal_mode answers with the mode it ended in.
            sqlite3_stmt* s = prepare("PRAGMA journal_mode=WAL");
            rc = sqlite3_step(s);
            std::string mode = rc == SQLITE_ROW ? column_text(s, 0) : std::string();
            sqlite3_finalize(s);
            if (rc != SQLITE_ROW) fail(rc, "switch to WAL");
            if (mode != "wal") throw store_error("greylist database " + o.path + ": cannot use WAL (journal mode " + mode + ")");
            exec(o.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
            migrate(); // also a real write: an unwritable database fails here, not at the first request
            check_sound();
        } else {
            sqlite3_stmt* s = prepare("PRAGMA user_version");
            rc = sqlite3_step(s);
            int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
            sqlite3_finalize(s);
            if (rc != SQLITE_ROW) fail(rc, "read the schema version");
            if (v != schema_version)
                throw store_error("greylist database " + o.path + ": schema version " + std::to_string(v) +
                                  ", this kamaelia reads " + std::to_string(schema_version) +
                                  " (start the server once to migrate it)");
        }
        begin_ = prepare("BEGIN IMMEDIATE");
        commit_ = prepare("COMMIT");
        rollback_ = prepare("ROLLBACK");
        find_ = prepare("SELECT first, last FROM triplets WHERE net=?1 AND sender=?2 AND recipient=?3");
        insert_ = prepare("INSERT INTO triplets(net, sender, recipient, first, last) VALUES(?1,?2,?3,?4,?5)"
                          " ON CONFLICT DO UPDATE SET first=excluded.first, last=excluded.last");
        update_ = prepare("UPDATE triplets SET first=?4, last=?5 WHERE net=?1 AND sender=?2 AND recipient=?3");
        find_client_ = prepare("SELECT count, last FROM clients WHERE address=?1");
        save_client_ = prepare("INSERT INTO clients(address, count, last) VALUES(?1,?2,?3)"
                               " ON CONFLICT DO UPDATE SET count=excluded.count, last=excluded.last");
        // The index on `last` bounds the scan: only rows older than the
        // shorter of the two ages are looked at.
        expire_ = prepare("DELETE FROM triplets WHERE (net, sender, recipient) IN ("
                          "SELECT net, sender, recipient FROM triplets WHERE last < ?1"
                          " AND (last < ?2 OR (last - first < ?3 AND last < ?4)) LIMIT ?5)");
        expire_clients_ = prepare("DELETE FROM clients WHERE address IN ("
                                  "SELECT address FROM clients WHERE last < ?1 LIMIT ?2)");
        evict_ = prepare("DELETE FROM triplets WHERE (net, sender, recipient) IN ("
                         "SELECT net, sender, recipient FROM triplets ORDER BY last LIMIT ?1)");
        count_rows();
    } catch (...) {
        close();
        throw;
    }
}

sqlite_store::~sqlite_store() { close(); }

void sqlite_store::close() noexcept {
    for (auto** s : {&begin_, &commit_, &rollback_, &find_, &insert_, &update_, &find_client_, &save_client_,
                     &expire_, &expire_clients_, &evict_}) {
        sqlite3_finalize(*s);
        *s = nullptr;
    }
    if (db_) sqlite3_close_v2(db_);
    db_ = nullptr;
}

void sqlite_store::fail(int rc, const char* what) {
    std::string msg = "greylist database " + opt_.path + " is " + kind_of(rc) + " (" + what + ": ";
    msg += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    msg += ")";
    throw store_error(msg);
}

sqlite3_stmt* sqlite_store::prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) fail(rc, "prepare");
    return s;
}

void sqlite_store::exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) fail(rc, sql);
}

void sqlite_store::migrate() {
    exec("BEGIN IMMEDIATE");
    try {
        sqlite3_stmt* s = prepare("PRAGMA user_version");
        int rc = sqlite3_step(s);
        int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW) fail(rc, "read the schema version");
        if (v > schema_version)
            throw store_error("greylist database " + opt_.path + " has schema version " + std::to_string(v) +
                              ", newer than this kamaelia's " + std::to_string(schema_version));
        for (int i = v; i < schema_version; ++i) exec(migrations[i]);
        // Written at every start (PRAGMA takes no parameters; the value is our
        // own constant): the start-up proves the database takes a commit.
        std::string set = "PRAGMA user_version=" + std::to_string(schema_version);
        exec(set.c_str());
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void sqlite_store::check_sound() {
    if (sqlite3_db_readonly(db_, "main") == 1)
        throw store_error("greylist database " + opt_.path + " is not writable (opened read-only: check its "
                          "permissions, its directory and chattr +i)");
    sqlite3_stmt* s = prepare("PRAGMA quick_check");
    int rc = sqlite3_step(s);
    std::string verdict = rc == SQLITE_ROW ? column_text(s, 0) : std::string();
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) fail(rc, "quick_check");
    if (verdict != "ok")
        throw store_error("greylist database " + opt_.path + " is corrupt (quick_check: " + verdict +
                          "); move it aside to start with an empty one");
}

void sqlite_store::count_rows() {
    sqlite3_stmt* s = prepare("SELECT count(*) FROM triplets");
    int rc = sqlite3_step(s);
    rows_ = rc == SQLITE_ROW ? static_cast<std::uint64_t>(sqlite3_column_int64(s, 0)) : 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) fail(rc, "count rows");
}

void sqlite_store::begin() {
    reset_guard g{begin_};
    int rc = sqlite3_step(begin_);
    if (rc != SQLITE_DONE) fail(rc, "begin");
    in_tx_ = true;
}

void sqlite_store::commit() {
    reset_guard g{commit_};
    int rc = sqlite3_step(commit_);
    if (rc != SQLITE_DONE) fail(rc, "commit");
    in_tx_ = false;
}

void sqlite_store::rollback() noexcept {
    if (sqlite3_get_autocommit(db_)) { // nothing open (or SQLite already rolled back)
        in_tx_ = false;
        try {
            count_rows();
        } catch (...) {
        }
        return;
    }
    sqlite3_step(rollback_);
    sqlite3_reset(rollback_);
    in_tx_ = false;
    try {
        count_rows(); // the cached count included what was rolled back
    } catch (...) {
    }
}

std::optional<triplet_row> sqlite_store::find(const triplet& k) {
    reset_guard g{find_};
    bind_text(find_, 1, k.client_net);
    bind_text(find_, 2, k.sender);
    bind_text(find_, 3, k.recipient);
    int rc = sqlite3_step(find_);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) fail(rc, "find");
    return triplet_row{sqlite3_column_int64(find_, 0), sqlite3_column_int64(find_, 1)};
}

void sqlite_store::save(const triplet& k, const triplet_row& r, bool known) {
    if (!known && opt_.max_rows > 0 && rows_ >= opt_.max_rows) {
        // RFC 6647's flood of unique triplets: make room by dropping the
        // least recently seen rows, in a batch so this stays rare.
        std::int64_t n = static_cast<std::int64_t>(std::clamp<std::uint64_t>(opt_.max_rows / 100, 1, 1000));
        reset_guard g{evict_};
        sqlite3_bind_int64(evict_, 1, n);
        int rc = sqlite3_step(evict_);
        if (rc != SQLITE_DONE) fail(rc, "evict");
        auto gone = static_cast<std::uint64_t>(sqlite3_changes(db_));
        rows_ -= std::min(rows_, gone);
        evicted_ += gone;
    }
    sqlite3_stmt* s = known ? update_ : insert_;
    reset_guard g{s};
    bind_text(s, 1, k.client_net);
    bind_text(s, 2, k.sender);
    bind_text(s, 3, k.recipient);
    sqlite3_bind_int64(s, 4, r.first);
    sqlite3_bind_int64(s, 5, r.last);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) fail(rc, "save");
    if (!known) ++rows_;
}

std::optional<client_row> sqlite_store::find_client(const std::string& address) {
    reset_guard g{find_client_};
    bind_text(find_client_, 1, address);
    int rc = sqlite3_step(find_client_);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) fail(rc, "find client");
    return client_row{sqlite3_column_int64(find_client_, 0), sqlite3_column_int64(find_client_, 1)};
}

void sqlite_store::save_client(const std::string& address, const client_row& r) {
    reset_guard g{save_client_};
    bind_text(save_client_, 1, address);
    sqlite3_bind_int64(save_client_, 2, r.count);
    sqlite3_bind_int64(save_client_, 3, r.last);
    int rc = sqlite3_step(save_client_);
    if (rc != SQLITE_DONE) fail(rc, "save client");
}

std::size_t sqlite_store::expire(std::int64_t now, const timing& t, std::size_t limit) {
    std::size_t gone = 0;
    {
        reset_guard g{expire_};
        sqlite3_bind_int64(expire_, 1, now - std::min(t.retry_window, t.max_age));
        sqlite3_bind_int64(expire_, 2, now - t.max_age);
        sqlite3_bind_int64(expire_, 3, t.delay);
        sqlite3_bind_int64(expire_, 4, now - t.retry_window);
        sqlite3_bind_int64(expire_, 5, static_cast<std::int64_t>(limit));
        int rc = sqlite3_step(expire_);
        if (rc != SQLITE_DONE) fail(rc, "expire");
        gone = static_cast<std::size_t>(sqlite3_changes(db_));
        rows_ -= std::min<std::uint64_t>(rows_, gone);
    }
    if (gone < limit) {
        reset_guard g{expire_clients_};
        sqlite3_bind_int64(expire_clients_, 1, now - t.max_age);
        sqlite3_bind_int64(expire_clients_, 2, static_cast<std::int64_t>(limit - gone));
        int rc = sqlite3_step(expire_clients_);
        if (rc != SQLITE_DONE) fail(rc, "expire clients");
        gone += static_cast<std::size_t>(sqlite3_changes(db_));
    }
    return gone;
}

store_stats sqlite_store::stats(const timing& t, unsigned awl_threshold) {
    store_stats st;
    st.schema_version = schema_version;
    {
        sqlite3_stmt* s = prepare("SELECT count(*), coalesce(sum(last - first >= ?1), 0), coalesce(min(last), 0),"
                                  " coalesce(max(last), 0) FROM triplets");
        sqlite3_bind_int64(s, 1, t.delay);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            st.triplets = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
            st.passed = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
            st.oldest = sqlite3_column_int64(s, 2);
            st.newest = sqlite3_column_int64(s, 3);
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW) fail(rc, "stats");
    }
    {
        sqlite3_stmt* s = prepare("SELECT count(*), coalesce(sum(count >= ?1), 0) FROM clients");
        sqlite3_bind_int64(s, 1, awl_threshold ? awl_threshold : INT32_MAX);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            st.clients = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
            st.clients_whitelisted = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_ROW) fail(rc, "stats");
    }
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        auto n = std::filesystem::file_size(opt_.path + suffix, ec);
        if (!ec) st.file_bytes += n;
    }
    return st;
}

void sqlite_store::for_each(const std::function<void(const triplet&, const triplet_row&)>& f) {
    sqlite3_stmt* s = prepare("SELECT net, sender, recipient, first, last FROM triplets ORDER BY net, sender, recipient");
    int rc;
    try {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            f(triplet{column_text(s, 0), column_text(s, 1), column_text(s, 2)},
              triplet_row{sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)});
    } catch (...) {
        sqlite3_finalize(s);
        throw;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail(rc, "export");
}

void sqlite_store::for_each_client(const std::function<void(const std::string&, const client_row&)>& f) {
    sqlite3_stmt* s = prepare("SELECT address, count, last FROM clients ORDER BY address");
    int rc;
    try {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            f(column_text(s, 0), client_row{sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2)});
    } catch (...) {
        sqlite3_finalize(s);
        throw;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail(rc, "export");
}

int sqlite_store::synchronous() {
    sqlite3_stmt* s = prepare("PRAGMA synchronous");
    int rc = sqlite3_step(s);
    int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) fail(rc, "read synchronous");
    return v;
}

void sqlite_store::interrupt() noexcept {
    if (db_) sqlite3_interrupt(db_);
}

} // namespace kamaelia::greylist
