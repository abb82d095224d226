// The board's login throttle: failed logins counted per user name and
// client address; after `max_failures` within `window` that name from that
// address is locked until the window has passed.
//
//   login_throttle t({5, 15min, 4096}, clock);
//   if (t.locked_for(key) > duration::zero()) ...   // refuse without a check
//   ok ? t.note_success(key) : t.note_failure(key);
//
// Not thread-safe, on purpose: it belongs to the KDF service (service.hpp),
// which runs every login's password check one at a time, so the throttle is
// read and written by that one component and needs no lock. Its memory is
// bounded: at most `max_throttled` entries; a new key beyond that evicts the
// oldest one still counting (a locked one only when every entry is locked),
// so a client trying many names can neither grow it nor, cheaply, unlock a
// name it has locked.
#pragma once

#include <kamaelia/core/clock.hpp>

#include <chrono>
#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kamaelia::bbs {

class login_throttle {
public:
    struct limits {
        unsigned max_failures = 5;                  // failed logins within `window` ...
        duration window = std::chrono::minutes(15); // ... lock the key until the window has passed
        std::size_t max_throttled = 4096;           // keys remembered at most
    };
    // `clock` must outlive the throttle.
    login_throttle(limits l, const clock_source& clock);

    // The key of `name` (case-folded as the store does) from `address`.
    static std::string key(std::string_view name, std::string_view address);

    // How long `key` is still locked (zero: not locked).
    duration locked_for(const std::string& key);
    // Counts a failure; true when this one locked the key.
    bool note_failure(const std::string& key);
    // A good login forgets the key's failures.
    void note_success(const std::string& key);

    std::size_t size() const noexcept { return entries_.size(); }
    const limits& config() const noexcept { return limits_; }

private:
    using age_list = std::list<std::string>; // keys, the oldest first
    struct entry {
        unsigned count = 0;
        time_point first{}; // when the current window began
        bool locked = false;
        age_list::iterator age; // in counting_ or locked_
    };
    using map = std::unordered_map<std::string, entry>;
    void erase(map::iterator it);
    // Forgets the windows that have passed (from the front of each list),
    // then evicts while the map is full.
    void make_room(time_point now);
    void drop_passed(age_list& l, time_point now);

    limits limits_;
    const clock_source& clock_;
    map entries_;
    age_list counting_; // by window start
    age_list locked_;   // by the time they locked
};

} // namespace kamaelia::bbs
