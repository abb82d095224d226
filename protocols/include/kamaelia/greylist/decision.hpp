// The greylist as the SMTP proxy and the policy server see it: a question
// about one (client, sender, recipient) and its answer, given once the
// answer is durable. They ask the greylist service (greylist/service.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kamaelia::greylist {

struct request {
    std::string client_address; // IPv4 or IPv6 text, as the peer connected
    std::string client_name;    // reverse DNS if known, else empty
    std::string helo;
    std::string sender;    // envelope MAIL FROM, without <>; empty for <>
    std::string recipient; // envelope RCPT TO, without <>
    std::string instance;  // Postfix's instance (policy server); may be empty
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
    std::chrono::seconds wait{0};    // greylisted: seconds left before a retry passes
    std::chrono::seconds delayed{0}; // pass: how long the triplet was delayed at first
    std::string reason;              // for logs and headers ("early retry", "new", "store locked", ...)
    // Added by the greylist branch:
    bool first_pass = false; // pass: the first one of this triplet (postgrey prepends X-Greylist then)
};

} // namespace kamaelia::greylist
