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

    // False once broken (see error()).
    bool feed(std::string_view bytes);
    // The next complete reply, or nullptr (none yet, or broken: error()).
    reply_ptr next();
    bool broken() const noexcept { return !error_.empty(); }
    const std::string& error() const noexcept { return error_; }

private:
    redisReader* r_;
    std::size_t max_;
    std::string error_;
};

// Appends the RESP form of the command `args` to `out`.
void format_command(std::string& out, std::initializer_list<std::string_view> args);

inline std::string_view text_of(const redisReply* r) noexcept {
    return r && r->str ? std::string_view(r->str, r->len) : std::string_view();
}

} // namespace kamaelia::redis::detail
