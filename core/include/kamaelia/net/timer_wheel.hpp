// timer_wheel: coarse deadlines for many keys (inactivity timeouts of
// thousands of connections) without a timer or a scan per key.
//
//   timer_wheel<std::uint64_t> w(std::chrono::seconds(1));
//   w.schedule(id, now + timeout);
//   w.expire(now, [&](std::uint64_t id) { ... }); // each key due by `now`, once
//   auto next = w.next_deadline();                // when to wake next
//
// Deadlines are rounded up to the tick, so a key fires at most one tick
// late and never early. A key is only ever in the wheel as often as it was
// scheduled; expiring it removes it. Owners that forget a key (a closed
// connection) leave its entry to expire unanswered: cheaper than finding it.
// The wheel's cost is O(keys due) per expire plus O(slots) to find the next
// non-empty slot, independent of how many keys wait further ahead.
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace kamaelia {

template <class Key>
class timer_wheel {
public:
    explicit timer_wheel(duration tick = std::chrono::seconds(1), std::size_t slots = 256)
        : tick_(tick > duration::zero() ? tick : duration(1)),
          slots_(slots ? slots : 1) {}

    void schedule(Key key, time_point when) {
        std::int64_t t = tick_of(when);
        if (!size_) cursor_ = std::min(cursor_, t);
        if (t < cursor_) t = cursor_; // already due: the next expire() takes it
        slots_[slot_of(t)].push_back(entry{t, std::move(key)});
        ++size_;
    }

    // Calls f(key) for every key whose deadline is at or before `now`.
    // f may schedule again (that key lands at its new deadline).
    template <class F>
    void expire(time_point now, F&& f) {
        std::int64_t until = now.time_since_epoch() / tick_; // ticks fully reached
        if (!size_) {
            cursor_ = until + 1;
            return;
        }
        // Walk at most one turn: a longer gap visits every slot once anyway.
        std::int64_t last = std::min(until, cursor_ + static_cast<std::int64_t>(slots_.size()) - 1);
        for (std::int64_t t = cursor_; t <= last; ++t) {
            auto& s = slots_[slot_of(t)];
            if (s.empty()) continue;
            cursor_ = t + 1; // what f schedules now lands after this slot
            due_.clear();
            for (std::size_t i = 0; i < s.size();) {
                if (s[i].tick <= until) {
                    due_.push_back(std::move(s[i].key));
                    s[i] = std::move(s.back());
                    s.pop_back();
                    --size_;
                } else {
                    ++i;
                }
            }
            for (auto& k : due_) f(k);
        }
        cursor_ = until + 1;
    }

    // The earliest deadline (rounded up to the tick); nullopt if none.
    std::optional<time_point> next_deadline() const {
        if (!size_) return std::nullopt;
        auto n = static_cast<std::int64_t>(slots_.size());
        std::int64_t later = INT64_MAX; // the soonest key a turn or more ahead
        for (std::int64_t t = cursor_; t < cursor_ + n; ++t) {
            for (const auto& e : slots_[slot_of(t)]) {
                if (e.tick <= t) return time_point(tick_ * t);
                later = std::min(later, e.tick);
            }
        }
        return time_point(tick_ * later);
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    duration tick() const noexcept { return tick_; }

private:
    struct entry {
        std::int64_t tick;
        Key key;
    };
    std::int64_t tick_of(time_point when) const {
        // Round up: a deadline never fires early.
        auto d = when.time_since_epoch();
        std::int64_t t = d / tick_;
        if (tick_ * t < d) ++t;
        return t;
    }
    std::size_t slot_of(std::int64_t t) const {
        auto n = static_cast<std::int64_t>(slots_.size());
        return static_cast<std::size_t>(((t % n) + n) % n);
    }

    duration tick_;
    std::vector<std::vector<entry>> slots_;
    std::vector<Key> due_;
    std::size_t size_ = 0;
    std::int64_t cursor_ = INT64_MAX; // first tick not yet expired
};

} // namespace kamaelia
