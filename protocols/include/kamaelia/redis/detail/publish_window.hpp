// The PUBLISH commands a redis_bridge has on their way to Redis, bounded in
// bytes (redis_bridge::options::max_pending_bytes).
//
// A command is in the window from the moment the bridge formats it until
// Redis answers it: that covers every queue behind the bridge at once (a
// batch the connection refused for now, the connection's inbox and write
// queue, both kernels' socket buffers, Redis's own input buffer), whatever
// each of them holds. A Redis that stops reading (SIGSTOP, a stalled
// host) stops answering, the window fills, and what does not fit is
// dropped by the bridge instead of queued. Redis answers each command once,
// in order, so answers are matched to batches from the front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>

namespace kamaelia::redis::detail {

class publish_window {
public:
    explicit publish_window(std::size_t max_bytes) : max_(max_bytes) {}

    // Room for a command of `bytes` more, after `unrecorded` bytes being
    // formatted and not add()ed yet? A lone command larger than the bound
    // fits an empty window (as a backplane delivers a lone big message to
    // an empty queue), so the bound is max(max_bytes, one command).
    bool fits(std::size_t bytes, std::size_t unrecorded = 0) const noexcept {
        std::size_t now = bytes_ + unrecorded;
        return now == 0 || now + bytes <= max_;
    }

    // `commands` formatted into a new batch of `bytes`.
    void add(std::uint32_t commands, std::size_t bytes) {
        batches_.push_back({commands, bytes});
        bytes_ += bytes;
        commands_ += commands;
    }
    // `commands` more appended to the last batch (one not yet sent).
    void grow(std::uint32_t commands, std::size_t bytes) {
        if (batches_.empty()) return add(commands, bytes);
        batches_.back().left += commands;
        batches_.back().bytes += bytes;
        bytes_ += bytes;
        commands_ += commands;
    }

    // One answer came. False if nothing was waiting for one (not ours). A
    // batch's bytes leave the window with its last answer.
    bool answered() noexcept {
        if (batches_.empty()) return false;
        --commands_;
        if (--batches_.front().left == 0) {
            bytes_ -= batches_.front().bytes;
            batches_.pop_front();
        }
        return true;
    }

    // The connection is gone: the commands never answered (whether Redis
    // published them is unknown), and the window is empty again.
    std::uint64_t clear() noexcept {
        std::uint64_t n = commands_;
        batches_.clear();
        bytes_ = 0;
        commands_ = 0;
        return n;
    }

    std::size_t bytes() const noexcept { return bytes_; }
    std::uint64_t commands() const noexcept { return commands_; }
    std::size_t max_bytes() const noexcept { return max_; }

private:
    struct batch {
        std::uint32_t left; // answers still expected
        std::size_t bytes;
    };
    std::deque<batch> batches_;
    std::size_t max_;
    std::size_t bytes_ = 0;
    std::uint64_t commands_ = 0;
};

// The RESP size of a command of `args` (what format_command appends), to
// check the window before formatting.
inline std::size_t command_size(std::initializer_list<std::size_t> arg_sizes) noexcept {
    auto digits = [](std::size_t n) {
        std::size_t d = 1;
        while (n >= 10) {
            n /= 10;
            ++d;
        }
        return d;
    };
    std::size_t n = 1 + digits(arg_sizes.size()) + 2;               // *N\r\n
    for (std::size_t a : arg_sizes) n += 1 + digits(a) + 2 + a + 2; // $LEN\r\n ARG \r\n
    return n;
}

} // namespace kamaelia::redis::detail
