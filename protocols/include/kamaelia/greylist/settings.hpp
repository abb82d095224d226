// What a greylist is told at start: postgrey's timings by default, the
// triplet's client network size, the whitelists and the store's location.
// The greylist branch may add fields; existing ones keep their meaning.
#pragma once

#include <kamaelia/greylist/decision.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kamaelia::greylist {

inline constexpr std::size_t default_connection_queue = 1000;
inline constexpr std::size_t max_connection_queue = 1'000'000;

struct settings {
    std::chrono::seconds delay{300};                  // first retry passes after this
    std::chrono::seconds retry_window{2 * 24 * 3600}; // ... and before this, else it starts over
    std::chrono::seconds max_age{35 * 24 * 3600};     // a passed triplet is remembered this long (refreshed on use)
    unsigned auto_whitelist_clients = 5;              // passes after which a client skips greylisting (0: off)
    unsigned ipv4_prefix = 24;                        // client network of the triplet
    unsigned ipv6_prefix = 64;
    std::vector<std::string> whitelist_clients; // CIDR networks, addresses, host names / domains
    std::vector<std::string> whitelist_sender_domains;
    std::vector<std::string> whitelist_recipients; // addresses, domains, user@ local parts
    std::string whitelist_clients_file;            // postgrey's file formats; reloaded on SIGHUP
    std::string whitelist_recipients_file;
    std::string database;             // SQLite file (the daemon: <data-dir>/greylist.sqlite)
    bool sync_full = false;           // --sync full: survive power loss, not only kill -9
    std::size_t max_rows = 1'000'000; // cap against floods of unique triplets (RFC 6647)
    // Added by the greylist branch:
    std::function<std::chrono::system_clock::time_point()> clock; // empty: the system clock (tests inject one)
    std::chrono::milliseconds expire_interval{60000}; // between expiry rounds on the database thread (>= 100 ms)
    std::size_t expire_batch = 1000;                  // rows deleted per expiry transaction
    std::chrono::milliseconds health_interval{2000};  // an idle database thread probes the store this often
    std::chrono::milliseconds busy_timeout{100};      // a locked database fails after this (then: tempfail)
    bool default_whitelists = true;                   // postgrey's postmaster@ and abuse@ recipients
    // Requests a remote store's connection may hold unanswered (queued and in
    // its running batch); over it a request is answered tempfail at once
    // ("greylist store busy"), so a stalled database cannot pile up askers.
    std::size_t connection_queue = default_connection_queue;
    // A pass whose row needs no write is answered by the asker from the
    // pass memory (greylist/pass_memory.hpp) for at most this long after
    // the database last said so; 0: every request goes to the database.
    std::chrono::seconds pass_memory_ttl{60};
    std::size_t pass_memory_entries = 16384;
};

class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

} // namespace kamaelia::greylist
