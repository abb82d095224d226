#include <kamaelia/redis/detail/resp.hpp>

#include <algorithm>
#include <array>
#include <new>
#include <stdexcept>

namespace kamaelia::redis::detail {

reply_reader::reply_reader(std::size_t max_pending) : r_(redisReaderCreate()), max_(max_pending) {
    if (!r_) throw std::bad_alloc();
}

reply_reader::~reply_reader() { redisReaderFree(r_); }

bool reply_reader::feed(std::string_view bytes) {
    if (broken()) return false;
    // What an earlier feed left (a caller that stopped early) goes first.
    while (!pending_.empty())
        if (!give_slice()) return false;
    pending_ = bytes;
    return true;
}

bool reply_reader::give_slice() {
    std::size_t n = std::min(pending_.size(), slice);
    if (redisReaderFeed(r_, pending_.data(), n) != REDIS_OK) {
        error_ = "RESP reader: cannot buffer input";
        pending_ = {};
        return false;
    }
    pending_.remove_prefix(n);
    return true;
}

reply_ptr reply_reader::next() {
    for (;;) {
        if (broken()) return nullptr;
        void* out = nullptr;
        if (redisReaderGetReply(r_, &out) != REDIS_OK) {
            error_ = std::string("RESP protocol error: ") + r_->errstr;
            pending_ = {};
            return nullptr;
        }
        if (out) return reply_ptr(static_cast<redisReply*>(out));
        // An incomplete reply: what it holds is bounded (a peer cannot make
        // us buffer without limit).
        if (r_->len - r_->pos > max_) {
            error_ = "a reply larger than " + std::to_string(max_) + " bytes";
            pending_ = {};
            return nullptr;
        }
        if (pending_.empty() || !give_slice()) return nullptr;
    }
}

void format_command(std::string& out, std::initializer_list<std::string_view> args) {
    // No allocation of our own per command: the bridge formats one per message.
    constexpr std::size_t max_args = 8;
    if (args.size() > max_args) throw std::invalid_argument("format_command: too many arguments");
    std::array<const char*, max_args> argv{};
    std::array<std::size_t, max_args> lens{};
    std::size_t i = 0;
    for (auto a : args) {
        argv[i] = a.data();
        lens[i] = a.size();
        ++i;
    }
    char* cmd = nullptr;
    int n = redisFormatCommandArgv(&cmd, static_cast<int>(i), argv.data(), lens.data());
    if (n < 0 || !cmd) throw std::bad_alloc();
    out.append(cmd, static_cast<std::size_t>(n));
    redisFreeCommand(cmd);
}

} // namespace kamaelia::redis::detail
