#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/message_rate_limit.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia {

namespace {

duration interval_for(double rate) {
    if (!(rate > 0) || !std::isfinite(rate))
        throw bad_state("message_rate_limit: the rate must be a positive number of messages per second");
    auto d = std::chrono::duration_cast<duration>(std::chrono::duration<double>(1.0 / rate));
    return std::max(d, duration(1));
}

} // namespace

message_rate_limit::message_rate_limit(double messages_per_second, std::size_t buffer)
    : interval_(interval_for(messages_per_second)),
      buffer_(std::max<std::size_t>(buffer, 1)) {}

task message_rate_limit::main() {
    control_watch cw;
    // 1. Fill the buffer (or stop waiting when the input ends). The messages
    // move out of the inbox, so that waiting means waiting for more.
    std::vector<message> held;
    held.reserve(std::min<std::size_t>(buffer_, 1024));
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) {
            cw.forward_end(*this);
            co_return;
        }
        while (held.size() < buffer_) {
            std::optional<message> m = recv_message("inbox");
            if (!m) break;
            held.push_back(std::move(*m));
        }
        if (held.size() >= buffer_ || cw.finishing()) break;
        co_await wait_any();
    }
    // 2. One message per interval, the held ones first, then from the inbox
    // (where the rest waits, holding upstream back). `next` is the earliest
    // time the next message may go; slots missed while idle are not made up
    // in a burst.
    std::size_t head = 0;
    time_point next = sched()->now();
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        if (head == held.size() && data_ready("inbox") == 0) {
            if (cw.finishing()) break;
            co_await wait_any();
            continue;
        }
        // Wait for the slot, listening to control only.
        for (;;) {
            time_point now = sched()->now();
            if (now >= next) break;
            duration left = next - now;
            bool control_data = co_await wait_for("control", left);
            if (control_data) {
                cw.poll(*this);
                if (cw.stopping()) break;
            }
        }
        if (cw.stopping()) break;
        std::optional<message> m;
        if (head < held.size()) {
            m = std::move(held[head++]);
            if (head == held.size()) {
                held.clear();
                head = 0;
            }
        } else {
            m = recv_message("inbox");
        }
        co_await send_message(std::move(*m), "outbox");
        ++passed_;
        time_point sent_at = sched()->now();
        next = (sent_at - next > interval_) ? sent_at + interval_ : next + interval_;
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
