#include <kamaelia/greylist/sqlite_store.hpp>

#include <algorithm>
#include <cstdint>
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

sqlite::database::options db_options(const sqlite_store::options& o) {
    sqlite::database::options d;
    d.label = "greylist";
    d.read_only = o.read_only;
    d.busy_timeout_ms = static_cast<int>(o.busy_timeout.count());
    return d;
}

[[noreturn]] void raise(const std::string& message) { throw store_error(message); }

} // namespace

sqlite_store::sqlite_store(const options& o)
    : opt_(o),
      db_(o.path, db_options(o), raise),
      begin_(db_, "BEGIN IMMEDIATE"),
      commit_(db_, "COMMIT"),
      rollback_(db_, "ROLLBACK"),
      find_(db_, "SELECT first, last FROM triplets WHERE net=?1 AND sender=?2 AND recipient=?3"),
      insert_(db_, "INSERT INTO triplets(net, sender, recipient, first, last) VALUES(?1,?2,?3,?4,?5)"
                   " ON CONFLICT DO UPDATE SET first=excluded.first, last=excluded.last"),
      update_(db_, "UPDATE triplets SET first=?4, last=?5 WHERE net=?1 AND sender=?2 AND recipient=?3"),
      find_client_(db_, "SELECT count, last FROM clients WHERE address=?1"),
      save_client_(db_, "INSERT INTO clients(address, count, last) VALUES(?1,?2,?3)"
                        " ON CONFLICT DO UPDATE SET count=excluded.count, last=excluded.last"),
      // The index on `last` bounds the scan: only rows older than the
      // shorter of the two ages are looked at.
      expire_(db_, "DELETE FROM triplets WHERE (net, sender, recipient) IN ("
                   "SELECT net, sender, recipient FROM triplets WHERE last < ?1"
                   " AND (last < ?2 OR (last - first < ?3 AND last < ?4)) LIMIT ?5)"),
      expire_clients_(db_,
                      "DELETE FROM clients WHERE address IN (SELECT address FROM clients WHERE last < ?1 LIMIT ?2)"),
      evict_(db_, "DELETE FROM triplets WHERE (net, sender, recipient) IN ("
                  "SELECT net, sender, recipient FROM triplets ORDER BY last LIMIT ?1)"),
      count_(db_, "SELECT count(*) FROM triplets") {
    count_rows();
}

sqlite_store::~sqlite_store() = default;

bool sqlite_store::open_schema() {
    if (opt_.read_only) {
        std::int64_t v = db_.pragma_int("PRAGMA user_version");
        if (v != schema_version)
            db_.fail_with(": schema version " + std::to_string(v) + ", this kamaelia reads " +
                          std::to_string(schema_version) + " (start the server once to migrate it)");
        return true;
    }
    db_.use_wal();
    db_.exec(opt_.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    migrate(); // also a real write: an unwritable database fails here, not at the first request
    db_.check_sound();
    return true;
}

void sqlite_store::migrate() {
    db_.exec("BEGIN IMMEDIATE");
    try {
        std::int64_t v = db_.pragma_int("PRAGMA user_version");
        if (v > schema_version)
            db_.fail_with(" has schema version " + std::to_string(v) + ", newer than this kamaelia's " +
                          std::to_string(schema_version));
        for (std::int64_t i = v; i < schema_version; ++i) db_.exec(migrations[i]);
        // Written at every start (PRAGMA takes no parameters; the value is our
        // own constant): the start-up proves the database takes a commit.
        std::string set = "PRAGMA user_version=" + std::to_string(schema_version);
        db_.exec(set.c_str());
        db_.exec("COMMIT");
    } catch (...) {
        if (db_.in_transaction()) {
            try {
                db_.exec("ROLLBACK");
            } catch (...) {}
        }
        throw;
    }
}

void sqlite_store::count_rows() {
    sqlite::statement::use q(count_);
    rows_ = q.step("count rows") ? static_cast<std::uint64_t>(q.i64(0)) : 0;
}

void sqlite_store::begin() {
    sqlite::statement::use(begin_).run("begin");
    in_tx_ = true;
}

void sqlite_store::commit() {
    sqlite::statement::use(commit_).run("commit");
    in_tx_ = false;
}

void sqlite_store::rollback() noexcept {
    in_tx_ = false;
    try {
        // Nothing open, or SQLite rolled back already: nothing to undo.
        if (db_.in_transaction()) sqlite::statement::use(rollback_).run("rollback");
    } catch (...) {}
    try {
        count_rows(); // the cached count included what was rolled back
    } catch (...) {}
}

std::optional<triplet_row> sqlite_store::find(const triplet& k) {
    sqlite::statement::use q(find_);
    q.bind_ref(1, k.client_net).bind_ref(2, k.sender).bind_ref(3, k.recipient);
    if (!q.step("find")) return std::nullopt;
    return triplet_row{q.i64(0), q.i64(1)};
}

void sqlite_store::save(const triplet& k, const triplet_row& r, bool known) {
    if (!known && opt_.max_rows > 0 && rows_ >= opt_.max_rows) {
        // RFC 6647's flood of unique triplets: make room by dropping the
        // least recently seen rows, in a batch so this stays rare.
        std::int64_t n = static_cast<std::int64_t>(std::clamp<std::uint64_t>(opt_.max_rows / 100, 1, 1000));
        sqlite::statement::use(evict_).bind(1, n).run("evict");
        auto gone = static_cast<std::uint64_t>(db_.changes());
        rows_ -= std::min(rows_, gone);
        evicted_ += gone;
    }
    sqlite::statement::use q(known ? update_ : insert_);
    q.bind_ref(1, k.client_net).bind_ref(2, k.sender).bind_ref(3, k.recipient).bind(4, r.first).bind(5, r.last);
    q.run("save");
    if (!known) ++rows_;
}

std::optional<client_row> sqlite_store::find_client(const std::string& address) {
    sqlite::statement::use q(find_client_);
    q.bind_ref(1, address);
    if (!q.step("find client")) return std::nullopt;
    return client_row{q.i64(0), q.i64(1)};
}

void sqlite_store::save_client(const std::string& address, const client_row& r) {
    sqlite::statement::use(save_client_).bind_ref(1, address).bind(2, r.count).bind(3, r.last).run("save client");
}

std::size_t sqlite_store::expire(std::int64_t now, const timing& t, std::size_t limit) {
    std::size_t gone = 0;
    {
        sqlite::statement::use q(expire_);
        q.bind(1, now - std::min(t.retry_window, t.max_age))
            .bind(2, now - t.max_age)
            .bind(3, t.delay)
            .bind(4, now - t.retry_window)
            .bind(5, static_cast<std::int64_t>(limit));
        q.run("expire");
        gone = static_cast<std::size_t>(db_.changes());
        rows_ -= std::min<std::uint64_t>(rows_, gone);
    }
    if (gone < limit) {
        sqlite::statement::use q(expire_clients_);
        q.bind(1, now - t.max_age).bind(2, static_cast<std::int64_t>(limit - gone)).run("expire clients");
        gone += static_cast<std::size_t>(db_.changes());
    }
    return gone;
}

store_stats sqlite_store::stats(const timing& t, unsigned awl_threshold) {
    store_stats st;
    st.schema_version = schema_version;
    {
        sqlite::statement s(db_,
                            "SELECT count(*), coalesce(sum(last - first >= ?1), 0), coalesce(min(last), 0),"
                            " coalesce(max(last), 0) FROM triplets",
                            false);
        sqlite::statement::use q(s);
        q.bind(1, t.delay);
        if (q.step("stats")) {
            st.triplets = static_cast<std::uint64_t>(q.i64(0));
            st.passed = static_cast<std::uint64_t>(q.i64(1));
            st.oldest = q.i64(2);
            st.newest = q.i64(3);
        }
    }
    {
        sqlite::statement s(db_, "SELECT count(*), coalesce(sum(count >= ?1), 0) FROM clients", false);
        sqlite::statement::use q(s);
        q.bind(1, static_cast<std::int64_t>(awl_threshold ? awl_threshold : INT32_MAX));
        if (q.step("stats")) {
            st.clients = static_cast<std::uint64_t>(q.i64(0));
            st.clients_whitelisted = static_cast<std::uint64_t>(q.i64(1));
        }
    }
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        auto n = std::filesystem::file_size(opt_.path + suffix, ec);
        if (!ec) st.file_bytes += n;
    }
    return st;
}

void sqlite_store::for_each(const std::function<void(const triplet&, const triplet_row&)>& f) {
    sqlite::statement s(db_, "SELECT net, sender, recipient, first, last FROM triplets ORDER BY net, sender, recipient",
                        false);
    sqlite::statement::use q(s);
    while (q.step("export")) f(triplet{q.text(0), q.text(1), q.text(2)}, triplet_row{q.i64(3), q.i64(4)});
}

void sqlite_store::for_each_client(const std::function<void(const std::string&, const client_row&)>& f) {
    sqlite::statement s(db_, "SELECT address, count, last FROM clients ORDER BY address", false);
    sqlite::statement::use q(s);
    while (q.step("export")) f(q.text(0), client_row{q.i64(1), q.i64(2)});
}

int sqlite_store::synchronous() { return static_cast<int>(db_.pragma_int("PRAGMA synchronous")); }

void sqlite_store::interrupt() noexcept { db_.interrupt(); }

} // namespace kamaelia::greylist
