// Line framing and telnet decoding: pure functions first, then the
// components on an embedded connection.
#include "embedded.hpp"

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
using kamaelia::test::embedded_connection;
using kamaelia::test::fixture;

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

TEST_CASE("split: LF, CR LF and telnet CR NUL end lines; every line in a chunk comes out", "[framing]") {
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
