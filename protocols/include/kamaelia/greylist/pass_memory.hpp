// The greylist's recent passes, where askers can read them. A triplet that
// passed, asked about again while its stored row needs no write (its
// last-seen stamp younger than timing::refresh), gets the same answer from
// the database every time: "pass", nothing to commit. The asker answers it
// itself from here, without the round trip to the database thread and its
// transaction:
//
//   if (auto d = memory->recall(req)) ...          // on any scheduler
//   else d = co_await ask(service_name, check{req});
//
// The service's connections put a pass in only after its transaction
// committed, and take out what may have changed: a client whose
// auto-whitelist row changed (forget_client), everything on a whitelist
// reload or a failed batch (clear). An entry lives at most `ttl`, so what
// this process cannot see (another MX host's writes to a shared
// PostgreSQL store, a row evicted by the row cap, `kamaelia grey-db`) is
// noticed within it. Bounded: at `capacity` entries it starts afresh.
// Thread-safe: one mutex, held for a hash lookup.
#pragma once

#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/triplet.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace kamaelia::greylist {

class pass_memory {
public:
    struct options {
        std::chrono::seconds ttl{60}; // 0: off (every request goes to the service)
        std::size_t capacity = 16384; // entries; then it is cleared
        unsigned ipv4_prefix = 24;    // the triplet's client network, as the service makes it
        unsigned ipv6_prefix = 64;
        bool per_client = false;                                      // the client auto-whitelist is on
        std::function<std::chrono::system_clock::time_point()> clock; // empty: the system clock
    };

    explicit pass_memory(options o);

    // The service's answer to `r` now, if remembered: a pass. Never for a
    // request with a test_time (those are judged at another time).
    std::optional<decision> recall(const request& r);

    // After a commit: `key` (of auto-whitelist client `client`, empty when
    // off) passed; its row as stored was last seen at `stored_last`, so the
    // answer stays a write-free pass until stored_last + refresh.
    // `at`: when it was judged (the entry lives until at + ttl at most).
    void remember(const triplet& key, const std::string& client, std::int64_t stored_last, std::int64_t at,
                  std::int64_t refresh);
    // `client`'s auto-whitelist row changed: its answers may no longer be "pass".
    void forget_client(const std::string& client);
    void clear();

    std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
    std::size_t size() const;
    bool enabled() const noexcept { return opt_.ttl.count() > 0; }
    std::int64_t now() const;

private:
    struct entry {
        std::int64_t from = 0;  // the stored last-seen stamp: earlier times are judged by the service
        std::int64_t until = 0; // exclusive
    };
    static std::string key_of(const triplet& t);

    options opt_;
    mutable std::mutex mu_;
    // client (empty without the auto-whitelist) -> triplet -> entry: a
    // client's entries go at once when its row changes.
    std::unordered_map<std::string, std::unordered_map<std::string, entry>> by_client_;
    std::size_t entries_ = 0;
    std::atomic<std::uint64_t> hits_{0};
};

} // namespace kamaelia::greylist
