// The timing rules, as pure functions of (stored row, now) so that tests
// can check every boundary exactly. postgrey's rules:
//
//   - a row whose last sighting came >= delay after its first has passed
//     before: pass again (the pass memory), refreshed to `now`, unless it
//     was last seen more than max_age ago (then it starts over);
//   - otherwise, if the first sighting is older than the retry window, the
//     first-seen time restarts at `now`;
//   - a retry before the delay is deferred and does NOT reset first-seen;
//   - the first retry at or after first + delay passes ("first pass": the
//     policy server prepends X-Greylist once).
//
// Times are seconds since the Unix epoch. Every difference of two times is
// taken with span(), which saturates instead of overflowing: a row may come
// from a damaged database, and a clock may jump.
#pragma once

#include <kamaelia/greylist/decision.hpp>

#include <cstdint>
#include <optional>

namespace kamaelia::greylist {

// The latest time accepted from outside (9999-12-31T23:59:59Z); later ones
// are refused where they enter (a test hook, a configuration).
inline constexpr std::int64_t max_time = 253'402'300'799;

// a - b, saturated to the int64 range (never undefined behaviour).
inline std::int64_t span(std::int64_t a, std::int64_t b) noexcept {
    std::int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? INT64_MIN : INT64_MAX;
    return r;
}

struct timing {
    std::int64_t delay = 300;
    std::int64_t retry_window = 2 * 24 * 3600;
    std::int64_t max_age = 35 * 24 * 3600;
    // A sighting that changes nothing but the last-seen stamp is stored only
    // when the stamp is this old: a busy known triplet costs no write, and
    // the pass memory still lasts max_age since use (to within this).
    std::int64_t refresh = 3600;
};

struct triplet_row {
    std::int64_t first = 0; // first sighting of this attempt
    std::int64_t last = 0;  // last sighting
    bool operator==(const triplet_row&) const = default;
};

struct client_row {
    std::int64_t count = 0; // triplets of this client that passed (at most one counted an hour)
    std::int64_t last = 0;  // when last counted or used
    bool operator==(const client_row&) const = default;
};

struct triplet_outcome {
    decision answer;
    triplet_row write;       // the row as it now stands
    bool store = true;       // write it (false: only a fresh last-seen stamp would change)
    bool first_pass = false; // counts towards the client auto-whitelist
};

triplet_outcome judge_triplet(const std::optional<triplet_row>& row, std::int64_t now, const timing& t);

// A row's passed state ("last was successful").
inline bool has_passed(const triplet_row& r, const timing& t) { return span(r.last, r.first) >= t.delay; }

// Client auto-whitelist (postgrey --auto-whitelist-clients=N): a client
// with >= N counted passes skips greylisting. `threshold` 0 turns it off.
bool client_whitelisted(const std::optional<client_row>& row, std::int64_t now, unsigned threshold, const timing& t);

// The client row after a use by a whitelisted client or after a first pass
// of one of its triplets: +1 at most once an hour (postgrey), or nullopt
// when nothing changes.
std::optional<client_row> bump_client(const std::optional<client_row>& row, std::int64_t now, const timing& t);

// Whether a row may be deleted at `now` (batched expiry): passed rows after
// max_age without use, unpassed ones once their retry window is over.
inline bool expired(const triplet_row& r, std::int64_t now, const timing& t) {
    if (span(now, r.last) > t.max_age) return true;
    return !has_passed(r, t) && span(now, r.first) > t.retry_window && span(now, r.last) > t.retry_window;
}

} // namespace kamaelia::greylist
