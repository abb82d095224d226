#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/multicast/file_reader.hpp>
#include <kamaelia/multicast/token_bucket.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>

namespace kamaelia::multicast {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
    throw std::system_error(errno, std::generic_category(), "file_reader: cannot " + what + " " + path);
}

} // namespace

file_reader::file_reader(file_reader_options o) : opt_(std::move(o)) {
    if (opt_.chunk_size == 0) throw std::invalid_argument("file_reader: chunk_size must be positive");
    if (opt_.chunks_per_message == 0) opt_.chunks_per_message = 1;
    if (opt_.rate < 0) throw std::invalid_argument("file_reader: the rate must not be negative");
}

file_reader::file_reader(file_reader&& o) noexcept
    : component(std::move(o)),
      opt_(std::move(o.opt_)),
      fd_(o.fd_),
      size_(o.size_) {
    o.fd_ = -1;
}

file_reader::~file_reader() {
    teardown_now();
    if (fd_ >= 0) ::close(fd_);
}

task file_reader::main() {
    fd_ = ::open(opt_.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("open", opt_.path);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail("stat", opt_.path);
    size_ = static_cast<std::uint64_t>(st.st_size);

    const std::size_t chunk = opt_.chunk_size;
    const std::size_t per_message = chunk * opt_.chunks_per_message;
    // The bucket holds 20 ms of the rate (two messages at least): a timer
    // that fires late on a busy machine does not cost rate, and the burst
    // that makes up for it stays short.
    std::optional<token_bucket> bucket;
    if (opt_.rate > 0)
        bucket.emplace(opt_.rate, std::max(2.0 * static_cast<double>(per_message), opt_.rate * 0.02), sched()->now());
    // Wake-ups come at most every couple of milliseconds: at high rates a
    // wake-up per chunk would cost more than the chunk. At low rates the
    // burst is one chunk, so the stream stays smooth.
    const std::size_t burst =
        std::clamp<std::size_t>(static_cast<std::size_t>(opt_.rate * 0.002) / chunk * chunk, chunk, per_message);

    control_watch cw;
    std::uint64_t pass = 0;
    std::uint64_t offset = 0;
    while (opt_.repeat == 0 || pass < opt_.repeat) {
        cw.poll(*this);
        if (cw.ended()) break;
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(per_message, size_ - offset));
        if (bucket) {
            // As many whole chunks as the tokens pay for (at least one). An
            // empty file's one packet costs a chunk's time, so a carousel of
            // an empty file does not run flat out.
            std::size_t cost = n > 0 ? n : chunk;
            double have = bucket->available(sched()->now());
            std::size_t first = std::min(cost, burst);
            if (have < static_cast<double>(first)) {
                time_point at = bucket->ready_at(static_cast<double>(first), sched()->now());
                co_await wait_for("control", at - sched()->now());
                continue;
            }
            if (n > 0) {
                std::size_t affordable = static_cast<std::size_t>(have) / chunk * chunk;
                n = std::max(first, std::min(n, affordable));
            }
            bucket->take(static_cast<double>(n > 0 ? n : first), sched()->now());
        }
        file_chunk c;
        c.pass = pass;
        c.offset = offset;
        c.data.resize(n);
        std::size_t got = 0;
        while (got < n) {
            ssize_t r = ::pread(fd_, c.data.data() + got, n - got, static_cast<off_t>(offset + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) fail("read", opt_.path);
            if (r == 0) throw std::runtime_error("file_reader: " + opt_.path + " shrank while it was being sent");
            got += static_cast<std::size_t>(r);
        }
        bytes_ += n;
        offset += n;
        co_await send(std::move(c));
        if (offset >= size_) {
            offset = 0;
            ++pass;
            passes_ = pass;
        }
    }
    ::close(fd_);
    fd_ = -1;
    cw.forward_end(*this);
}

} // namespace kamaelia::multicast
