#include "relay.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/null_sink.hpp>

#include <asio/posix/stream_descriptor.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace kamaelia::servers {

stream_reader::stream_reader(int fd, std::size_t chunk_size) : fd_(fd), chunk_(chunk_size ? chunk_size : 1) {}

stream_reader::~stream_reader() {
    if (fd_ > 2) ::close(fd_);
}

namespace {
// The reactor's wait lives in the frame; its handler holds the anchor's
// token and a result cell, never the component (see console_reader).
struct watched {
    std::optional<io_anchor> anchor;
    std::shared_ptr<int> result = std::make_shared<int>(0);
    std::optional<asio::posix::stream_descriptor> watch;
    ~watched() {
        if (anchor) anchor->clear();
        watch.reset();
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
};
} // namespace

task stream_reader::main() {
    control_watch cw;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw std::system_error(errno, std::generic_category(), "relay source");
    bool plain = S_ISREG(st.st_mode);
    watched w;
    if (!plain) {
        int flags = ::fcntl(fd_, F_GETFL);
        ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
        int d = ::dup(fd_);
        if (d < 0) throw std::system_error(errno, std::generic_category(), "relay source: dup");
        w.watch.emplace(sched()->io(), d);
        w.anchor.emplace(*this);
    }
    std::unique_ptr<char[]> buf(new char[chunk_]);
    // A FIFO with no writer yet reads as end of file: wait for the reactor
    // first (it reports nothing until a writer has come).
    bool armed = !plain;
    if (armed) w.arm();
    for (;;) {
        cw.poll(*this);
        if (cw.ended()) break;
        while (recv_message("inbox")) {}
        if (!plain) {
            if (armed && *w.result == -1) {
                co_await wait(ev_inbox | ev_external);
                continue;
            }
            armed = false;
        }
        ssize_t n = ::read(fd_, buf.get(), chunk_);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                w.arm();
                armed = true;
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "relay source: read");
        }
        if (n == 0) break; // end of the stream
        bytes_ += static_cast<std::uint64_t>(n);
        co_await send(std::string(buf.get(), static_cast<std::size_t>(n)));
        if (plain) co_await yield(); // a long file must not hold the scheduler
    }
    if (cw.ended()) {
        cw.forward_end(*this);
    } else {
        send_forced(message(producer_finished("end of the relay source")), "signal");
    }
}

task rechunk::main() {
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto chunk = recv<std::string>()) {
            for (std::size_t at = 0; at < chunk->size(); at += size_) {
                std::string piece = chunk->substr(at, size_);
                co_await send(std::move(piece));
            }
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

relay_server::relay_server() {
    server_name = "relay";
    port = 1800;
    protocol = [this](const connection_info&) {
        // The client has nothing to say: its bytes are dropped (null_sink), and
        // its half-close or disconnect ends its subscription.
        return pipeline(null_sink(), static_cast<long long>(subscriber_limit), subscribe_to(backplane_name));
    };
}

relay_source_spec parse_relay_source(const std::string& text) {
    relay_source_spec s;
    if (text == "-") return s;
    if (text.rfind("file:", 0) == 0) {
        s.kind = relay_source_spec::file;
        s.path = text.substr(5);
        if (s.path.empty()) throw std::invalid_argument("--source file: needs a path");
        return s;
    }
    if (text.rfind("tcp://", 0) == 0) {
        std::string hp = text.substr(6);
        auto colon = hp.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == hp.size())
            throw std::invalid_argument("--source tcp://HOST:PORT, got " + text);
        s.kind = relay_source_spec::tcp;
        s.host = hp.substr(0, colon);
        if (s.host.size() > 2 && s.host.front() == '[' && s.host.back() == ']')
            s.host = s.host.substr(1, s.host.size() - 2);
        unsigned v = 0;
        auto port = hp.substr(colon + 1);
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
            throw std::invalid_argument("--source: bad port in " + text);
        s.port = static_cast<std::uint16_t>(v);
        return s;
    }
    throw std::invalid_argument("--source must be tcp://HOST:PORT, file:PATH or -, got " + text);
}

} // namespace kamaelia::servers
