#include <kamaelia/greylist/pg_store.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>

namespace kamaelia::greylist {

namespace {

// One step per version; a database at version N runs steps N+1.. at open.
const char* const migrations[] = {
    // 0 -> 1
    "CREATE TABLE grey_triplets(net TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,"
    " first BIGINT NOT NULL, last BIGINT NOT NULL, PRIMARY KEY(net, sender, recipient));"
    "CREATE INDEX grey_triplets_last ON grey_triplets(last);"
    "CREATE TABLE grey_clients(address TEXT PRIMARY KEY, count BIGINT NOT NULL, last BIGINT NOT NULL);"
    "CREATE INDEX grey_clients_last ON grey_clients(last);",
};
static_assert(sizeof(migrations) / sizeof(migrations[0]) == pg_store::schema_version);

// The schema versions of every kamaelia store in this database, by part.
constexpr const char* schema_table =
    "CREATE TABLE IF NOT EXISTS kamaelia_schema(part TEXT PRIMARY KEY, version INTEGER NOT NULL)";
// pg_advisory_xact_lock key: "kamaelia" in ASCII, so hosts migrating one
// database take turns.
constexpr const char* migrate_lock = "SELECT pg_advisory_xact_lock(7017846011424825697)";

struct result_deleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using result = std::unique_ptr<PGresult, result_deleter>;

std::int64_t int_at(PGresult* r, int row, int col) { return std::stoll(PQgetvalue(r, row, col)); }
std::string text_at(PGresult* r, int row, int col) {
    return std::string(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col)));
}

} // namespace

bool pg_store::is_url(std::string_view text) noexcept {
    return text.starts_with("postgresql://") || text.starts_with("postgres://");
}

std::string pg_store::redact(std::string_view text) {
    auto scheme = text.find("://");
    if (scheme == std::string_view::npos) return std::string(text);
    auto start = scheme + 3;
    auto end = text.find_first_of("/?", start);
    std::string_view authority = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    auto at = authority.rfind('@');
    if (at == std::string_view::npos) return std::string(text);
    std::string_view userinfo = authority.substr(0, at);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) return std::string(text);
    return std::string(text.substr(0, start)) + std::string(userinfo.substr(0, colon)) +
           std::string(text.substr(start + at));
}

pg_store::pg_store(const options& o) : opt_(o) {
    connect();
    try {
        migrate();
        prepare_all();
        result r(PQexec(conn_, "SELECT count(*) FROM grey_triplets"));
        if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("count rows", PQresultErrorMessage(r.get()));
        rows_estimate_ = static_cast<std::uint64_t>(int_at(r.get(), 0, 0));
    } catch (...) {
        PQfinish(conn_);
        conn_ = nullptr;
        throw;
    }
}

pg_store::~pg_store() {
    if (conn_) PQfinish(conn_);
}

void pg_store::connect() {
    std::string timeout = std::to_string(std::max<long long>(1, opt_.connect_timeout.count()));
    // The connection string is expanded by libpq (dbname may be a URI); our
    // own settings come after it and so win.
    const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* values[] = {opt_.conninfo.c_str(), timeout.c_str(), "kamaelia-greylist", nullptr};
    if (conn_) PQfinish(conn_);
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_) throw store_error("greylist database: out of memory connecting");
    if (name_.empty() || PQstatus(conn_) == CONNECTION_OK) {
        const char* h = PQhost(conn_);
        const char* p = PQport(conn_);
        const char* d = PQdb(conn_);
        name_ = std::string(h ? h : "?") + ":" + (p ? p : "?") + "/" + (d ? d : "?");
    }
    if (PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        fail("connect", PQerrorMessage(conn_));
    }
    broken_ = false;
    // The server's NOTICEs ("relation already exists, skipping") are not ours to print.
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
    std::string set = "SET statement_timeout = " + std::to_string(opt_.statement_timeout.count());
    result r(PQexec(conn_, set.c_str()));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("set statement_timeout", PQresultErrorMessage(r.get()));
}

void pg_store::fail(const char* what, const char* detail) {
    if (conn_ && PQstatus(conn_) != CONNECTION_OK) broken_ = true;
    std::string d = detail ? detail : "";
    while (!d.empty() && (d.back() == '\n' || d.back() == ' ')) d.pop_back();
    // A read-only or full server says so in `detail` ("read-only
    // transaction", "could not extend file", ...).
    throw store_error("greylist database postgresql " + name_ + " is failing (" + what + ": " + d + ")");
}

void pg_store::migrate() {
    auto exec = [this](const char* sql, const char* what) {
        result r(PQexec(conn_, sql));
        auto st = PQresultStatus(r.get());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(what, PQresultErrorMessage(r.get()));
        return r;
    };
    // Read first, write only to migrate: a read-only database (a replica,
    // or one made read-only for maintenance) opens when its schema is current.
    int current = 0;
    {
        result r(PQexec(conn_, "SELECT version FROM kamaelia_schema WHERE part = 'greylist'"));
        if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
            if (PQntuples(r.get()) == 1) current = std::stoi(PQgetvalue(r.get(), 0, 0));
        } else {
            const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
            if (!state || std::string_view(state) != "42P01") // undefined_table: a new database
                fail("read schema version", PQresultErrorMessage(r.get()));
        }
    }
    if (current > schema_version)
        throw store_error("greylist database postgresql " + name_ + " has schema version " + std::to_string(current) +
                          ", newer than this kamaelia's " + std::to_string(schema_version) +
                          ": upgrade kamaelia on this host");
    if (current == schema_version) return;
    if (opt_.read_only)
        throw store_error("greylist database postgresql " + name_ + ": schema version " + std::to_string(current) +
                          ", this kamaelia reads " + std::to_string(schema_version) +
                          " (start the server once to create or migrate it)");
    exec("BEGIN", "begin migration");
    try {
        exec(migrate_lock, "lock for migration");
        exec(schema_table, "create kamaelia_schema");
        result r = exec("SELECT version FROM kamaelia_schema WHERE part = 'greylist' FOR UPDATE", "read schema version");
        int v = PQntuples(r.get()) == 1 ? std::stoi(PQgetvalue(r.get(), 0, 0)) : 0;
        if (v > schema_version)
            throw store_error("greylist database postgresql " + name_ + " has schema version " + std::to_string(v) +
                              ", newer than this kamaelia's " + std::to_string(schema_version) +
                              ": upgrade kamaelia on this host");
        for (int i = v; i < schema_version; ++i) exec(migrations[i], "migrate");
        if (v != schema_version) {
            std::string set = "INSERT INTO kamaelia_schema(part, version) VALUES('greylist', " +
                              std::to_string(schema_version) + ") ON CONFLICT(part) DO UPDATE SET version = excluded.version";
            exec(set.c_str(), "record schema version");
        }
        exec("COMMIT", "commit migration");
    } catch (...) {
        PQclear(PQexec(conn_, "ROLLBACK"));
        throw;
    }
}

void pg_store::prepare_all() {
    struct stmt {
        const char* name;
        const char* sql;
        int params;
    };
    static const stmt all[] = {
        {"find", "SELECT first, last FROM grey_triplets WHERE net=$1 AND sender=$2 AND recipient=$3 FOR UPDATE", 3},
        // A first sighting that raced another host's keeps the earlier one.
        {"insert",
         "INSERT INTO grey_triplets(net, sender, recipient, first, last) VALUES($1,$2,$3,$4,$5)"
         " ON CONFLICT(net, sender, recipient) DO UPDATE SET first = LEAST(grey_triplets.first, excluded.first),"
         " last = GREATEST(grey_triplets.last, excluded.last)",
         5},
        {"update", "UPDATE grey_triplets SET first=$4, last=$5 WHERE net=$1 AND sender=$2 AND recipient=$3", 5},
        {"find_client", "SELECT count, last FROM grey_clients WHERE address=$1 FOR UPDATE", 1},
        {"save_client",
         "INSERT INTO grey_clients(address, count, last) VALUES($1,$2,$3)"
         " ON CONFLICT(address) DO UPDATE SET count=excluded.count, last=excluded.last",
         3},
        // SKIP LOCKED: an expiry run by one host never waits for (nor
        // deletes under) a row another host is deciding on.
        {"expire",
         "DELETE FROM grey_triplets WHERE ctid IN (SELECT ctid FROM grey_triplets WHERE last < $1"
         " AND (last < $2 OR (last - first < $3 AND last < $4)) LIMIT $5 FOR UPDATE SKIP LOCKED)",
         5},
        {"expire_clients",
         "DELETE FROM grey_clients WHERE ctid IN (SELECT ctid FROM grey_clients WHERE last < $1 LIMIT $2"
         " FOR UPDATE SKIP LOCKED)",
         2},
        {"evict",
         "DELETE FROM grey_triplets WHERE ctid IN (SELECT ctid FROM grey_triplets ORDER BY last LIMIT $1"
         " FOR UPDATE SKIP LOCKED)",
         1},
    };
    for (const auto& s : all) {
        result r(PQprepare(conn_, s.name, s.sql, s.params, nullptr));
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("prepare", PQresultErrorMessage(r.get()));
    }
}

void pg_store::ensure_connected() {
    if (!broken_ && conn_ && PQstatus(conn_) == CONNECTION_OK) return;
    // The server went away (restart, failover): a new session, statements
    // prepared again. Throws store_error while it is still down.
    connect();
    prepare_all();
    ++reconnects_;
}

namespace {

// Runs a prepared statement with text parameters.
struct runner {
    pg_conn* c;
    template <std::size_t N>
    result operator()(const char* name, const std::array<std::string, N>& args) const {
        std::array<const char*, N> v{};
        std::array<int, N> len{};
        std::array<int, N> fmt{};
        for (std::size_t i = 0; i < N; ++i) {
            v[i] = args[i].data();
            len[i] = static_cast<int>(args[i].size());
        }
        return result(PQexecPrepared(c, name, static_cast<int>(N), v.data(), len.data(), fmt.data(), 0));
    }
};

} // namespace

void pg_store::begin() {
    ensure_connected();
    result r(PQexec(conn_, "BEGIN"));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("begin", PQresultErrorMessage(r.get()));
    in_tx_ = true;
}

void pg_store::commit() {
    result r(PQexec(conn_, "COMMIT"));
    in_tx_ = false;
    // A COMMIT of a failed transaction answers ROLLBACK: that is a failure.
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK || std::string_view(PQcmdStatus(r.get())) != "COMMIT")
        fail("commit", PQresultErrorMessage(r.get()));
}

void pg_store::rollback() noexcept {
    in_tx_ = false;
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        return;
    }
    PQclear(PQexec(conn_, "ROLLBACK"));
}

std::optional<triplet_row> pg_store::find(const triplet& k) {
    result r = runner{conn_}("find", std::array<std::string, 3>{k.client_net, k.sender, k.recipient});
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("find", PQresultErrorMessage(r.get()));
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return triplet_row{int_at(r.get(), 0, 0), int_at(r.get(), 0, 1)};
}

void pg_store::save(const triplet& k, const triplet_row& row, bool known) {
    if (!known && opt_.max_rows > 0 && rows_estimate_ >= opt_.max_rows) {
        // The flood of unique triplets (RFC 6647): make room in a batch. The
        // count is this host's estimate; others evict for themselves.
        auto n = std::clamp<std::uint64_t>(opt_.max_rows / 100, 1, 1000);
        result r = runner{conn_}("evict", std::array<std::string, 1>{std::to_string(n)});
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("evict", PQresultErrorMessage(r.get()));
        auto gone = static_cast<std::uint64_t>(std::stoull(PQcmdTuples(r.get())));
        rows_estimate_ -= std::min(rows_estimate_, gone);
        evicted_ += gone;
    }
    result r = runner{conn_}(known ? "update" : "insert",
                             std::array<std::string, 5>{k.client_net, k.sender, k.recipient, std::to_string(row.first),
                                                        std::to_string(row.last)});
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("save", PQresultErrorMessage(r.get()));
    if (!known) ++rows_estimate_;
}

std::optional<client_row> pg_store::find_client(const std::string& address) {
    result r = runner{conn_}("find_client", std::array<std::string, 1>{address});
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("find client", PQresultErrorMessage(r.get()));
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return client_row{int_at(r.get(), 0, 0), int_at(r.get(), 0, 1)};
}

void pg_store::save_client(const std::string& address, const client_row& c) {
    result r = runner{conn_}("save_client",
                             std::array<std::string, 3>{address, std::to_string(c.count), std::to_string(c.last)});
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("save client", PQresultErrorMessage(r.get()));
}

std::size_t pg_store::expire(std::int64_t now, const timing& t, std::size_t limit) {
    result r = runner{conn_}("expire", std::array<std::string, 5>{std::to_string(now - std::min(t.retry_window, t.max_age)),
                                                                  std::to_string(now - t.max_age), std::to_string(t.delay),
                                                                  std::to_string(now - t.retry_window),
                                                                  std::to_string(limit)});
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("expire", PQresultErrorMessage(r.get()));
    std::size_t gone = std::stoull(PQcmdTuples(r.get()));
    rows_estimate_ -= std::min<std::uint64_t>(rows_estimate_, gone);
    if (gone < limit) {
        result c = runner{conn_}("expire_clients", std::array<std::string, 2>{std::to_string(now - t.max_age),
                                                                               std::to_string(limit - gone)});
        if (PQresultStatus(c.get()) != PGRES_COMMAND_OK) fail("expire clients", PQresultErrorMessage(c.get()));
        gone += std::stoull(PQcmdTuples(c.get()));
    }
    return gone;
}

store_stats pg_store::stats(const timing& t, unsigned awl_threshold) {
    ensure_connected();
    store_stats st;
    st.schema_version = schema_version;
    std::string q = "SELECT count(*), coalesce(sum(CASE WHEN last - first >= " + std::to_string(t.delay) +
                    " THEN 1 ELSE 0 END), 0), coalesce(min(last), 0), coalesce(max(last), 0) FROM grey_triplets";
    result r(PQexec(conn_, q.c_str()));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("stats", PQresultErrorMessage(r.get()));
    st.triplets = static_cast<std::uint64_t>(int_at(r.get(), 0, 0));
    st.passed = static_cast<std::uint64_t>(int_at(r.get(), 0, 1));
    st.oldest = int_at(r.get(), 0, 2);
    st.newest = int_at(r.get(), 0, 3);
    std::string qc = "SELECT count(*), coalesce(sum(CASE WHEN count >= " +
                     std::to_string(awl_threshold ? awl_threshold : INT32_MAX) +
                     " THEN 1 ELSE 0 END), 0) FROM grey_clients";
    result c(PQexec(conn_, qc.c_str()));
    if (PQresultStatus(c.get()) != PGRES_TUPLES_OK) fail("stats", PQresultErrorMessage(c.get()));
    st.clients = static_cast<std::uint64_t>(int_at(c.get(), 0, 0));
    st.clients_whitelisted = static_cast<std::uint64_t>(int_at(c.get(), 0, 1));
    result s(PQexec(conn_, "SELECT pg_total_relation_size('grey_triplets') + pg_total_relation_size('grey_clients')"));
    if (PQresultStatus(s.get()) == PGRES_TUPLES_OK) st.file_bytes = static_cast<std::uint64_t>(int_at(s.get(), 0, 0));
    return st;
}

void pg_store::for_each(const std::function<void(const triplet&, const triplet_row&)>& f) {
    ensure_connected();
    result r(PQexec(conn_, "SELECT net, sender, recipient, first, last FROM grey_triplets ORDER BY net, sender, recipient"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("export", PQresultErrorMessage(r.get()));
    for (int i = 0, n = PQntuples(r.get()); i < n; ++i)
        f(triplet{text_at(r.get(), i, 0), text_at(r.get(), i, 1), text_at(r.get(), i, 2)},
          triplet_row{int_at(r.get(), i, 3), int_at(r.get(), i, 4)});
}

void pg_store::for_each_client(const std::function<void(const std::string&, const client_row&)>& f) {
    ensure_connected();
    result r(PQexec(conn_, "SELECT address, count, last FROM grey_clients ORDER BY address"));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail("export", PQresultErrorMessage(r.get()));
    for (int i = 0, n = PQntuples(r.get()); i < n; ++i)
        f(text_at(r.get(), i, 0), client_row{int_at(r.get(), i, 1), int_at(r.get(), i, 2)});
}

} // namespace kamaelia::greylist
