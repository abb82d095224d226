// hiredis's RESP reader and command formatter, with RAII and a bound: the
// bridge feeds the reader what its tcp_client receives (hiredis 0.14 has no
// Asio adapter) and formats commands into the bytes it sends.
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace kamaelia::redis::detail {

struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

class reply_reader {
public:
    // `max_pending`: the most bytes of one incomplete reply it will hold.
    explicit reply_reader(std::size_t max_pending);
    ~reply_reader();
    reply_reader(const reply_reader&) = delete;
    reply_reader& operator=(const reply_reader&) = delete;

    // Takes `bytes` to parse; they are handed to hiredis a slice at a time
    // by next(), so they must stay valid until next() has returned nullptr
    // (or the reader is gone). False once broken (see error()).
    bool feed(std::string_view bytes);
    // The next complete reply, or nullptr (none yet, or broken: error()).
    reply_ptr next();
    bool broken() const noexcept { return !error_.empty(); }
    // Bytes hiredis holds now (parsed or not yet): at most one incomplete
    // reply's bound plus a slice.
    std::size_t buffered() const noexcept { return r_->len; }
    const std::string& error() const noexcept { return error_; }

private:
    // hiredis compacts its buffer (a memmove of all it holds) each time a
    // reply ends 1 KiB or more into it: fed a 64 KiB read at once, it moves
    // some 32 bytes for every byte parsed. Fed this much at a time, about 2.
    static constexpr std::size_t slice = 4096;
    bool give_slice();

    redisReader* r_;
    std::size_t max_;
    std::string_view pending_; // fed, not yet handed to hiredis
    std::string error_;
};

// Appends the RESP form of the command `args` to `out`.
void format_command(std::string& out, std::initializer_list<std::string_view> args);

inline std::string_view text_of(const redisReply* r) noexcept {
    return r && r->str ? std::string_view(r->str, r->len) : std::string_view();
}

} // namespace kamaelia::redis::detail
