// What every session of one greylisting SMTP proxy shares: its settings,
// the greylist engine, the upstream's health (back-off while it is down)
// and where session log lines go. With the daemon's --threads the sessions
// run on several schedulers: the settings are not written once serving,
// what changes is atomic.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/meter.hpp>
#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/greylist/service.hpp>
#include <kamaelia/net/tls.hpp>
#include <kamaelia/smtp/network.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia::smtp {

struct whitelisted_triple {            // greylist.conf's whitelisted_triples
    std::string ip, sender, recipient; // sender/recipient as typed, with <>
};
struct nonstandard_triple { // whitelisted_nonstandard_triples
    std::string helo;
    network client;        // the original's IP prefix, on octet boundaries
    std::string recipient; // with <>
};

struct proxy_settings {
    std::string server_name = "localhost";   // in 220/250/221 and Received:
    std::string server_id = "Kamaelia-Grey"; // in the 220 banner
    std::string upstream_host = "127.0.0.1";
    std::uint16_t upstream_port = 8025;
    std::vector<std::string> allowed_domains; // recipient domains we accept mail for (lower case)
    std::vector<std::string> allowed_senders; // client addresses that may relay anywhere, ungreylisted
    std::vector<network> allowed_sender_nets; // ... and networks
    std::vector<whitelisted_triple> whitelisted_triples;
    std::vector<nonstandard_triple> whitelisted_nonstandard_triples;
    std::size_t max_recipients = 100;                // RFC 5321 §4.5.3.1 minimum; more get 452 4.5.3
    std::uint64_t max_message_size = 10'240'000;     // SIZE; Postfix's default
    std::size_t max_rcpt_attempts = 1000;            // RCPT commands per session since the last message
                                                     // delivered (Postfix's smtpd_recipient_limit):
                                                     // more get 452 4.5.3 without asking the greylist
    unsigned max_errors = 20;                        // 421 after this many errors (smtpd_hard_error_limit)
    std::size_t max_command_line = 512;              // octets with CRLF (RFC 5321)
    std::size_t max_text_line = 1001;                // 1000 + a stuffed dot
    duration idle_timeout = std::chrono::minutes(5); // RFC 5321 §4.5.3.2: at least 5 minutes
    duration upstream_connect_timeout = std::chrono::seconds(30);
    // While the session waits on the upstream, RFC 5321 §4.5.3.2's timers
    // govern, not the client's idle timeout: each reply to the greeting,
    // EHLO, MAIL, RCPT, DATA or RSET waits up to upstream_timeout (the whole
    // relay from DATA to 354 at most connect + 2 x that), the final dot's
    // reply up to upstream_reply_timeout. A timeout is 451 4.4.1 to the client.
    duration upstream_timeout = std::chrono::minutes(5);
    duration upstream_reply_timeout = std::chrono::minutes(10); // the final dot may take that long
    // A stop lets a message in DATA finish for this long, then the client
    // gets 421 4.3.2 (set below the server's grace, which then forces).
    duration stop_grace = std::chrono::seconds(55);
    duration upstream_backoff_min = std::chrono::seconds(1); // after a failure, DATA is deferred at once...
    duration upstream_backoff_max = std::chrono::minutes(1); // ...for a doubling period up to this
    bool x_greylist_header = true;                           // X-Greylist: on mail that was delayed

    // The longest a session may rightly go without bytes from its client:
    // idle, or waiting on the upstream for it. The server's inactivity sweep
    // (a backstop) must not fire before.
    duration longest_wait() const {
        return std::max({idle_timeout, upstream_reply_timeout, upstream_connect_timeout + 2 * upstream_timeout});
    }
};

// The upstream's health, shared by the sessions of a proxy, which may run
// on several schedulers (the daemon's --threads): two relaxed atomics, read
// and written once per upstream connection, never per line. The back-off
// follows from the failure count (min, doubling, up to max), so no third
// value has to change with them; two sessions failing at once may extend
// the same back-off twice, which only defers DATA a little longer.
class upstream_health {
public:
    void failed(time_point now, const proxy_settings& s) {
        unsigned n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
        duration backoff = s.upstream_backoff_min;
        for (unsigned i = 1; i < n && backoff < s.upstream_backoff_max; ++i) backoff *= 2;
        backoff = std::min<duration>(backoff, s.upstream_backoff_max);
        down_until_.store((now + backoff).time_since_epoch().count(), std::memory_order_relaxed);
    }
    void ok() {
        failures_.store(0, std::memory_order_relaxed);
        down_until_.store(0, std::memory_order_relaxed);
    }
    bool down(time_point now) const {
        return failures_.load(std::memory_order_relaxed) > 0 &&
               now.time_since_epoch().count() < down_until_.load(std::memory_order_relaxed);
    }
    unsigned failures() const { return failures_.load(std::memory_order_relaxed); }

private:
    std::atomic<time_point::rep> down_until_{0};
    std::atomic<unsigned> failures_{0};
};

struct proxy_context {
    proxy_settings cfg;
    // The greylist service asked at RCPT (on the session's scheduler, or
    // once for a scheduler group; greylist/service.hpp). Empty: no greylist, RCPT tempfails.
    std::string greylist = greylist::service_name;
    // The service's recent passes (service::memory()): a known triplet is
    // answered without asking. Null: every RCPT asks.
    std::shared_ptr<greylist::pass_memory> memory;
    greylist::meter* meter = nullptr; // counts the answers (the console's /metrics); may be null
    upstream_health health;
    // Makes the upstream connection (default: a tcp_client to the upstream);
    // tests put an in-process SMTP server here.
    std::function<std::unique_ptr<component>()> make_upstream;
    // One line per transaction, like the original's greylist.log. Called
    // from every scheduler's sessions: it must be thread-safe.
    std::function<void(const std::string&)> log_line;
    // Wall-clock seconds and milliseconds (Received: dates, log stamps); injectable.
    std::function<std::time_t()> wall_clock;
    // Set (a server context: make_server_tls): STARTTLS is offered. The
    // session answers 220, sends kamaelia::start_tls to its socket adapter,
    // drops every byte that came in clear and forgets the session state.
    std::shared_ptr<tls_context> tls;
    // The server's grace period, read at a stop (the daemon may shorten it
    // after building the server): a message in DATA gets it less a margin,
    // then 421 4.3.2 before the server forces what is left. Unset: cfg.stop_grace.
    std::function<duration()> server_grace;
    duration stop_grace() const {
        if (!server_grace) return cfg.stop_grace;
        duration g = server_grace();
        return g > std::chrono::seconds(2) ? g - std::chrono::seconds(1) : g / 2;
    }
    // Counters for logs and tests, bumped by sessions on every scheduler.
    std::atomic<std::uint64_t> next_session{0};
    std::atomic<std::uint64_t> delivered{0}, deferred{0}, rejected{0};
};

} // namespace kamaelia::smtp
