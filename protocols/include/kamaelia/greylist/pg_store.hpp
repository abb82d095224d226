// The greylist in PostgreSQL, shared by several MX hosts (as sqlgrey's users
// run it): one connection (the service opens a pool of them, one store
// each: service.hpp), prepared statements only, a versioned schema
// migrated at open under an advisory lock (two hosts starting together do
// not both migrate), and a schema version in the database that a newer
// kamaelia may have raised: then this one refuses to start.
//
// Same contract as sqlite_store: the engine calls it from one thread,
// inside begin()/commit(), and answers only after commit() returned (the
// COMMIT is acknowledged, synchronous_commit as the server has it).
//
// Round trips, not the server, bound a store across a network, so a batch
// costs two whatever its size (libpq's pipeline mode): prefetch() sends
// BEGIN and every row lookup of the batch at once; the writes are kept
// until commit(), which sends them and COMMIT at once. Any statement that
// fails, or a COMMIT that does, fails the whole batch (store_error, so a
// temporary failure for every request in it); nothing of it is kept.
// - find() is SELECT ... FOR UPDATE: a host deciding on a triplet holds its
//   row until COMMIT, so two hosts never both pass from a stale row;
// - save() of a new triplet is an upsert keeping the earliest first sighting:
//   two hosts seeing one triplet for the first time at once give one row,
//   not an error;
// - a server that is down, restarting, read-only or full makes the call
//   throw store_error (a temporary failure for the client); the next begin()
//   reconnects, so a restarted server is used again without restarting
//   the daemon.
//
// The connection string is a libpq URI (postgresql://[USER[:PASS]@]HOST[:PORT]/DB?...)
// or keyword/value string; the password comes from it, PGPASSWORD or the
// PGPASSFILE (~/.pgpass) file, as libpq does. Errors and logs name the
// database as host:port/dbname, never with the password.
#pragma once

#include <kamaelia/greylist/store.hpp>
#include <kamaelia/pg/database.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia::greylist {

class pg_store final : public store {
public:
    static constexpr int schema_version = 1;

    struct options {
        std::string conninfo;
        std::size_t max_rows = 1'000'000;
        std::chrono::seconds connect_timeout{5};
        std::chrono::milliseconds statement_timeout{10'000};
        bool read_only = false; // grey-db stats/export: never creates nor migrates
        // The row count the max_rows cap goes by, shared by the stores of one
        // pool (each counts what it inserts and evicts), so that N connections
        // keep the table at the cap, not at N times it. Empty: a count of its own.
        std::shared_ptr<std::atomic<std::int64_t>> rows;
    };

    // Connects and creates or migrates the schema. store_error if the server
    // cannot be reached, refuses us, or holds a newer schema.
    explicit pg_store(const options& o);
    ~pg_store() override;
    pg_store(const pg_store&) = delete;
    pg_store& operator=(const pg_store&) = delete;

    void begin() override;
    void commit() override;
    void rollback() noexcept override;
    void prefetch(std::span<const triplet> keys, std::span<const std::string> clients) override;
    std::optional<triplet_row> find(const triplet& k) override;
    void save(const triplet& k, const triplet_row& r, bool known) override;
    std::optional<client_row> find_client(const std::string& address) override;
    void save_client(const std::string& address, const client_row& r) override;
    std::size_t expire(std::int64_t now, const timing& t, std::size_t limit) override;
    store_stats stats(const timing& t, unsigned awl_threshold) override;
    void for_each(const std::function<void(const triplet&, const triplet_row&)>& f) override;
    void for_each_client(const std::function<void(const std::string&, const client_row&)>& f) override;
    bool remote() const noexcept override { return true; }

    // "host:port/dbname" (no password): what errors and logs show.
    const std::string& name() const noexcept { return db_.name(); }
    std::uint64_t evicted() const noexcept { return evicted_; }
    std::uint64_t reconnects() const noexcept { return db_.reconnects(); }
    // True if `text` names a PostgreSQL database (postgresql:// or postgres://).
    static bool is_url(std::string_view text) noexcept { return pg::is_url(text); }
    // `text` with any password in a URL's user part removed (for messages).
    static std::string redact(std::string_view text) { return pg::redact(text); }

    // Round trips to the server since the last begin() (its reconnection
    // aside): 2 for a batch of any size, once committed.
    std::uint64_t round_trips() const noexcept { return db_.round_trips() - trips_at_begin_; }

private:
    struct key_less {
        bool operator()(const triplet& a, const triplet& b) const noexcept;
    };
    // A write kept for commit(): a prepared statement and its parameters.
    struct write {
        const char* name;
        std::vector<std::string> args;
        const char* what;
    };
    // BEGIN if not sent yet, then the queued writes, into the pipeline.
    void send_queued();
    // Sends what is queued (BEGIN, writes) and waits: before a lookup that
    // was not prefetched, so it sees the batch's own writes.
    void flush();

    options opt_;
    pg::database db_;
    std::shared_ptr<std::atomic<std::int64_t>> rows_estimate_; // opt_.rows or our own
    std::uint64_t evicted_ = 0;
    bool begin_pending_ = false;
    std::map<triplet, std::optional<triplet_row>, key_less> rows_;
    std::map<std::string, std::optional<client_row>> clients_;
    std::vector<write> writes_;
    std::uint64_t trips_at_begin_ = 0;
};

} // namespace kamaelia::greylist
