// The connected socket adapter's reads over real loopback sockets. Small
// input is read by the reactor into the adapter's own 64-byte buffer; input
// that fills it is read on into the scheduler's shared buffer and sent as one
// chunk; larger input switches the next wait to readability. Every size
// around those edges arrives whole and in order, an end of stream or a reset
// is reported after the bytes before it, and input that arrives while the
// adapter is paused is kept without the adapter spinning.
#include "net_support.hpp"

#include <kamaelia/core/deliver.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kamaelia;
using asio::ip::tcp;
using kamaelia::test::connect_pair;
using kamaelia::test::run_until;

namespace {

// Keeps every chunk the adapter sends, and its signals.
struct chunk_sink : component {
    std::vector<std::string> chunks;
    std::size_t bytes = 0;
    bool peer_closed = false;
    std::size_t bytes_at_close = 0;
    std::string shutdown_reason;
    task main() override {
        for (;;) {
            while (auto s = recv<std::string>()) {
                bytes += s->size();
                chunks.push_back(std::move(*s));
            }
            while (auto c = recv<ipc>("control")) {
                if (c->kind == ipc_kind::producer_finished) {
                    peer_closed = true;
                    bytes_at_close = bytes;
                }
                if (c->kind == ipc_kind::socket_shutdown) {
                    shutdown_reason = c->text;
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
    std::string all() const {
        std::string s;
        for (const auto& c : chunks) s += c;
        return s;
    }
};

std::string pattern(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (seed + i) % 26);
    return s;
}

// An adapter on the server end of a loopback pair, its chunks into a sink.
struct reading_end {
    scheduler s;
    test::socket_pair pair = connect_pair(s);
    tcp::socket& cl = pair.client;
    connected_socket_adapter csa{std::move(pair.server)};
    chunk_sink sink;
    reading_end() {
        component::link({csa, "outbox"}, {sink, "inbox"});
        component::link({csa, "signal"}, {sink, "control"});
        csa.activate(s);
        sink.activate(s);
    }
};

} // namespace

TEST_CASE("csa reads: input of every size around the small buffer arrives whole, in order, one chunk a write",
          "[net][csa]") {
    reading_end e;
    auto& [s, pair, cl, csa, sink] = e;

    // Small, at the edge, just over it, large, small again: each size is
    // written alone and read before the next, so each is one read of its own
    // and the adapter switches between its two ways of waiting.
    std::string expect;
    for (std::size_t n : {1u, 63u, 64u, 65u, 5u, 128u, 1000u, 3u, 64u, 20'000u, 7u, 63u}) {
        std::string w = pattern(n, static_cast<char>(n));
        asio::write(cl, asio::buffer(w));
        expect += w;
        std::size_t before = sink.chunks.size();
        REQUIRE(run_until(s, [&] { return sink.bytes == expect.size(); }));
        INFO("a write of " << n << " bytes");
        // Loopback delivers a write this small in one segment: one read, one chunk
        // (the full small buffer and the rest joined).
        if (n <= 1000) CHECK(sink.chunks.size() == before + 1);
    }
    CHECK(sink.all() == expect);
    CHECK(csa.bytes_in() == expect.size());

    // More than the read budget a wake-up (64 KiB) in one write: all of it, in order.
    std::string big = pattern(300'000, 'x');
    asio::write(cl, asio::buffer(big));
    expect += big;
    REQUIRE(run_until(s, [&] { return sink.bytes == expect.size(); }));
    CHECK(sink.all() == expect);

    // The peer's half-close comes after the bytes written before it.
    asio::write(cl, asio::buffer(std::string("bye\n")));
    cl.shutdown(tcp::socket::shutdown_send);
    expect += "bye\n";
    REQUIRE(run_until(s, [&] { return sink.peer_closed; }));
    CHECK(sink.bytes_at_close == expect.size());
    CHECK(sink.all() == expect);
    deliver(csa, "control", message(producer_finished("test done")));
    REQUIRE(run_until(s, [&] { return !sink.shutdown_reason.empty(); }));
}

TEST_CASE("csa reads: a close without input, and a close right after a full small buffer", "[net][csa]") {
    for (std::size_t n : {0u, 64u}) {
        reading_end e;
        auto& [s, pair, cl, csa, sink] = e;
        REQUIRE(run_until(s, [&] { return s.run_queue_depth() == 0; })); // the first read is armed
        std::string w = pattern(n, 'k');
        if (n) asio::write(cl, asio::buffer(w));
        cl.shutdown(tcp::socket::shutdown_send);
        INFO(n << " bytes before the close");
        REQUIRE(run_until(s, [&] { return sink.peer_closed; }));
        CHECK(sink.bytes_at_close == n);
        CHECK(sink.all() == w);
        deliver(csa, "control", message(producer_finished("test done")));
        REQUIRE(run_until(s, [&] { return !sink.shutdown_reason.empty(); }));
    }
}

TEST_CASE("csa reads: a reset while a small read waits closes with the read's error", "[net][csa]") {
    reading_end e;
    auto& [s, pair, cl, csa, sink] = e;
    asio::write(cl, asio::buffer(std::string("hi\n")));
    REQUIRE(run_until(s, [&] { return sink.bytes == 3; }));
    // The next small read is armed; the client resets (linger 0).
    cl.set_option(asio::socket_base::linger(true, 0));
    cl.close();
    REQUIRE(run_until(s, [&] { return !sink.shutdown_reason.empty(); }));
    CHECK(sink.shutdown_reason.rfind("read failed", 0) == 0);
    CHECK(csa.close_reason() == sink.shutdown_reason);
}

namespace {
// Answers its first chunk with `big` bytes, every later one with "ok\n".
struct big_then_small : component {
    std::size_t big;
    std::size_t answered = 0;
    explicit big_then_small(std::size_t n) : big(n) {}
    task main() override {
        for (;;) {
            while (auto s = recv<std::string>()) {
                // (A named value: with GCC 12 a conditional's temporary inside co_await
                // lost its buffer before the adapter wrote it.)
                std::string reply = answered++ == 0 ? std::string(big, 'B') : std::string("ok\n");
                co_await send(std::move(reply));
            }
            if (recv<ipc>("control")) co_return;
            co_await wait_any();
        }
    }
};
} // namespace

TEST_CASE("csa reads: input that arrives while a client does not read its replies waits, without a busy loop",
          "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    csa_options opt;
    opt.high_watermark = 64 * 1024;
    opt.low_watermark = 16 * 1024;
    connected_socket_adapter csa(std::move(sv), opt);
    // More than loopback's socket buffers take: the rest stays above the high watermark.
    constexpr std::size_t big = 32u << 20;
    big_then_small handler(big);
    component::link({csa, "outbox"}, {handler, "inbox"});
    component::link({handler, "outbox"}, {csa, "inbox"});
    component::link({csa, "signal"}, {handler, "control"});
    csa.activate(s);
    handler.activate(s);

    asio::write(cl, asio::buffer(std::string("first\n")));
    REQUIRE(run_until(s, [&] { return csa.pending_write_bytes() >= opt.high_watermark && s.run_queue_depth() == 0; }));
    // A second request while the adapter holds its reply: nothing may spin.
    asio::write(cl, asio::buffer(std::string("second\n")));
    std::size_t cycles = s.run_until_idle(100'000);
    CHECK(cycles < 100'000);
    CHECK(s.run_queue_depth() == 0);
    CHECK(handler.answered == 1); // read, or held, but not answered while paused

    // The client reads the reply: the adapter resumes, and "second" is answered.
    std::string got;
    got.resize(big + 3);
    std::size_t have = 0;
    cl.non_blocking(true);
    bool all = run_until(s, [&] {
        asio::error_code ec;
        have += cl.read_some(asio::buffer(got.data() + have, got.size() - have), ec);
        return have == got.size();
    });
    INFO("read " << have << " of " << got.size() << ", " << csa.pending_write_bytes() << " pending, answered "
                 << handler.answered << ", " << csa.write_calls() << " writes, " << csa.bytes_out() << " out, " << csa.bytes_in() << " in");
    REQUIRE(all);
    CHECK(got.substr(big) == "ok\n");
    CHECK(handler.answered == 2);
}
