// The plain Asio peer of net.relay_100 (scripts/bench-net): the streaming
// splitter of `kamaelia relay --source tcp://HOST:PORT` written by hand, one
// io_context on one thread, as a plain Asio programmer would: the source is
// read in reads of up to 64 KiB, cut into 16 KiB chunks shared by every
// client (one allocation a chunk, a reference a client), and each client has
// a bounded queue with one gathered write in flight. A client whose queue
// would pass the bound is cut off (closed), as `kamaelia relay`'s backplane
// does (policy fail): the bound is ours, 256 KiB (the socket adapter's high
// watermark) plus 16 chunks of 16 KiB. When the source ends, every client is
// flushed and closed and the program exits. Binds 127.0.0.1 only.
//
// Usage: bench_asio_relay_peer PORT SRC_HOST SRC_PORT [MAX_SECS=900]
// Prints "listening PORT" when ready; exits on SIGINT/SIGTERM or after MAX_SECS.
#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using asio::ip::tcp;

namespace {

constexpr std::size_t chunk_size = 16 * 1024;
constexpr std::size_t read_size = 64 * 1024;
constexpr std::size_t queue_limit = 256 * 1024 + 16 * chunk_size; // bytes a client may have queued

using chunk = std::shared_ptr<const std::string>;

struct client : std::enable_shared_from_this<client> {
    explicit client(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    std::deque<chunk> queue;
    std::size_t queued = 0;
    std::size_t in_flight = 0; // chunks of the write in flight (the front of the queue)
    bool closing = false;      // flush, then close
    bool dead = false;
    char sink[4096];
    std::vector<asio::const_buffer> bufs;

    void start() {
        asio::error_code ec;
        sock.set_option(tcp::no_delay(true), ec);
        read_more();
    }
    // The client has nothing to say: its bytes are dropped; its end ends it.
    void read_more() {
        sock.async_read_some(asio::buffer(sink), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
            if (ec) {
                self->kill();
                return;
            }
            self->read_more();
        });
    }
    // false: cut off (the queue would pass the bound)
    bool push(const chunk& c) {
        if (dead) return false;
        if (queued + c->size() > queue_limit) {
            kill();
            return false;
        }
        queue.push_back(c);
        queued += c->size();
        if (!in_flight) write_more();
        return true;
    }
    void write_more() {
        if (dead) return;
        if (queue.empty()) {
            if (closing) {
                asio::error_code ec;
                sock.shutdown(tcp::socket::shutdown_send, ec);
                kill();
            }
            return;
        }
        bufs.clear();
        for (auto& c : queue) bufs.emplace_back(asio::buffer(*c));
        in_flight = queue.size();
        asio::async_write(sock, bufs, [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
            if (ec) {
                self->kill();
                return;
            }
            for (std::size_t i = 0; i < self->in_flight; ++i) {
                self->queued -= self->queue.front()->size();
                self->queue.pop_front();
            }
            self->in_flight = 0;
            self->write_more();
        });
    }
    void finish() {
        closing = true;
        if (!in_flight) write_more();
    }
    void kill() {
        if (dead) return;
        dead = true;
        asio::error_code ec;
        sock.close(ec);
        queue.clear();
        queued = 0;
    }
};

struct relay {
    explicit relay(asio::io_context& io) : io(io), acc(io), source(io) {}
    asio::io_context& io;
    tcp::acceptor acc;
    tcp::socket source;
    std::vector<std::shared_ptr<client>> clients;
    std::vector<char> buf = std::vector<char>(read_size);
    unsigned long long cut = 0;
    bool ended = false;
    std::function<void()> on_end;

    void accept() {
        acc.async_accept([this](const asio::error_code& ec, tcp::socket s) {
            if (ec == asio::error::operation_aborted || ended) return;
            if (!ec) {
                auto c = std::make_shared<client>(std::move(s));
                c->start();
                clients.push_back(std::move(c));
            }
            accept(); // e.g. EMFILE: keep serving the others
        });
    }
    void read_source() {
        source.async_read_some(asio::buffer(buf), [this](const asio::error_code& ec, std::size_t n) {
            if (ec) {
                end();
                return;
            }
            for (std::size_t at = 0; at < n; at += chunk_size) {
                auto c = std::make_shared<const std::string>(buf.data() + at, std::min(chunk_size, n - at));
                fan_out(c);
            }
            read_source();
        });
    }
    void fan_out(const chunk& c) {
        std::size_t keep = 0;
        for (auto& cl : clients) {
            if (!cl->push(c)) {
                ++cut; // or gone already
                continue;
            }
            clients[keep++] = std::move(cl);
        }
        clients.resize(keep);
    }
    void end() {
        ended = true;
        asio::error_code ec;
        acc.close(ec);
        for (auto& cl : clients) cl->finish();
        clients.clear();
        if (on_end) on_end();
    }
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s PORT SRC_HOST SRC_PORT [MAX_SECS]\n", argv[0]);
        return 2;
    }
    auto port = static_cast<unsigned short>(std::atoi(argv[1]));
    int max_secs = argc > 4 ? std::atoi(argv[4]) : 900;
    asio::io_context io(1);
    relay r(io);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    r.acc.open(ep.protocol());
    r.acc.set_option(tcp::acceptor::reuse_address(true));
    r.acc.bind(ep);
    r.acc.listen(4096);
    r.source.connect(tcp::endpoint(asio::ip::make_address(argv[2]), static_cast<unsigned short>(std::atoi(argv[3]))));
    asio::signal_set sigs(io, SIGINT, SIGTERM);
    sigs.async_wait([&](auto, int) { io.stop(); });
    asio::steady_timer limit(io, std::chrono::seconds(max_secs));
    limit.async_wait([&](asio::error_code e) {
        if (!e) io.stop();
    });
    r.on_end = [&] {
        sigs.cancel();
        limit.cancel();
    };
    r.accept();
    r.read_source();
    std::printf("listening %u\n", static_cast<unsigned>(r.acc.local_endpoint().port()));
    std::fflush(stdout);
    io.run();
    return 0;
}
