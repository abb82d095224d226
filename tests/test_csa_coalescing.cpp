// The connected socket adapter's write coalescing, over real loopback
// sockets: output taken in one busy stretch leaves in few gathered writes,
// complete and in order; coalesce_bytes=0 and the threshold write at once; a
// reply to input read is not held back; closing writes what was deferred.
//
// Stepped with run_once(), the scheduler polls its I/O at the start of every
// step, so output deferred in one step is written at the start of the next.
// Run with run(), it polls every few cycles or when nothing is queued, as a
// server does.
#include "net_support.hpp"

#include <kamaelia/core/deliver.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <string>

using namespace kamaelia;
using asio::ip::tcp;
using kamaelia::test::connect_pair;

namespace {

std::string numbered_line(std::size_t i, std::size_t width = 10) {
    std::string s = "line " + std::to_string(i);
    s.resize(width - 1, '.');
    return s + "\n";
}

std::string numbered_lines(std::size_t n, std::size_t width = 10) {
    std::string all;
    for (std::size_t i = 0; i < n; ++i) all += numbered_line(i, width);
    return all;
}

// Reads exactly n bytes (blocking: everything was written before).
std::string read_exactly(tcp::socket& c, std::size_t n) {
    std::string got(n, '\0');
    asio::read(c, asio::buffer(got));
    return got;
}

// Reads until the peer closes.
std::string read_to_end(tcp::socket& c) {
    std::string got;
    asio::error_code ec;
    asio::read(c, asio::dynamic_buffer(got), ec);
    REQUIRE(ec == asio::error::eof);
    return got;
}

// Sends n numbered lines, one a scheduler cycle (as a handler fed by a busy
// backplane does), then ends with `end` out of "signal".
struct line_producer : component {
    std::size_t n;
    std::size_t width;
    ipc end;
    line_producer(std::size_t count, std::size_t w, ipc e) : n(count), width(w), end(std::move(e)) {}
    task main() override {
        for (std::size_t i = 0; i < n; ++i) {
            co_await send(numbered_line(i, width));
            co_await yield();
        }
        send_forced(message(end), "signal");
    }
};

// Runs a producer into an adapter with the real loop until both end; returns
// the adapter's write calls, and what the client read.
struct produced {
    std::uint64_t write_calls;
    std::string bytes;
    std::string reason;
};

produced run_producer(std::size_t n, csa_options opt, ipc end, std::size_t width = 10) {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    connected_socket_adapter csa(std::move(sv), opt);
    line_producer p(n, width, std::move(end));
    component::link({p, "outbox"}, {csa, "inbox"});
    component::link({p, "signal"}, {csa, "control"});
    csa.activate(s);
    p.activate(s);
    s.run(); // until both have finished: the adapter closes after its last write
    // Everything fits the loopback socket's buffer: the client reads afterwards.
    return {csa.write_calls(), read_to_end(cl), csa.close_reason()};
}

} // namespace

TEST_CASE("csa coalescing: output deferred in a step leaves in one write at the next I/O poll", "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    connected_socket_adapter csa(std::move(sv));
    // 1,000 small sends in one cycle.
    for (std::size_t i = 0; i < 1000; ++i) deliver(csa, "inbox", message(numbered_line(i)));
    csa.activate(s);
    s.run_once();
    CHECK(csa.write_calls() == 0); // taken, not written yet
    CHECK(csa.pending_write_bytes() == 10'000);
    s.run_once();
    CHECK(csa.pending_write_bytes() == 0);
    CHECK(csa.write_calls() == 16); // ceil(1000 / 64 chunks a writev): strings of their own are moved in
    CHECK(csa.bytes_out() == 10'000);
    CHECK(read_exactly(cl, 10'000) == numbered_lines(1000));
}

TEST_CASE("csa coalescing: small shared payloads join one chunk, large shared ones are written from their one copy",
          "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    connected_socket_adapter csa(std::move(sv));
    // A fan-out's shares: small lines (joined), then 20 payloads of 2 KiB,
    // each its own chunk, kept by reference; under coalesce_bytes in all.
    std::string expected;
    std::vector<message> held;
    for (std::size_t i = 0; i < 300; ++i) {
        message m(numbered_line(i));
        held.push_back(m.share());
        expected += numbered_line(i);
        deliver(csa, "inbox", std::move(m));
    }
    std::string big(2048, 'b');
    auto shared_big = make_shared_message(big);
    for (std::size_t i = 0; i < 20; ++i) {
        deliver(csa, "inbox", message(shared_big));
        expected += big;
    }
    CHECK(shared_big.use_count() == 21);
    csa.activate(s);
    s.run_once();
    CHECK(csa.write_calls() == 0);
    CHECK(shared_big.use_count() == 21); // queued by reference, not copied
    s.run_once();
    CHECK(csa.pending_write_bytes() == 0);
    CHECK(shared_big.use_count() == 1); // each share freed once written
    // One chunk of lines + 20 chunks of 2 KiB: one writev.
    CHECK(csa.write_calls() == 1);
    CHECK(read_exactly(cl, expected.size()) == expected);
    // The shared lines were copied, never changed.
    for (std::size_t i = 0; i < held.size(); ++i) CHECK(*held[i].peek<std::string>() == numbered_line(i));
}

TEST_CASE("csa coalescing: one line a cycle leaves in few writes under the real loop, all of it in order",
          "[net][csa]") {
    // The loop polls I/O once every 16 cycles while components are queued.
    produced r = run_producer(400, csa_options{}, producer_finished("done"));
    CHECK(r.reason == "closed by handler");
    CHECK(r.bytes == numbered_lines(400));
    CHECK(r.write_calls <= 400 / 8);

    // coalesce_bytes = 0: every cycle's output is written when it is taken.
    csa_options off;
    off.coalesce_bytes = 0;
    produced each = run_producer(400, off, producer_finished("done"));
    CHECK(each.bytes == numbered_lines(400));
    CHECK(each.write_calls >= 400 / 2); // a resume may find two lines (round-robin order)
    CHECK(each.write_calls > 4 * r.write_calls);
}

TEST_CASE("csa coalescing: coalesce_bytes=0 writes in the step that takes the output", "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    csa_options opt;
    opt.coalesce_bytes = 0;
    connected_socket_adapter csa(std::move(sv), opt);
    for (std::size_t i = 0; i < 5; ++i) deliver(csa, "inbox", message(numbered_line(i)));
    csa.activate(s);
    s.run_once();
    CHECK(csa.write_calls() == 1);
    CHECK(csa.pending_write_bytes() == 0);
    deliver(csa, "inbox", message(numbered_line(5)));
    s.run_once();
    CHECK(csa.write_calls() == 2);
    CHECK(read_exactly(cl, 60) == numbered_lines(6));
}

TEST_CASE("csa coalescing: reaching coalesce_bytes writes at once", "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    csa_options opt;
    opt.coalesce_bytes = 1000;
    connected_socket_adapter csa(std::move(sv), opt);
    csa.activate(s);
    s.run_once(); // the first resume: nothing to write yet
    // Under the threshold: deferred.
    for (std::size_t i = 0; i < 9; ++i) deliver(csa, "inbox", message(numbered_line(i, 100)));
    s.run_once();
    CHECK(csa.write_calls() == 0);
    CHECK(csa.pending_write_bytes() == 900);
    s.run_once();
    CHECK(csa.write_calls() == 1);
    CHECK(csa.pending_write_bytes() == 0);
    // At the threshold: written in the step that takes it.
    for (std::size_t i = 9; i < 19; ++i) deliver(csa, "inbox", message(numbered_line(i, 100)));
    s.run_once();
    CHECK(csa.write_calls() == 2);
    CHECK(csa.pending_write_bytes() == 0);
    CHECK(read_exactly(cl, 1900) == numbered_lines(19, 100));
}

TEST_CASE("csa coalescing: a reply to input read is written at once, other output is deferred", "[net][csa]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    connected_socket_adapter csa(std::move(sv));
    pure_transformer echo([](std::string line) { return "echo " + line; });
    component::link({csa, "outbox"}, {echo, "inbox"});
    component::link({echo, "outbox"}, {csa, "inbox"});
    csa.activate(s);
    echo.activate(s);
    s.run_once();

    asio::write(cl, asio::buffer(std::string("ping\n")));
    // Step until the reply is out; at no step's end is it held back.
    bool answered = test::run_until(s, [&] {
        REQUIRE(csa.pending_write_bytes() == 0);
        return csa.bytes_out() == 10;
    });
    REQUIRE(answered);
    CHECK(csa.write_calls() == 1);
    CHECK(read_exactly(cl, 10) == "echo ping\n");

    // Output that answers nothing waits for the next I/O poll.
    deliver(csa, "inbox", message(std::string("news\n")));
    s.run_once();
    CHECK(csa.pending_write_bytes() == 5);
    s.run_once();
    CHECK(csa.pending_write_bytes() == 0);
    CHECK(read_exactly(cl, 5) == "news\n");
}

TEST_CASE("csa coalescing: a close writes what was deferred first", "[net][csa]") {
    SECTION("producer_finished after deferred output") {
        scheduler s;
        auto [sv, cl] = connect_pair(s);
        connected_socket_adapter csa(std::move(sv));
        csa.activate(s);
        for (std::size_t i = 0; i < 3; ++i) deliver(csa, "inbox", message(numbered_line(i)));
        s.run_once();
        CHECK(csa.pending_write_bytes() == 30); // deferred
        // The finish comes with more output: that is written at once, and the
        // adapter closes in the same step.
        for (std::size_t i = 3; i < 5; ++i) deliver(csa, "inbox", message(numbered_line(i)));
        deliver(csa, "control", message(producer_finished("done")));
        s.run_once();
        CHECK(csa.finished());
        CHECK(csa.close_reason() == "closed by handler");
        CHECK(read_to_end(cl) == numbered_lines(5));
    }
    SECTION("shutdown_microprocess before the I/O poll") {
        // Under the real loop no poll comes between the line taken and the
        // stop (the loop polls every 16 cycles): the stop writes it.
        produced r = run_producer(3, csa_options{}, shutdown_microprocess("stop"));
        CHECK(r.reason == "shut down");
        CHECK(r.bytes == numbered_lines(3));
    }
}
