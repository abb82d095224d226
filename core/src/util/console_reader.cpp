#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/console_reader.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>
#include <optional>
#include <system_error>

namespace kamaelia {

namespace {

constexpr std::size_t chunk_size = 16 * 1024;

// Everything that touches the descriptor lives in the coroutine frame, so
// it is undone whenever the frame goes (end, stop(), destruction) without
// touching the component's members. Completion handlers capture the anchor's
// token and the result cell, never the component: one that runs after the
// reader is gone (as operation_aborted) finds the token cleared.
struct input {
    int fd = -1;
    int saved_flags = -1; // the reactor makes the descriptor non-blocking; put it back
    std::optional<io_anchor> anchor;
    std::shared_ptr<int> result; // the last wait's error code; -1 while one is pending
    std::optional<asio::posix::stream_descriptor> watch;

    input() = default;
    input(const input&) = delete;
    ~input() {
        if (anchor) anchor->clear();
        watch.reset(); // cancels a pending wait and closes our dup
        if (saved_flags != -1) ::fcntl(fd, F_SETFL, saved_flags);
    }

    void arm() {
        *result = -1;
        watch->async_wait(asio::posix::descriptor_base::wait_read,
                          [t = anchor->token(), r = result](const asio::error_code& ec) {
                              if (ec == asio::error::operation_aborted) return;
                              *r = ec.value();
                              io_anchor::signal(t);
                          });
    }
    bool completed() const noexcept { return result && *result != -1; }
};

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

} // namespace

console_reader::console_reader(console_reader_options options) : options_(std::move(options)) {
    if (options_.max_line == 0) options_.max_line = 1;
}

task console_reader::main() {
    control_watch cw;
    input in_;
    in_.fd = options_.fd;
    struct stat st {};
    if (::fstat(in_.fd, &st) != 0) fail("console_reader: fstat");
    // Regular files are always "ready" and epoll refuses them: plain reads.
    bool plain = S_ISREG(st.st_mode);
    if (!plain) {
        in_.saved_flags = ::fcntl(in_.fd, F_GETFL);
        int d = ::dup(in_.fd);
        if (d < 0) fail("console_reader: dup");
        try {
            in_.watch.emplace(sched()->io(), d);
        } catch (...) {
            ::close(d);
            throw;
        }
        in_.anchor.emplace(*this);
        in_.result = std::make_shared<int>(0);
    }
    std::unique_ptr<char[]> buf(new char[chunk_size]);
    std::string partial;
    bool readable = plain; // a watched descriptor is read only after the reactor says so
    bool armed = false;
    for (;;) {
        cw.poll(*this);
        if (cw.ended()) break;           // we are the producer: either kind means stop now
        while (recv_message("inbox")) {} // nothing is read from "inbox"; it must not keep us awake
        if (armed && in_.completed()) {
            armed = false;
            readable = true;
            // Not pollable (e.g. /dev/null): reads on it do not block either.
            if (*in_.result == static_cast<int>(asio::error::operation_not_supported)) plain = true;
        }
        if (!readable) {
            if (!armed) {
                if (!options_.prompt.empty() && partial.empty()) {
                    std::cout << options_.prompt;
                    std::cout.flush();
                }
                in_.arm();
                armed = true;
            }
            co_await wait(ev_inbox | ev_external);
            continue;
        }
        ssize_t n = ::read(in_.fd, buf.get(), chunk_size);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                readable = false;
                continue;
            }
            fail("console_reader: read");
        }
        if (n == 0) { // end of input: the last line may lack its newline
            if (!partial.empty()) {
                std::string line = std::move(partial) + options_.eol;
                partial.clear();
                ++lines_;
                co_await send(std::move(line), "outbox");
            }
            break;
        }
        std::size_t start = 0;
        for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
            if (buf[i] != '\n' && partial.size() + (i - start) < options_.max_line) continue;
            bool newline = buf[i] == '\n';
            partial.append(buf.get() + start, i - start);
            start = newline ? i + 1 : i;
            if (newline && !partial.empty() && partial.back() == '\r') partial.pop_back();
            std::string line = std::move(partial) + options_.eol;
            partial.clear();
            ++lines_;
            co_await send(std::move(line), "outbox");
        }
        partial.append(buf.get() + start, static_cast<std::size_t>(n) - start);
        if (plain) co_await yield(); // a long file must not hold the scheduler
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
