// message_rate_limit: passes messages on at most `messages_per_second`
// (Kamaelia's MessageRateLimit).
//
//   message_rate_limit paced(10.0);        // 10 messages a second
//   message_rate_limit paced(10.0, 1);     // start as soon as one is there
//
// It first waits until `buffer` messages are queued (or the input ends),
// to absorb jitter, then emits one message per 1/rate seconds for as long
// as it has any, paced by scheduler timers (the original busy-yielded
// between messages and paced at 1.1×rate). Beyond the buffer, messages
// wait in the inbox, so upstream waits when that is full.
//
// producer_finished: the queued messages are still sent at the rate, then
// it is passed on; shutdown_microprocess: passed on at once, the rest
// dropped. Other control messages are passed on out of "signal".
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstddef>
#include <cstdint>

namespace kamaelia {

class message_rate_limit : public component {
public:
    explicit message_rate_limit(double messages_per_second, std::size_t buffer = 60);
    message_rate_limit(message_rate_limit&&) = default;

    duration interval() const noexcept { return interval_; }
    std::size_t buffer() const noexcept { return buffer_; }
    std::uint64_t passed() const noexcept { return passed_; }
    std::string type_name() const override { return "message_rate_limit"; }

protected:
    task main() override;

private:
    duration interval_;
    std::size_t buffer_;
    std::uint64_t passed_ = 0;
};

} // namespace kamaelia
