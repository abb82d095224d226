// The greylist as the SMTP proxy and the policy server see it: ask about one
// (client, sender, recipient) and hear back once the answer is durable.
//
// The answer comes asynchronously because the store writes (SQLite, on its
// own thread) before it answers; `done` always runs on the scheduler thread
// of the caller, never inside decide() itself, and exactly once -- also
// when the store fails (verdict::tempfail) or is shutting down.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace kamaelia::greylist {

struct request {
    std::string client_address; // IPv4 or IPv6 text, as the peer connected
    std::string client_name;    // reverse DNS if known, else empty
    std::string helo;
    std::string sender;         // envelope MAIL FROM, without <>; empty for <>
    std::string recipient;      // envelope RCPT TO, without <>
    std::string instance;       // Postfix's instance (policy server); may be empty
    // Added by the greylist branch:
    std::int64_t test_time = 0; // seconds since the epoch to judge at instead of the clock (postgrey's
                                // policy_test_time); 0: the engine's clock
};

enum class verdict {
    pass,        // seen before and waited long enough (or pass memory)
    whitelisted, // client, sender domain or recipient on a whitelist
    greylisted,  // first seen or retried too early: defer
    tempfail,    // the store failed: defer, never accept
};

struct decision {
    verdict what = verdict::tempfail;
    std::chrono::seconds wait{0};      // greylisted: seconds left before a retry passes
    std::chrono::seconds delayed{0};   // pass: how long the triplet was delayed at first
    std::string reason;                // for logs and headers ("early retry", "new", "store locked", ...)
    // Added by the greylist branch:
    bool first_pass = false;           // pass: the first one of this triplet (postgrey prepends X-Greylist then)
};

class engine {
public:
    virtual ~engine() = default;
    virtual void decide(const request& r, std::function<void(decision)> done) = 0;
    // Re-reads the whitelist files (SIGHUP); on an error the old lists stay
    // and the error is logged. Call it on the engine's scheduler thread.
    virtual void reload() {}
};

} // namespace kamaelia::greylist
