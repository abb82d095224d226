// One PostgreSQL connection as the stores use it (the greylist's and the
// board's), as sqlite/database.hpp is for SQLite: prepared statements by
// name, a versioned schema per part recorded in the shared table
// kamaelia_schema(part, version) and migrated under an advisory lock (hosts
// starting together take turns), and every failure worded one way for an
// operator -- "<label> database postgresql HOST:PORT/DB is failing (what:
// detail)" -- and thrown as the store's own error type. The password (from
// the URL, PGPASSWORD or PGPASSFILE, as libpq reads them) never appears in
// a message. Not thread-safe: a store uses it from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace kamaelia::pg {

// Thrown by database::fail with the whole operator-facing text; must throw.
using error_factory = std::function<void(const std::string& message)>;

// True if `text` names a PostgreSQL database (postgresql:// or postgres://).
bool is_url(std::string_view text) noexcept;
// `text` with any password in a URL's user part removed (for messages).
std::string redact(std::string_view text);

// A store's connection pool: `pool=N` in the URL's query
// (postgresql://HOST/DB?pool=4), a parameter of ours that libpq does not
// know, so it is taken out before libpq sees the URL. A daemon's store opens
// N connections; the tools (grey-db, bbs-user, ...) use one whatever it says.
// One by default: on a 2-core host the pipelined single connection decided
// 9,719 policy requests/s and a pool of 4 only 4,020 (docs/BENCHMARKS.md,
// 2026-12-06); a pool pays where PostgreSQL has cores of its own.
inline constexpr std::size_t default_pool_size = 1;
inline constexpr std::size_t max_pool_size = 16;
struct pool_url {
    std::string conninfo; // the URL without pool=
    std::size_t size = default_pool_size;
};
// std::invalid_argument, its text naming the bad value and the range, for
// a pool that is not one whole number from 1 to max_pool_size (or given twice).
pool_url split_pool(std::string_view url);

// A query's result, cleared when it goes.
class result {
public:
    result() = default;
    explicit result(pg_result* r) noexcept : r_(r) {}
    pg_result* get() const noexcept { return r_.get(); }
    int rows() const noexcept;
    std::int64_t i64(int row, int col) const;
    // A text column as it is, or a bytea column's bytes.
    std::string text(int row, int col) const;
    std::string bytes(int row, int col) const;
    std::uint64_t affected() const; // rows an INSERT/UPDATE/DELETE touched

private:
    struct clear {
        void operator()(pg_result* r) const noexcept;
    };
    std::unique_ptr<pg_result, clear> r_;
};

struct statement {
    const char* name;
    const char* sql;
    int params;
};

class database {
public:
    struct options {
        std::string conninfo;             // a libpq URI or keyword/value string
        std::string label = "postgresql"; // "greylist", "board": the first word of every message
        std::string application_name = "kamaelia";
        std::chrono::seconds connect_timeout{5};
        std::chrono::milliseconds statement_timeout{10'000};
    };

    // Connects; failures throw through `raise`.
    database(options o, error_factory raise);
    ~database();
    database(const database&) = delete;
    database& operator=(const database&) = delete;

    // "host:port/dbname" (no password): what errors and logs show.
    const std::string& name() const noexcept { return name_; }
    pg_conn* handle() const noexcept { return conn_; }
    std::uint64_t reconnects() const noexcept { return reconnects_; }
    // Statements or pipelines sent and waited for, since the connection was made.
    std::uint64_t round_trips() const noexcept { return round_trips_; }

    [[noreturn]] void fail(const char* what, const char* detail);
    [[noreturn]] void fail(const char* what, const result& r);
    // The same with a message of the store's own, after "<label> database postgresql NAME".
    [[noreturn]] void fail_with(const std::string& text) const;

    // Brings the schema of `part` to steps.size() (one step per version,
    // run in one transaction under the advisory lock). A newer version in
    // the database fails ("upgrade kamaelia on this host"); so does an older
    // one when `read_only` (the tools that only read never migrate).
    void migrate(const char* part, std::span<const char* const> steps, bool read_only);
    void prepare(std::span<const statement> all);
    // A new session if the server went away (restart, failover), its
    // statements prepared again; fails while it is still down.
    void ensure(std::span<const statement> all);

    // One or more statements; fails unless they succeeded.
    result exec(const char* sql, const char* what);
    // A prepared statement. Parameters are text, or raw bytes (bytea) where
    // bit i of `binary` is set. Fails unless it succeeded.
    result run(const char* name, std::span<const std::string> args, const char* what, unsigned binary = 0);

    // Pipeline mode (libpq 14+): statements are queued with send() and go to
    // the server together; sync() sends them, waits for every answer (one
    // round trip, however many statements) and returns the results in order.
    // The first statement that failed fails the whole sync (the server skips
    // the rest of it); a transaction it was in is left aborted, for
    // rollback(). Past max_pending statements send() syncs by itself, so
    // a long batch never leaves the server blocked on replies we do not read.
    static constexpr std::size_t max_pending = 512;
    void send(const char* name, std::span<const std::string> args, const char* what);
    void send_sql(const char* sql, const char* what); // one statement, no parameters
    std::vector<result> sync();
    std::size_t pending() const noexcept { return pending_.size(); }

    // Transactions. begin() first reconnects or clears what a failed batch
    // left (a transaction PostgreSQL aborted); commit() fails unless the
    // server answered COMMIT (a failed transaction answers ROLLBACK).
    void begin(std::span<const statement> all);
    // begin() without the BEGIN, which the caller sends in its pipeline.
    void ready(std::span<const statement> all);
    void commit();
    void rollback() noexcept;
    // In a transaction that can still commit (not aborted by an error).
    bool in_transaction() const noexcept;
    // In a transaction an error aborted: only a rollback ends it.
    bool in_failed_transaction() const noexcept;

private:
    void connect();
    void enter_pipeline();
    // Reads the answers to what was queued, up to the sync; the failure
    // found first (statement, detail), if any. Leaves pipeline mode.
    void drain(std::vector<result>& out, std::string& what, std::string& detail);

    options opt_;
    error_factory raise_;
    pg_conn* conn_ = nullptr;
    std::string name_;
    bool broken_ = false;
    std::uint64_t reconnects_ = 0;
    std::uint64_t round_trips_ = 0;
    std::vector<const char*> pending_; // what each queued statement is, for messages
    std::vector<result> synced_;       // answers read by an automatic sync
};

} // namespace kamaelia::pg
