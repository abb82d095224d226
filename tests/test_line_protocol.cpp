// line_protocol: a line protocol in one component (framing, f per line,
// batched replies, the pipeline's ending), on an embedded connection.
#include "embedded.hpp"

#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/slab.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/greeter.hpp>
#include <kamaelia/protocols/line_protocol.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>

using namespace kamaelia;
using kamaelia::test::embedded_connection;
using kamaelia::test::fixture;

namespace {

auto echo_protocol(std::size_t max_line = default_max_line) {
    return line_protocol([](std::string l) { return "<" + l + ">"; }, max_line);
}

template <class P>
std::unique_ptr<component> boxed(P p) {
    return std::make_unique<P>(std::move(p));
}

// Messages the handler sent to the socket so far.
std::uint64_t messages_to_socket(embedded_connection& c) { return c.sock.in("inbox").delivered(); }

// A socket whose peer never reads: its inbox holds one message, and it only
// listens to control.
struct stuck_socket : component {
    std::vector<ipc> controls;
    task main() override {
        in("inbox").set_limit(1);
        for (;;) {
            while (auto c = recv<ipc>("control")) {
                controls.push_back(*c);
                if (c->ends()) co_return;
            }
            co_await wait_for("control");
        }
    }
};

} // namespace

TEST_CASE("line_protocol: pipelined lines get one reply message, in order", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    c.write("a\nb\nc\n");
    CHECK(c.read() == "<a>\n<b>\n<c>\n");
    CHECK(messages_to_socket(c) == 1);
    // Chunks that wait together are one batch: one message for all of them.
    deliver(*c.handler, "inbox", message(std::string("d\n")));
    deliver(*c.handler, "inbox", message(std::string("e\nf")));
    deliver(*c.handler, "inbox", message(std::string("\n")));
    f.settle();
    CHECK(c.read() == "<d>\n<e>\n<f>\n");
    CHECK(messages_to_socket(c) == 2);
    // Input without a complete line sends nothing.
    c.write("par");
    CHECK(c.read().empty());
    CHECK(messages_to_socket(c) == 2);
    c.write("tial\n");
    CHECK(c.read() == "<partial>\n");
}

TEST_CASE("line_protocol: replies end as the client ended each line", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    c.write("crlf\r\n");
    CHECK(c.read() == "<crlf>\r\n");
    c.write("lf\n");
    CHECK(c.read() == "<lf>\n");
    c.write(std::string("telnet\r\0", 8));
    CHECK(c.read() == "<telnet>\r\n");
    // A CR at the end of a chunk waits for the next byte.
    c.write("split\r");
    CHECK(c.read().empty());
    c.write("\n");
    CHECK(c.read() == "<split>\r\n");
    // Mixed in one batch: each line's own end.
    c.write("one\r\ntwo\n");
    CHECK(c.read() == "<one>\r\n<two>\n");
    c.write("\n\r\n");
    CHECK(c.read() == "<>\n<>\r\n");
}

TEST_CASE("line_protocol: telnet negotiation is stripped, across chunks too", "[line_protocol][telnet]") {
    fixture f;
    embedded_connection c(f, boxed(greeter_protocol()));
    c.write(std::string("\xff\xfd\x03\xff\xfb\x18") + "you" + std::string("\r\0", 2));
    CHECK(c.read() == "hello you\r\n");
    // IAC, then WILL ECHO in the next chunk, then a subnegotiation split over three.
    c.write("sp\xff");
    c.write("\xfb\x01lit\xff\xfa\x1f");
    c.write(std::string("\x00\x50\xff", 3));
    c.write("\xf0!\r\n");
    CHECK(c.read() == "hello split!\r\n");
    // IAC IAC is one 0xFF data byte, escaped again in the reply.
    c.write("ff\xff\xff"
            "ff\r\n");
    CHECK(c.read() == "hello ff\xff\xff"
                      "ff\r\n");
}

TEST_CASE("line_protocol: a line over max_line is refused, the lines before it are answered", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol(8)));
    c.write("12345678\n"); // exactly max_line
    CHECK(c.read() == "<12345678>\n");
    c.write("ok\n123456789\nnever\n");
    CHECK(c.read() == "<ok>\nerror: line too long (the limit is 8 bytes)\n");
    CHECK(messages_to_socket(c) == 2); // the replies and the error leave together
    REQUIRE(c.sock.closed);
    REQUIRE(!c.sock.controls.empty());
    CHECK(c.sock.controls.back().kind == ipc_kind::protocol_error);
    CHECK(c.sock.controls.back().text == "error: line too long (the limit is 8 bytes)");
    CHECK(f.sched.live() == 0);
}

TEST_CASE("line_protocol: a long line without its end is refused before it is kept", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol(64)));
    c.write(std::string(60, 'a'));
    CHECK_FALSE(c.sock.closed);
    c.write(std::string(60, 'b')); // 120 bytes, no end: over the bound already
    CHECK(c.read() == "error: line too long (the limit is 64 bytes)\r\n");
    CHECK(c.sock.closed);
}

TEST_CASE("line_protocol: input that ends mid-line is answered, then producer_finished", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    c.write("one\nlast");
    c.close_input();
    CHECK(c.read() == "<one>\n<last>\n");
    REQUIRE(c.sock.closed);
    CHECK(c.sock.controls.back().kind == ipc_kind::producer_finished);
    CHECK(f.sched.live() == 0);
    // A lone CR at the end is no line.
    fixture g;
    embedded_connection d(g, boxed(echo_protocol()));
    d.write("x\r\n\r");
    d.close_input();
    CHECK(d.read() == "<x>\r\n");
    CHECK(d.sock.controls.back().kind == ipc_kind::producer_finished);
}

TEST_CASE("line_protocol: a stop while waiting ends it at once, passing the stop on", "[line_protocol]") {
    for (ipc_kind k : {ipc_kind::shutdown_microprocess, ipc_kind::server_shutdown}) {
        fixture f;
        embedded_connection c(f, boxed(echo_protocol()));
        c.write("a\npending");
        CHECK(c.read() == "<a>\n");
        deliver(*c.handler, "control", message(ipc{k, "server stopping"}));
        f.settle();
        CHECK(c.read().empty()); // the unfinished line is dropped
        REQUIRE(c.sock.closed);
        CHECK(c.sock.controls.back().kind == k);
        CHECK(c.handler->finished());
        CHECK(f.sched.live() == 0);
    }
}

TEST_CASE("line_protocol: once the socket has gone nothing is sent", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    c.write("last words");
    deliver(*c.handler, "control", message(socket_shutdown("peer reset")));
    f.settle();
    CHECK(c.read().empty());
    CHECK(messages_to_socket(c) == 0);
    CHECK(c.sock.controls.back().kind == ipc_kind::socket_shutdown);
    CHECK(c.handler->finished());
}

TEST_CASE("line_protocol: a protocol_error on control is written to the client", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    c.write("a\r\nb");
    deliver(*c.handler, "control", message(protocol_error("error: go away")));
    f.settle();
    CHECK(c.read() == "<a>\r\n<b>\r\nerror: go away\r\n");
    CHECK(c.sock.controls.back().kind == ipc_kind::protocol_error);
}

TEST_CASE("line_protocol: f may answer nothing, or fail", "[line_protocol]") {
    fixture f;
    auto odd_only = line_protocol([](std::string l) -> std::optional<std::string> {
        if (l == "boom") throw std::runtime_error("boom");
        if (l.size() % 2 == 0) return std::nullopt;
        return l;
    });
    embedded_connection c(f, boxed(std::move(odd_only)));
    c.write("a\nbb\nccc\n");
    CHECK(c.read() == "a\nccc\n");
    c.write("boom\n");
    CHECK(c.handler->failed());
    REQUIRE(c.sock.closed);
    CHECK(c.sock.controls.back().kind == ipc_kind::component_error);
}

TEST_CASE("line_protocol: a batch's replies leave in messages of at most a chunk's worth", "[line_protocol]") {
    fixture f;
    embedded_connection c(f, boxed(echo_protocol()));
    std::string in, want;
    for (int i = 0; i < 20000; ++i) {
        in += std::to_string(i) + "\n";
        want += "<" + std::to_string(i) + ">\n";
    }
    c.write(in);
    CHECK(c.read() == want);
    std::uint64_t n = messages_to_socket(c);
    CHECK(n >= want.size() / lines_to_chunks::default_max_chunk);
    CHECK(n <= want.size() / lines_to_chunks::default_max_chunk + 1);
}

TEST_CASE("line_protocol: a stop reaches it while it waits for room at the socket", "[line_protocol]") {
    fixture f;
    auto h = boxed(echo_protocol());
    auto& handler = *h;
    stuck_socket sock;
    component::link({sock, "outbox"}, {handler, "inbox"});
    component::link({handler, "outbox"}, {sock, "inbox"});
    component::link({handler, "signal"}, {sock, "control"});
    component::link({sock, "signal"}, {handler, "control"});
    sock.activate(f.sched);
    handler.activate(f.sched);
    f.settle();
    // Three messages' worth of replies ("<>\n" a line): the first fills the
    // socket's inbox, the second waits for room.
    deliver(handler, "inbox", message(std::string(lines_to_chunks::default_max_chunk, '\n')));
    f.settle();
    CHECK_FALSE(handler.finished());
    CHECK(sock.in("inbox").size() == 1);
    deliver(handler, "control", message(shutdown_microprocess("server stopping")));
    f.settle();
    CHECK(handler.finished());
    REQUIRE(!sock.controls.empty());
    CHECK(sock.controls.back().kind == ipc_kind::shutdown_microprocess);
    h.reset();
    f.settle();
}

TEST_CASE("line_protocol: the greeter as one component costs less than the pipeline form", "[line_protocol][greeter]") {
    if (!detail::slab_enabled()) {
        WARN("sanitizer build: objects do not come from the slab, nothing to count");
        return;
    }
    // One request answered, as an idle benchmark connection holds it.
    auto bytes_after_one_line = [](std::unique_ptr<component> h) {
        fixture f;
        std::size_t before = detail::slab_bytes_in_use();
        std::size_t after = 0;
        {
            embedded_connection c(f, std::move(h));
            c.write("x\r\n");
            CHECK(c.read() == "hello x\r\n");
            after = detail::slab_bytes_in_use();
        }
        return after - before;
    };
    std::size_t one = bytes_after_one_line(boxed(greeter_protocol()));
    std::size_t five = bytes_after_one_line(std::make_unique<pipeline>(
        telnet_lines(), pure_transformer([](std::string l) { return telnet::escape("hello " + l); }),
        lines_to_chunks()));
    INFO("slab bytes for a connection: line_protocol " << one << ", pipeline " << five);
    CHECK(one * 2 < five);
}
