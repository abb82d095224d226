// Line framing and telnet decoding: pure functions first, then the
// components on an embedded connection.
#include "embedded.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/chat.hpp>
#include <kamaelia/protocols/greeter.hpp>
#include <kamaelia/protocols/telnet.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::embedded_connection;
using kamaelia::test::feeder;
using kamaelia::test::fixture;
using kamaelia::test::gate;

namespace {
std::vector<std::string> split_all(std::vector<std::string> chunks, std::size_t max = 100, bool* ok_out = nullptr) {
    std::string partial, ending;
    std::vector<std::string> lines;
    bool ok = true;
    for (auto& c : chunks) {
        ok = chunks_to_lines::split(partial, c, max, ending, [&](std::string&& l) { lines.push_back(l); });
        if (!ok) break;
    }
    if (ok_out) *ok_out = ok;
    return lines;
}
} // namespace

TEST_CASE("split: LF, CR LF and telnet CR NUL end lines, every line in a chunk comes out", "[framing]") {
    REQUIRE(split_all({"a\nb\r\nc\r"}) == std::vector<std::string>{"a", "b"});
    REQUIRE(split_all({"a\nb\r\nc\r", "\n"}) == std::vector<std::string>{"a", "b", "c"});
    REQUIRE(split_all({std::string("x\r\0y\r", 5), std::string("\0", 1)}) == std::vector<std::string>{"x", "y"});
    REQUIRE(split_all({"he", "llo", " wor", "ld\n"}) == std::vector<std::string>{"hello world"});
    REQUIRE(split_all({"\n\n"}) == std::vector<std::string>{"", ""});
}

TEST_CASE("split: a line over the limit is refused", "[framing]") {
    bool ok = true;
    split_all({std::string(50, 'a'), std::string(60, 'b')}, 100, &ok);
    REQUIRE_FALSE(ok);
    ok = false;
    auto lines = split_all({std::string(100, 'a') + "\r\n"}, 100, &ok);
    REQUIRE(ok);
    REQUIRE(lines.size() == 1);
}

TEST_CASE("telnet decoder strips negotiation and unescapes IAC IAC across chunks", "[framing][telnet]") {
    telnet_decoder d;
    std::string out;
    const unsigned char part1[] = {'h', 'i', 255, 251, 1, 255, 250, 24, 0, 'x', 255};
    const unsigned char part2[] = {240, 255, 255, 'o', 255, 241, 'k', 255};
    const unsigned char part3[] = {253};
    const unsigned char part4[] = {3, '!'};
    d.feed(std::string_view(reinterpret_cast<const char*>(part1), sizeof part1), out);
    d.feed(std::string_view(reinterpret_cast<const char*>(part2), sizeof part2), out);
    d.feed(std::string_view(reinterpret_cast<const char*>(part3), sizeof part3), out);
    d.feed(std::string_view(reinterpret_cast<const char*>(part4), sizeof part4), out);
    REQUIRE(out == std::string("hi") + char(255) + "ok!");
    REQUIRE(d.commands_seen() == 4);
}

TEST_CASE("telnet decoder: a subnegotiation past its bound is given up and what follows is data", "[framing][telnet]") {
    telnet_decoder d;
    std::string out;
    // A short one within the bound is swallowed whole, across chunks.
    d.feed(std::string("a\xff\xfa\x18") + std::string(telnet::max_subnegotiation - 1, 'q'), out);
    d.feed("\xff\xf0"
           "b",
           out);
    CHECK(out == "ab");
    CHECK(d.subnegotiations_abandoned() == 0);
    // IAC SB and no IAC SE: the bytes past the bound come out.
    out.clear();
    d.feed(std::string("\xff\xfa") + std::string(telnet::max_subnegotiation, 's'), out);
    CHECK(out.empty());
    d.feed(std::string(3000, 'z') + "\n", out);
    CHECK(out == std::string(3000, 'z') + "\n");
    CHECK(d.subnegotiations_abandoned() == 1);
    CHECK(d.idle());
}

TEST_CASE("an endless telnet subnegotiation still meets the line limit", "[framing][greeter][telnet]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol(64)));
    c.write("ok\n");
    c.write(std::string("\xff\xfa") + std::string(telnet::max_subnegotiation + 200, 'z'));
    std::string out = c.read();
    REQUIRE(out.find("hello ok\n") == 0);
    REQUIRE(out.find("error: line too long") != std::string::npos);
    REQUIRE(c.sock.closed);
}

TEST_CASE("greeter protocol answers every line in the client's line ending", "[framing][greeter]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol()));
    c.write("world\r\n");
    REQUIRE(c.read() == "hello world\r\n");
    c.write("a\nb\n");
    REQUIRE(c.read() == "hello a\nhello b\n");
    c.write("par");
    REQUIRE(c.read().empty());
    c.write("tial\n");
    REQUIRE(c.read() == "hello partial\n");
}

TEST_CASE("greeter protocol through telnet: negotiation is invisible", "[framing][greeter][telnet]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol()));
    std::string in = std::string("\xff\xfd\x03\xff\xfb\x18") + "you" + std::string("\r\0", 2);
    c.write(in);
    REQUIRE(c.read() == "hello you\r\n");
}

TEST_CASE("an overlong line gets a clear error and the connection ends", "[framing][greeter]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol(64)));
    c.write("ok\n");
    c.write(std::string(200, 'z'));
    std::string out = c.read();
    REQUIRE(out.find("hello ok\n") == 0);
    REQUIRE(out.find("error: line too long") != std::string::npos);
    REQUIRE(c.sock.closed);
    REQUIRE(f.sched.live() == 0);
}

TEST_CASE("half-close: the last line without a newline is still answered, then the graph ends", "[framing][greeter]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol()));
    c.write("one\nlast");
    c.close_input();
    REQUIRE(c.read() == "hello one\nhello last\n");
    REQUIRE(c.sock.closed);
    REQUIRE(c.sock.controls.back().kind == ipc_kind::producer_finished);
}

TEST_CASE("binary garbage is framed, never crashes, and the greeter keeps answering", "[framing][greeter]") {
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol()));
    std::string garbage;
    for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 7919) & 0xff));
    c.write(garbage);
    (void)c.read();
    c.write("\nstill here\n");
    std::string out = c.read();
    REQUIRE(out.find("hello still here") != std::string::npos);
}

TEST_CASE("telnet: a 0xFF byte in a reply goes out as IAC IAC", "[framing][greeter][telnet]") {
    CHECK(telnet::escape("plain") == "plain");
    CHECK(telnet::escape("a\xff"
                         "b\xff") == "a\xff\xff"
                                     "b\xff\xff");
    fixture f;
    embedded_connection c(f, std::make_unique<pipeline>(greeter_protocol()));
    c.write(std::string("x\xff\xffy\r\n")); // the client's escaped 0xFF
    REQUIRE(c.read() == "hello x\xff\xffy\r\n");
}

TEST_CASE("chat protocol: a line reaches every other client, not its sender", "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-TEST", delivery_policy::fail);
    connection_info a_info{"10.0.0.1", 1111, "127.0.0.1", 1700, 1};
    connection_info b_info{"10.0.0.2", 2222, "127.0.0.1", 1700, 2};
    embedded_connection a(f, std::make_unique<pipeline>(chat_protocol(a_info, "CHAT-TEST")));
    embedded_connection b(f, std::make_unique<pipeline>(chat_protocol(b_info, "CHAT-TEST")));
    a.write("hi from a\r\n");
    CHECK(b.read() == "10.0.0.1:1111 says hi from a\r\n");
    CHECK(a.read().empty());
    b.write("hello a\n");
    CHECK(a.read() == "10.0.0.2:2222 says hello a\r\n"); // a's own ending
    CHECK(b.read().empty());
}

namespace {
// A chat client whose "socket" keeps every message it is given (to see
// which payloads are shared), or takes nothing at all (a gate: a client
// that does not read).
template <class Socket>
struct basic_chat_client {
    fixture& f;
    std::unique_ptr<pipeline> handler;
    Socket sock;
    basic_chat_client(fixture& fx, std::uint16_t port, std::size_t queue_bytes = default_chat_queue_bytes,
                      std::size_t max_line = default_max_line)
        : f(fx),
          handler(std::make_unique<pipeline>(chat_protocol(connection_info{"10.0.0.1", port, "127.0.0.1", 1700, port},
                                                           "CHAT-T", max_line, queue_bytes))) {
        component::link({*handler, "outbox"}, {sock, "inbox"});
        component::link({*handler, "signal"}, {sock, "control"});
        handler->activate(f.sched);
        sock.activate(f.sched);
        f.settle();
    }
    ~basic_chat_client() {
        handler.reset();
        f.settle();
    }
    void write(std::string bytes) {
        deliver(*handler, "inbox", message(std::move(bytes)));
        f.settle();
    }
    // Everything its socket was given since the last call.
    std::string read() {
        std::string out;
        for (; seen < sock.items.size(); ++seen)
            if (const std::string* s = sock.items[seen].template peek<std::string>()) out += *s;
        return out;
    }
    std::size_t seen = 0;
};
using chat_client = basic_chat_client<collector>;
} // namespace

TEST_CASE("chat protocol: a line is framed once, every CR LF client's socket gets the one shared payload",
          "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    chat_client a(f, 1), b(f, 2), c(f, 3);
    a.write("hi there\r\n");
    CHECK(b.read() == "10.0.0.1:1 says hi there\r\n");
    CHECK(c.read() == "10.0.0.1:1 says hi there\r\n");
    CHECK(a.read().empty()); // its own line is skipped
    // One message each, holding the same bytes: no framing stage, no copy.
    REQUIRE(b.sock.items.size() == 1);
    REQUIRE(c.sock.items.size() == 1);
    CHECK(b.sock.items[0].is_shared());
    CHECK(b.sock.items[0].payload_address() == c.sock.items[0].payload_address());
}

TEST_CASE("chat protocol: an LF client gets LF, the others CR LF, byte for byte as before", "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    chat_client a(f, 1), b(f, 2), lf(f, 3);
    lf.write("first\n"); // its ending is LF from now on
    CHECK(a.read() == "10.0.0.1:3 says first\r\n");
    CHECK(b.read() == "10.0.0.1:3 says first\r\n");
    a.write("one\r\ntwo\r\n");
    CHECK(lf.read() == "10.0.0.1:1 says one\n10.0.0.1:1 says two\n");
    CHECK(b.read() == "10.0.0.1:1 says one\r\n10.0.0.1:1 says two\r\n");
    // The LF client's lines are its own copies; the shared ones are untouched.
    for (const message& m : lf.sock.items) CHECK_FALSE(m.is_shared());
    CHECK(b.sock.items.back().is_shared());
    // Its own lines never come back, whatever its ending.
    lf.write("again\n");
    CHECK(lf.read().empty());
    CHECK(a.read() == "10.0.0.1:3 says again\r\n");
}

TEST_CASE("chat protocol: a payload published without a line ending gets the client's", "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    chat_client crlf(f, 1), lf(f, 2);
    lf.write("x\n");
    CHECK(crlf.read() == "10.0.0.1:2 says x\r\n");
    // What a host from before framed publishing (or redis-cli) publishes.
    publish_to pub("CHAT-T");
    feeder<std::string> src({"plain hello"}, false);
    component::link({src, "outbox"}, {pub, "inbox"});
    f.activate(pub);
    f.activate(src);
    f.settle();
    CHECK(crlf.read() == "plain hello\r\n");
    CHECK(lf.read() == "plain hello\n");
}

TEST_CASE("chat protocol: a line that is not printable text is cleaned and escaped once", "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    chat_client a(f, 1), b(f, 2);
    // ESC[2J, a C0 control and a Latin-1 0xFF (sent as telnet's IAC IAC).
    a.write(std::string("a\x1b[2J\x01z\xff\xff\r\n"));
    CHECK(b.read() == std::string("10.0.0.1:1 says a?[2J?z\xff\xff\r\n"));
}

TEST_CASE("chat protocol: a line too long is answered with the reason, then the connection ends", "[framing][chat]") {
    fixture f;
    f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    chat_client a(f, 1, default_chat_queue_bytes, 16), b(f, 2);
    a.write("ok\n");
    a.write(std::string(40, 'x'));
    CHECK(a.read() == "error: line too long (the limit is 16 bytes)\n"); // in its own ending
    REQUIRE_FALSE(a.sock.controls.empty());
    CHECK(a.sock.controls.back().kind == ipc_kind::protocol_error);
    CHECK(b.read() == "10.0.0.1:1 says ok\r\n");
}

TEST_CASE("chat protocol: a client that does not read is cut off at the byte bound, what waits for it is bounded",
          "[framing][chat]") {
    fixture f;
    auto& bp = f.spawn<backplane>("CHAT-T", delivery_policy::fail);
    constexpr std::size_t queue_bytes = 4096, max_line = 256;
    chat_client a(f, 1, queue_bytes, max_line), b(f, 2, queue_bytes, max_line);
    basic_chat_client<gate> stuck(f, 3, queue_bytes, max_line);
    const std::uint32_t out_limit = chat_output_limit(queue_bytes, max_line);
    CHECK(stuck.sock.in("inbox").limit() == out_limit); // the socket's inbox, bounded for the chat
    // Lines 100 bytes long, in bursts a reader that keeps up takes in turn.
    std::string line(100, 'y');
    std::string expected;
    for (int burst = 0; burst < 20 && !stuck.sock.finished(); ++burst) {
        std::string chunk;
        for (int i = 0; i < 10; ++i) {
            chunk += line + "\r\n";
            expected += "10.0.0.1:1 says " + line + "\r\n";
        }
        a.write(chunk);
        // The stuck client's socket never holds more than its bound.
        CHECK(stuck.sock.in("inbox").size() <= out_limit);
    }
    CHECK(bp.cut_off() == 1);
    REQUIRE(stuck.sock.finished());
    REQUIRE_FALSE(stuck.sock.controls.empty());
    CHECK(stuck.sock.controls.back().kind == ipc_kind::shutdown_microprocess);
    CHECK_THAT(stuck.sock.controls.back().text, Catch::Contains("cut off"));
    // What it held before the cut: the socket's bound plus the backplane's bytes at most.
    CHECK(stuck.sock.items.size() <= out_limit);
    // The reader that keeps up got everything, and still chats.
    CHECK(b.read() == expected);
    a.write("still here\r\n");
    CHECK(b.read() == "10.0.0.1:1 says still here\r\n");
}
