// Where the greylist keeps its rows. The service calls a store from ONE
// thread (its database thread), always inside begin()/commit(): a batch of
// decisions is one transaction, and the answers go out only after commit()
// returned (a decision is durable before it is answered).
//
// SQLite (sqlite_store.hpp) for one host; PostgreSQL (pg_store.hpp) for
// several MX hosts on one database (begin = a transaction, find = SELECT
// ... FOR UPDATE, save = an upsert, a batch in two round trips).
#pragma once

#include <kamaelia/greylist/rules.hpp>
#include <kamaelia/greylist/settings.hpp>
#include <kamaelia/greylist/triplet.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

namespace kamaelia::greylist {

struct store_stats {
    std::uint64_t triplets = 0;
    std::uint64_t passed = 0;  // triplets whose last sighting came >= delay after the first
    std::uint64_t clients = 0; // client auto-whitelist rows
    std::uint64_t clients_whitelisted = 0;
    std::int64_t oldest = 0; // smallest last-seen (0: empty)
    std::int64_t newest = 0;
    int schema_version = 0;
    std::uint64_t file_bytes = 0; // database + WAL
};

class store {
public:
    virtual ~store() = default;

    // Every call throws store_error on failure; the message names the
    // database and says what happened ("locked", "corrupt", ...).
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() noexcept = 0;

    // Called after begin() with every triplet and client the batch will
    // find(): a store across a network reads (and locks) them all in one
    // round trip, and find()/find_client() then answer from what it read.
    // SQLite, in-process, has nothing to gain.
    virtual void prefetch(std::span<const triplet> keys, std::span<const std::string> clients) {
        (void)keys;
        (void)clients;
    }
    virtual std::optional<triplet_row> find(const triplet& k) = 0;
    // `known`: find() returned a row (an update, else an insert that the
    // row cap may make room for).
    virtual void save(const triplet& k, const triplet_row& r, bool known) = 0;
    virtual std::optional<client_row> find_client(const std::string& address) = 0;
    virtual void save_client(const std::string& address, const client_row& r) = 0;

    // Deletes up to `limit` rows that expired() at `now` (inside a
    // transaction); returns how many went.
    virtual std::size_t expire(std::int64_t now, const timing& t, std::size_t limit) = 0;

    virtual store_stats stats(const timing& t, unsigned awl_threshold) = 0;
    // Every triplet, in key order (grey-db export).
    virtual void for_each(const std::function<void(const triplet&, const triplet_row&)>& f) = 0;
    virtual void for_each_client(const std::function<void(const std::string&, const client_row&)>& f) = 0;
    // Across a network (PostgreSQL): its waits are the server's, not bounded
    // by a local timeout, so the service gives each such connection a thread
    // of its own and a bounded queue (settings::connection_queue).
    virtual bool remote() const noexcept { return false; }
    // Thread-safe: makes a long statement on the store's thread give up
    // (the service calls it when it is stopped).
    virtual void interrupt() noexcept {}
};

} // namespace kamaelia::greylist
