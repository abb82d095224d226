#include <kamaelia/pg/database.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace kamaelia::pg {

namespace {

// The schema versions of every kamaelia store in this database, by part.
constexpr const char* schema_table =
    "CREATE TABLE IF NOT EXISTS kamaelia_schema(part TEXT PRIMARY KEY, version INTEGER NOT NULL)";
// pg_advisory_xact_lock key: "kamaelia" in ASCII, so hosts migrating one
// database take turns.
constexpr const char* migrate_lock = "SELECT pg_advisory_xact_lock(7017846011424825697)";

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
}

} // namespace

bool is_url(std::string_view text) noexcept {
    return text.starts_with("postgresql://") || text.starts_with("postgres://");
}

std::string redact(std::string_view text) {
    auto scheme = text.find("://");
    if (scheme == std::string_view::npos) return std::string(text);
    auto start = scheme + 3;
    auto end = text.find_first_of("/?", start);
    std::string_view authority =
        text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    auto at = authority.rfind('@');
    if (at == std::string_view::npos) return std::string(text);
    std::string_view userinfo = authority.substr(0, at);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) return std::string(text);
    return std::string(text.substr(0, start)) + std::string(userinfo.substr(0, colon)) +
           std::string(text.substr(start + at));
}

pool_url split_pool(std::string_view url) {
    pool_url out;
    auto q = url.find('?');
    if (!is_url(url) || q == std::string_view::npos) {
        out.conninfo = std::string(url);
        return out;
    }
    out.conninfo = std::string(url.substr(0, q));
    std::string rest;
    bool seen = false;
    std::string_view query = url.substr(q + 1);
    while (true) {
        auto amp = query.find('&');
        std::string_view param = query.substr(0, amp);
        if (param.starts_with("pool=")) {
            std::string_view v = param.substr(5);
            const std::string bad = "bad pool size '" + std::string(v) +
                                    "' in the PostgreSQL URL: a whole number from 1 to " +
                                    std::to_string(max_pool_size);
            if (seen) throw std::invalid_argument("pool given twice in the PostgreSQL URL");
            seen = true;
            if (v.empty() || v.size() > 3 ||
                !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
                throw std::invalid_argument(bad);
            std::size_t n = std::stoul(std::string(v));
            if (n < 1 || n > max_pool_size) throw std::invalid_argument(bad);
            out.size = n;
        } else if (!param.empty()) {
            rest += rest.empty() ? "" : "&";
            rest += param;
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    if (!rest.empty()) out.conninfo += "?" + rest;
    return out;
}

// ---- result ------------------------------------------------------------------

void result::clear::operator()(pg_result* r) const noexcept { PQclear(r); }

int result::rows() const noexcept { return PQntuples(get()); }

std::int64_t result::i64(int row, int col) const { return std::stoll(PQgetvalue(get(), row, col)); }

std::string result::text(int row, int col) const {
    return std::string(PQgetvalue(get(), row, col), static_cast<std::size_t>(PQgetlength(get(), row, col)));
}

std::string result::bytes(int row, int col) const {
    // bytea in text form is "\x" and two hex digits a byte (bytea_output = hex, set at connect).
    std::string_view v(PQgetvalue(get(), row, col), static_cast<std::size_t>(PQgetlength(get(), row, col)));
    if (v.starts_with("\\x")) v.remove_prefix(2);
    std::string out(v.size() / 2, '\0');
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<char>(hex_digit(v[2 * i]) * 16 + hex_digit(v[2 * i + 1]));
    return out;
}

std::uint64_t result::affected() const {
    const char* n = PQcmdTuples(get());
    return n && *n ? std::stoull(n) : 0;
}

// ---- database ------------------------------------------------------------------

database::database(options o, error_factory raise) : opt_(std::move(o)), raise_(std::move(raise)) {
    // pool= is the store's (split_pool): libpq would refuse the URL with it.
    try {
        opt_.conninfo = split_pool(opt_.conninfo).conninfo;
    } catch (const std::invalid_argument& e) {
        raise_(opt_.label + ": " + e.what());
    }
    try {
        connect();
    } catch (...) {
        if (conn_) PQfinish(conn_);
        conn_ = nullptr;
        throw;
    }
}

database::~database() {
    if (conn_) PQfinish(conn_);
}

void database::connect() {
    std::string timeout = std::to_string(std::max<long long>(1, opt_.connect_timeout.count()));
    // The connection string is expanded by libpq (dbname may be a URI); our
    // own settings come after it and so win.
    const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* values[] = {opt_.conninfo.c_str(), timeout.c_str(), opt_.application_name.c_str(), nullptr};
    if (conn_) PQfinish(conn_);
    pending_.clear();
    synced_.clear();
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_) fail_with("out of memory connecting");
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
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    std::string set =
        "SET statement_timeout = " + std::to_string(opt_.statement_timeout.count()) + "; SET bytea_output = 'hex'";
    exec(set.c_str(), "set session");
}

void database::fail_with(const std::string& text) const {
    raise_(opt_.label + " database postgresql " + name_ + " " + text);
    std::terminate(); // raise_ throws
}

void database::fail(const char* what, const char* detail) {
    if (conn_ && PQstatus(conn_) != CONNECTION_OK) broken_ = true;
    std::string d = detail ? detail : "";
    while (!d.empty() && (d.back() == '\n' || d.back() == ' ')) d.pop_back();
    // A read-only or full server says so in `detail` ("read-only
    // transaction", "could not extend file", ...).
    fail_with(std::string("is failing (") + what + ": " + d + ")");
}

void database::fail(const char* what, const result& r) { fail(what, PQresultErrorMessage(r.get())); }

result database::exec(const char* sql, const char* what) {
    ++round_trips_;
    result r(PQexec(conn_, sql));
    auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(what, r);
    return r;
}

result database::run(const char* name, std::span<const std::string> args, const char* what, unsigned binary) {
    std::vector<const char*> v(args.size());
    std::vector<int> len(args.size()), fmt(args.size());
    for (std::size_t i = 0; i < args.size(); ++i) {
        v[i] = args[i].data();
        len[i] = static_cast<int>(args[i].size());
        fmt[i] = (binary >> i) & 1u;
    }
    ++round_trips_;
    result r(PQexecPrepared(conn_, name, static_cast<int>(args.size()), v.data(), len.data(), fmt.data(), 0));
    auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(what, r);
    return r;
}

// ---- pipeline ------------------------------------------------------------------

void database::enter_pipeline() {
    if (PQpipelineStatus(conn_) != PQ_PIPELINE_OFF) return;
    if (PQenterPipelineMode(conn_) != 1) fail("enter pipeline mode", PQerrorMessage(conn_));
}

void database::send(const char* name, std::span<const std::string> args, const char* what) {
    if (pending_.size() >= max_pending) {
        auto part = sync(); // with what an earlier automatic sync kept
        synced_ = std::move(part);
    }
    enter_pipeline();
    std::vector<const char*> v(args.size());
    std::vector<int> len(args.size()), fmt(args.size(), 0);
    for (std::size_t i = 0; i < args.size(); ++i) {
        v[i] = args[i].data();
        len[i] = static_cast<int>(args[i].size());
    }
    if (PQsendQueryPrepared(conn_, name, static_cast<int>(args.size()), v.data(), len.data(), fmt.data(), 0) != 1)
        fail(what, PQerrorMessage(conn_));
    pending_.push_back(what);
}

void database::send_sql(const char* sql, const char* what) {
    enter_pipeline();
    // PQsendQuery is refused in pipeline mode; the extended protocol takes
    // one statement.
    if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) fail(what, PQerrorMessage(conn_));
    pending_.push_back(what);
}

void database::drain(std::vector<result>& out, std::string& what, std::string& detail) {
    std::size_t index = 0;
    int nulls = 0;
    for (;;) {
        pg_result* raw = PQgetResult(conn_);
        if (!raw) {
            // NULL ends one statement's results; twice in a row, or on a dead
            // connection, nothing more is coming.
            if (PQstatus(conn_) != CONNECTION_OK || ++nulls > 1) {
                broken_ = true;
                if (what.empty()) {
                    what = "pipeline";
                    detail = PQerrorMessage(conn_);
                    if (detail.empty()) detail = "connection lost";
                }
                break;
            }
            continue;
        }
        nulls = 0;
        result r(raw);
        auto st = PQresultStatus(raw);
        if (st == PGRES_PIPELINE_SYNC) break;
        const char* stage = index < pending_.size() ? pending_[index] : "pipeline";
        ++index;
        if (st == PGRES_FATAL_ERROR && what.empty()) {
            what = stage;
            detail = PQresultErrorMessage(raw);
        } else if (st == PGRES_PIPELINE_ABORTED && what.empty()) {
            what = stage;
            detail = "skipped after an earlier error";
        }
        out.push_back(std::move(r));
    }
    pending_.clear();
    if (!broken_ && PQexitPipelineMode(conn_) != 1) {
        // Answers left unread: this session's state is unknown; start afresh.
        broken_ = true;
        if (what.empty()) {
            what = "leave pipeline mode";
            detail = PQerrorMessage(conn_);
        }
    }
}

std::vector<result> database::sync() {
    std::vector<result> out = std::move(synced_);
    synced_.clear();
    if (pending_.empty()) return out;
    std::string what, detail;
    ++round_trips_;
    if (PQpipelineSync(conn_) != 1) {
        broken_ = true;
        pending_.clear();
        fail("pipeline sync", PQerrorMessage(conn_));
    }
    drain(out, what, detail);
    if (!what.empty()) {
        if (broken_) {
            // A session that lost its server or its place in the protocol is
            // not used again: ensure() makes a new one.
            PQfinish(conn_);
            conn_ = nullptr;
        }
        std::string w = what;
        fail(w.c_str(), detail.c_str());
    }
    return out;
}

void database::migrate(const char* part, std::span<const char* const> steps, bool read_only) {
    const int known = static_cast<int>(steps.size());
    const std::string p(part);
    auto newer = [&](int v) {
        fail_with("has " + p + " schema version " + std::to_string(v) + ", newer than this kamaelia's " +
                  std::to_string(known) + ": upgrade kamaelia on this host");
    };
    // Read first, write only to migrate: a read-only database (a replica,
    // or one made read-only for maintenance) opens when its schema is current.
    int current = 0;
    {
        std::string q = "SELECT version FROM kamaelia_schema WHERE part = '" + p + "'";
        result r(PQexec(conn_, q.c_str()));
        if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
            if (r.rows() == 1) current = static_cast<int>(r.i64(0, 0));
        } else {
            const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
            if (!state || std::string_view(state) != "42P01") // undefined_table: a new database
                fail("read schema version", r);
        }
    }
    if (current > known) newer(current);
    if (current == known) return;
    if (read_only)
        fail_with("has " + p + " schema version " + std::to_string(current) + ", this kamaelia reads " +
                  std::to_string(known) + " (start the server once to create or migrate it)");
    exec("BEGIN", "begin migration");
    try {
        exec(migrate_lock, "lock for migration");
        exec(schema_table, "create kamaelia_schema");
        std::string q = "SELECT version FROM kamaelia_schema WHERE part = '" + p + "' FOR UPDATE";
        result r = exec(q.c_str(), "read schema version");
        int v = r.rows() == 1 ? static_cast<int>(r.i64(0, 0)) : 0;
        if (v > known) newer(v);
        for (int i = v; i < known; ++i) exec(steps[static_cast<std::size_t>(i)], "migrate");
        if (v != known) {
            std::string set = "INSERT INTO kamaelia_schema(part, version) VALUES('" + p + "', " +
                              std::to_string(known) + ") ON CONFLICT(part) DO UPDATE SET version = excluded.version";
            exec(set.c_str(), "record schema version");
        }
        exec("COMMIT", "commit migration");
    } catch (...) {
        PQclear(PQexec(conn_, "ROLLBACK"));
        throw;
    }
}

void database::prepare(std::span<const statement> all) {
    for (const auto& s : all) {
        result r(PQprepare(conn_, s.name, s.sql, s.params, nullptr));
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) fail("prepare", r);
    }
}

void database::ensure(std::span<const statement> all) {
    // A pipeline a failure left half read is as good as broken.
    if (!broken_ && conn_ && PQstatus(conn_) == CONNECTION_OK && PQpipelineStatus(conn_) == PQ_PIPELINE_OFF &&
        pending_.empty())
        return;
    connect();
    prepare(all);
    ++reconnects_;
}

void database::ready(std::span<const statement> all) {
    ensure(all);
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) PQclear(PQexec(conn_, "ROLLBACK"));
}

void database::begin(std::span<const statement> all) {
    ready(all);
    exec("BEGIN", "begin");
}

void database::commit() {
    result r(PQexec(conn_, "COMMIT"));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK || std::string_view(PQcmdStatus(r.get())) != "COMMIT")
        fail("commit", r);
}

void database::rollback() noexcept {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK || PQpipelineStatus(conn_) != PQ_PIPELINE_OFF) {
        broken_ = true;
        return;
    }
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return; // nothing began, or a failed COMMIT ended it
    PQclear(PQexec(conn_, "ROLLBACK"));
}

bool database::in_transaction() const noexcept {
    return conn_ && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_INTRANS;
}

bool database::in_failed_transaction() const noexcept {
    return conn_ && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_INERROR;
}

} // namespace kamaelia::pg
