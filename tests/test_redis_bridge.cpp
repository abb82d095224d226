// The Redis backplane bridge: URL and envelope without sockets, then the
// bridge against a real redis-server the test starts (and kills) itself.
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/protocols/chat.hpp>
#include <kamaelia/redis/bridge.hpp>

#include <kamaelia/redis/detail/publish_window.hpp>
#include <kamaelia/redis/detail/resp.hpp>

#include "fixture.hpp"
#include "net_support.hpp"
#include "redis_support.hpp"

#include <catch2/catch.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::redis_server;
using kamaelia::test::run_until;

TEST_CASE("redis url: the standard forms", "[redis]") {
    auto u = redis::parse_url("redis://10.0.0.5:6380/3?channel=ROOM");
    CHECK(u.host == "10.0.0.5");
    CHECK(u.port == 6380);
    CHECK(u.db == 3);
    CHECK(u.channel == "ROOM");
    CHECK(u.password.empty());

    u = redis::parse_url("redis://bob:s%40cret@redis.example:7000");
    CHECK(u.user == "bob");
    CHECK(u.password == "s@cret");
    CHECK(u.display() == "redis://bob@redis.example:7000");
    CHECK(u.display().find("cret") == std::string::npos);

    u = redis::parse_url("redis://[::1]:6379");
    CHECK(u.host == "::1");
    CHECK(u.display() == "redis://[::1]:6379");
    CHECK(redis::parse_url("redis://host").port == 6379);
}

TEST_CASE("redis url: bad ones are refused without quoting the password", "[redis]") {
    CHECK_THROWS_AS(redis::parse_url("http://host:1"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("rediss://host:1"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://:1"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://host:0"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://host:99999"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://host:1/x"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://host:1?color=red"), redis::url_error);
    CHECK_THROWS_AS(redis::parse_url("redis://[::1"), redis::url_error);
    try {
        redis::parse_url("redis://u:topsecret%zz@host:1");
        FAIL("accepted a bad escape");
    } catch (const redis::url_error& e) {
        CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
    }
}

TEST_CASE("redis url: the password from a 0600 file or REDISCLI_AUTH, never a readable file", "[redis]") {
    auto dir = std::filesystem::temp_directory_path() / ("kamaelia-redis-pw-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto file = dir / "pw";
    { std::ofstream(file) << "filesecret\n"; }
    ::chmod(file.c_str(), 0600);
    auto u = redis::parse_url("redis://host:1?password-file=" + file.string());
    redis::resolve_password(u);
    CHECK(u.password == "filesecret");

    ::chmod(file.c_str(), 0644);
    u = redis::parse_url("redis://host:1?password-file=" + file.string());
    CHECK_THROWS_AS(redis::resolve_password(u), redis::url_error);

    ::setenv("REDISCLI_AUTH", "envsecret", 1);
    u = redis::parse_url("redis://host:1");
    redis::resolve_password(u);
    CHECK(u.password == "envsecret");
    u = redis::parse_url("redis://:urlsecret@host:1"); // the URL's own wins
    redis::resolve_password(u);
    CHECK(u.password == "urlsecret");
    ::unsetenv("REDISCLI_AUTH");
    std::filesystem::remove_all(dir);
}

TEST_CASE("redis envelope: origin round trip, binary payloads, plain payloads", "[redis]") {
    auto a = redis::new_origin();
    auto b = redis::new_origin();
    CHECK(a != b);
    std::string payload("a\0b\r\n\xff", 6);
    auto w = redis::wrap(a, payload);
    CHECK(w.size() == redis::envelope_header + payload.size());
    auto u = redis::unwrap(w);
    REQUIRE(u.origin);
    CHECK(*u.origin == a);
    CHECK(u.payload == payload);

    auto plain = redis::unwrap("hello");
    CHECK_FALSE(plain.origin);
    CHECK(plain.payload == "hello");
    // The magic alone, too short for an origin: plain.
    auto short_one = redis::unwrap(std::string_view("\0KB1abc", 7));
    CHECK_FALSE(short_one.origin);
    CHECK(redis::unwrap(redis::wrap(a, "")).payload.empty());
}

TEST_CASE("redis envelope: a pack carries several messages in order, a malformed one none", "[redis]") {
    auto a = redis::new_origin();
    std::vector<std::string> msgs = {"one", "", std::string("b\0n\r\n\xff", 6), std::string(70000, 'z')};
    std::string pack;
    redis::begin_pack(pack, a);
    for (auto& m : msgs) redis::add_to_pack(pack, m);
    auto u = redis::unwrap(pack);
    REQUIRE(u.origin);
    CHECK(*u.origin == a);
    CHECK(u.pack);
    redis::payloads each(u);
    REQUIRE(each.count());
    CHECK(*each.count() == msgs.size());
    std::vector<std::string> got;
    std::string_view p;
    while (each.next(p)) got.emplace_back(p);
    CHECK(got == msgs);

    // One message (KB1) and a plain payload: one each.
    for (std::string raw : {redis::wrap(a, "single"), std::string("plain")}) {
        redis::payloads one(redis::unwrap(raw));
        REQUIRE(one.count());
        CHECK(*one.count() == 1);
        REQUIRE(one.next(p));
        CHECK((p == "single" || p == "plain"));
        CHECK_FALSE(one.next(p));
    }
    // An empty pack: nothing.
    std::string empty;
    redis::begin_pack(empty, a);
    redis::payloads none(redis::unwrap(empty));
    REQUIRE(none.count());
    CHECK(*none.count() == 0);
    CHECK_FALSE(none.next(p));

    // A length past the end, or a cut length: the whole pack is refused,
    // not the messages before the damage delivered.
    for (std::size_t cut : {std::size_t(1), std::size_t(2), std::size_t(70000)}) {
        std::string bad = pack.substr(0, pack.size() - cut);
        redis::payloads broken(redis::unwrap(bad));
        CHECK_FALSE(broken.count());
        CHECK_FALSE(broken.next(p));
    }
}

TEST_CASE("redis bridge: a max_payload a pack cannot frame is refused at construction", "[redis]") {
    redis_bridge::options o;
    o.max_payload = std::size_t(1) << 32;
    CHECK_THROWS_AS(redis_bridge("A", redis::parse_url("redis://127.0.0.1:1"), o), bad_state);
    o.max_payload = (std::size_t(1) << 32) - 1;
    CHECK_NOTHROW(redis_bridge("A", redis::parse_url("redis://127.0.0.1:1"), o));
}

namespace {

// One "host": a backplane NAME bridged to `channel`, a local subscriber
// collecting what it hears.
struct host {
    backplane bp;
    redis_bridge bridge;
    subscribe_to sub;
    collector got;
    host(const std::string& name, const std::string& url, const std::string& channel,
         redis_bridge::options o = fast_options())
        : bp(name),
          bridge(name, redis::parse_url(url + "?channel=" + channel), o),
          sub(name) {}
    void start(scheduler& s) {
        bp.activate(s);
        bridge.activate(s);
        component::link({sub, "outbox"}, {got, "inbox"});
        sub.activate(s);
        got.activate(s);
    }
    std::vector<std::string> heard() const { return got.values<std::string>(); }
    static redis_bridge::options fast_options() {
        redis_bridge::options o;
        o.backoff_min = std::chrono::milliseconds(20);
        o.backoff_max = std::chrono::milliseconds(200);
        return o;
    }
};

// Publishes `lines` on backplane `name` (a feeder into a publish_to).
struct publisher {
    feeder<std::string> f;
    publish_to pub;
    publisher(const std::string& name, std::vector<std::string> lines) : f(std::move(lines), false), pub(name) {}
    void start(scheduler& s) {
        component::link({f, "outbox"}, {pub, "inbox"});
        pub.activate(s);
        f.activate(s);
    }
};

std::vector<std::string> numbered(const std::string& prefix, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) {
        std::string s = prefix + std::to_string(i);
        if (i % 7 == 0) s += std::string("\0\r\n\xfe", 4); // binary-safe
        v.push_back(std::move(s));
    }
    return v;
}

// A redis-server and two "hosts" (backplanes A and B) on its channel ROOM.
struct two_hosts {
    redis_server rs;
    scheduler s;
    host a{"A", rs.url(), "ROOM"};
    host b{"B", rs.url(), "ROOM"};
    two_hosts() {
        a.start(s);
        b.start(s);
    }
    std::tuple<redis_server&, scheduler&, host&, host&> parts() { return {rs, s, a, b}; }
};

} // namespace

TEST_CASE("redis bridge: two backplanes on one channel, each local message exactly once, in order",
          "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped (scripts/install-deps installs it)");
        return;
    }
    two_hosts w;
    auto [rs, s, a, b] = w.parts();
    REQUIRE(run_until(s, [&] { return a.bridge.linked() && b.bridge.linked(); }));

    auto lines = numbered("line ", 500);
    publisher p("A", lines);
    p.start(s);
    REQUIRE(run_until(s, [&] { return b.heard().size() >= lines.size(); }));
    // A's subscriber: once each (its own copy back from Redis was dropped),
    // B's: all of them, both in the publisher's order.
    REQUIRE(run_until(s, [&] { return a.bridge.echoes() >= lines.size(); }));
    CHECK(a.heard() == lines);
    CHECK(b.heard() == lines);
    // Forwarded once Redis answered each PUBLISH (on the other connection).
    REQUIRE(run_until(s, [&] { return a.bridge.forwarded() == lines.size(); }));
    CHECK(a.bridge.pending_bytes() == 0);
    CHECK(b.bridge.received() == lines.size());
    CHECK(b.bridge.forwarded() == 0); // what B got from Redis is not sent back
    CHECK(a.bridge.not_forwarded() == 0);

    SECTION("a plain redis-cli PUBLISH reaches every subscriber as it is") {
        REQUIRE(rs.cli("PUBLISH ROOM 'plain hello'") == 0);
        REQUIRE(run_until(s, [&] { return a.heard().size() > lines.size() && b.heard().size() > lines.size(); }));
        CHECK(a.heard().back() == "plain hello");
        CHECK(b.heard().back() == "plain hello");
        CHECK(a.heard().size() == lines.size() + 1);
        CHECK(b.heard().size() == lines.size() + 1);
    }
}

TEST_CASE("redis bridge: a burst goes in packs, fewer PUBLISH than messages, a bridge that does not pack "
          "reads them and is read",
          "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped");
        return;
    }
    redis_server rs;
    scheduler s;
    auto plain = host::fast_options();
    plain.pack_bytes = 0; // one PUBLISH a message, the one-message envelope
    host a("A", rs.url(), "ROOM");
    host b("B", rs.url(), "ROOM", plain);
    a.start(s);
    b.start(s);
    REQUIRE(run_until(s, [&] { return a.bridge.linked() && b.bridge.linked(); }));

    auto from_a = numbered("a ", 1000);
    publisher pa("A", from_a);
    pa.start(s);
    REQUIRE(run_until(s, [&] { return b.heard().size() >= from_a.size(); }));
    CHECK(b.heard() == from_a);
    REQUIRE(run_until(s, [&] { return a.bridge.forwarded() == from_a.size(); }));
    CHECK(a.bridge.publishes() < from_a.size() / 2); // packed
    CHECK(a.bridge.pending_messages() == 0);
    REQUIRE(run_until(s, [&] { return a.bridge.echoes() == from_a.size(); })); // a pack's echo counts each
    CHECK(a.heard() == from_a);                                                // once each, locally

    auto from_b = numbered("b ", 300);
    publisher pb("B", from_b);
    pb.start(s);
    REQUIRE(run_until(s, [&] { return a.heard().size() >= from_a.size() + from_b.size(); }));
    auto heard_a = a.heard();
    REQUIRE(heard_a.size() == from_a.size() + from_b.size());
    CHECK(std::equal(from_b.begin(), from_b.end(), heard_a.begin() + static_cast<long>(from_a.size())));
    REQUIRE(run_until(s, [&] { return b.bridge.forwarded() == from_b.size(); }));
    CHECK(b.bridge.publishes() == from_b.size()); // not packed
    CHECK(a.bridge.bad_packs() == 0);
    CHECK(b.bridge.bad_packs() == 0);
}

TEST_CASE("redis bridge: Redis down - local delivery goes on, counted, reconnects once it is back",
          "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped");
        return;
    }
    two_hosts w;
    auto [rs, s, a, b] = w.parts();
    REQUIRE(run_until(s, [&] { return a.bridge.linked() && b.bridge.linked(); }));

    rs.stop();
    REQUIRE(run_until(s, [&] { return !a.bridge.linked() && !b.bridge.linked(); }));
    CHECK(a.bridge.outages() == 1);

    auto during = numbered("during ", 50);
    publisher p("A", during);
    p.start(s);
    REQUIRE(run_until(s, [&] { return a.heard().size() == during.size(); }));
    CHECK(a.heard() == during); // local subscribers never wait for Redis
    REQUIRE(run_until(s, [&] { return a.bridge.not_forwarded() == during.size(); }));
    // Several failed attempts later, still one outage.
    auto t0 = std::chrono::steady_clock::now();
    run_until(s, [&] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(600); });
    CHECK(a.bridge.outages() == 1);
    CHECK(b.heard().empty());

    rs.start();
    REQUIRE(run_until(s, [&] { return a.bridge.linked() && b.bridge.linked(); }));
    CHECK(a.bridge.connects() == 2);
    auto after = numbered("after ", 20);
    publisher q("A", after);
    q.start(s);
    REQUIRE(run_until(s, [&] { return b.heard().size() == after.size(); }));
    CHECK(b.heard() == after);
}

TEST_CASE("redis bridge: AUTH with the right password links, a wrong one never does", "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped");
        return;
    }
    redis_server rs("pw-for-test");
    scheduler s;
    host good("G", "redis://:pw-for-test@127.0.0.1:" + std::to_string(rs.port()) + "/2", "ROOM");
    host bad("W", "redis://:wrong@127.0.0.1:" + std::to_string(rs.port()), "ROOM");
    good.start(s);
    bad.start(s);
    REQUIRE(run_until(s, [&] { return good.bridge.linked(); }));
    auto t0 = std::chrono::steady_clock::now();
    run_until(s, [&] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(500); });
    CHECK_FALSE(bad.bridge.linked());
    CHECK(bad.bridge.outages() == 1);
    REQUIRE(rs.cli("PUBLISH ROOM via-auth") == 0);
    REQUIRE(run_until(s, [&] { return good.heard().size() == 1; }));
    CHECK(good.heard().front() == "via-auth");
    CHECK(bad.heard().empty());
}

TEST_CASE("redis bridge: a message larger than max_payload drops the link, not the process", "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped");
        return;
    }
    redis_server rs;
    scheduler s;
    auto o = host::fast_options();
    o.max_payload = 1000;
    host a("A", rs.url(), "ROOM", o);
    a.start(s);
    REQUIRE(run_until(s, [&] { return a.bridge.linked(); }));
    // 100 KB: far above the bound, arriving in many reads.
    REQUIRE(rs.cli("PUBLISH ROOM " + std::string(100000, 'x')) == 0);
    REQUIRE(run_until(s, [&] { return a.bridge.outages() == 1; }));
    REQUIRE(run_until(s, [&] { return a.bridge.linked(); }));
    REQUIRE(rs.cli("PUBLISH ROOM small") == 0);
    REQUIRE(run_until(s, [&] { return a.heard().size() == 1; }));
    CHECK(a.heard().front() == "small");

    // A local message above the bound stays local, counted.
    publisher p("A", {std::string(5000, 'y')});
    p.start(s);
    REQUIRE(run_until(s, [&] { return a.bridge.not_forwarded() == 1; }));
    CHECK(a.bridge.forwarded() == 0);
}

TEST_CASE("redis reply reader: a large read parsed a slice at a time, in order, bounded", "[redis]") {
    // What a subscribed connection reads under load: many pub/sub messages
    // in one 64 KiB chunk, the last one cut in two.
    auto frame = [](int i) {
        std::string payload = "payload " + std::to_string(i);
        return "*3\r\n$7\r\nmessage\r\n$4\r\nROOM\r\n$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    };
    std::string wire;
    int n = 0;
    while (wire.size() < 64 * 1024) wire += frame(n++);
    std::string last = frame(n);
    wire += last.substr(0, 10);

    redis::detail::reply_reader r(1 << 20);
    REQUIRE(r.feed(wire));
    int seen = 0;
    std::size_t most = 0;
    while (auto rep = r.next()) {
        most = std::max(most, r.buffered());
        REQUIRE(rep->type == REDIS_REPLY_ARRAY);
        REQUIRE(rep->elements == 3);
        CHECK(redis::detail::text_of(rep->element[2]) == "payload " + std::to_string(seen));
        ++seen;
    }
    CHECK(seen == n);
    CHECK_FALSE(r.broken());
    // hiredis was never handed the whole read: it holds a slice or two, not
    // 64 KiB (each reply it ends far into its buffer costs a memmove of the rest).
    CHECK(most <= 2 * 4096);
    // The rest of the cut message arrives: it completes.
    REQUIRE(r.feed(std::string_view(last).substr(10)));
    auto rep = r.next();
    REQUIRE(rep);
    CHECK(redis::detail::text_of(rep->element[2]) == "payload " + std::to_string(n));
    CHECK_FALSE(r.next());

    SECTION("a reply over the bound breaks the reader before it is all buffered") {
        redis::detail::reply_reader small(10000);
        std::string big = "$100000\r\n" + std::string(100000, 'x') + "\r\n";
        REQUIRE(small.feed(big));
        CHECK_FALSE(small.next());
        CHECK(small.broken());
        CHECK(small.error().find("larger than 10000") != std::string::npos);
        CHECK_FALSE(small.feed("+OK\r\n"));
    }
    SECTION("fed byte by byte, the same replies") {
        redis::detail::reply_reader r2(1 << 20);
        int k = 0;
        for (char c : wire) {
            REQUIRE(r2.feed(std::string_view(&c, 1)));
            while (auto x = r2.next()) {
                CHECK(redis::detail::text_of(x->element[2]) == "payload " + std::to_string(k));
                ++k;
            }
        }
        CHECK(k == n);
    }
}

// ---- Redis alive but not reading: the bytes bound --------------------------------

TEST_CASE("redis publish window: bounded in bytes, answered from the front, a lone big command fits", "[redis]") {
    redis::detail::publish_window w(1000);
    CHECK(w.fits(1000));
    CHECK(w.fits(5000)); // empty: a lone command larger than the bound still goes
    w.add(3, 600);
    CHECK(w.fits(400));
    CHECK_FALSE(w.fits(401));
    CHECK_FALSE(w.fits(300, 200)); // 200 being formatted, not added yet
    w.add(1, 300);
    CHECK(w.bytes() == 900);
    CHECK(w.commands() == 4);
    auto answer = [&](int n) {
        for (int i = 0; i < n; ++i) REQUIRE(w.answered());
    };
    // A batch leaves the window with its last answer.
    answer(2);
    CHECK(w.bytes() == 900);
    answer(1);
    CHECK(w.bytes() == 300);
    w.grow(2, 100); // joins the last (unsent) batch
    CHECK(w.bytes() == 400);
    answer(2);
    CHECK(w.bytes() == 400);
    answer(1);
    CHECK(w.bytes() == 0);
    CHECK_FALSE(w.answered()); // nothing waits for an answer: not ours
    w.add(5, 700);
    CHECK(w.clear() == 5);
    CHECK(w.bytes() == 0);
    CHECK(w.commands() == 0);
}

TEST_CASE("redis publish window: command_size is the RESP size format_command writes", "[redis]") {
    std::string payload(12345, 'x');
    std::string resp = "*3\r\n$7\r\nPUBLISH\r\n$4\r\nROOM\r\n$12345\r\n" + payload + "\r\n";
    CHECK(redis::detail::command_size({7, 4, payload.size()}) == resp.size());
    CHECK(redis::detail::command_size({7, 0, 0}) == std::string("*3\r\n$7\r\nPUBLISH\r\n$0\r\n\r\n$0\r\n\r\n").size());
}

namespace {

// Publishes `n` messages of `size` bytes on backplane `name`, as fast as it may.
struct burst : component {
    std::string name;
    int n;
    std::size_t size;
    publish_to pub;
    burst(std::string bp, int count, std::size_t bytes) : name(bp), n(count), size(bytes), pub(std::move(bp)) {}
    void start(scheduler& s) {
        link({*this, "outbox"}, {pub, "inbox"});
        pub.activate(s);
        activate(s);
    }
    task main() override {
        for (int i = 0; i < n; ++i) co_await send(std::string(size, static_cast<char>('a' + i % 26)));
    }
};

// A local subscriber that counts what it hears and keeps the short messages.
struct tally : component {
    std::size_t count = 0, bytes = 0;
    std::vector<std::string> short_ones;
    task main() override {
        for (;;) {
            while (auto m = recv<std::string>()) {
                ++count;
                bytes += m->size();
                if (m->size() < 64) short_ones.push_back(*m);
            }
            co_await wait_any();
        }
    }
};

// A fake Redis on the scheduler's io_context, polled by the test: it
// confirms SUBSCRIBE, never reads the publishing connection until told
// (Redis alive but stalled), and can push messages on the subscribed one.
struct stalled_redis {
    asio::ip::tcp::acceptor acc;
    std::vector<asio::ip::tcp::socket> conns;
    std::vector<std::string> got;
    int sub = -1;
    bool reading_pub = false;
    std::size_t publishes = 0; // PUBLISH commands read once reading

    explicit stalled_redis(scheduler& s) : acc(s.io()) {
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
        acc.open(ep.protocol());
        acc.set_option(asio::socket_base::receive_buffer_size(4096)); // the kernel holds little
        acc.bind(ep);
        acc.listen();
        acc.non_blocking(true);
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(acc.local_endpoint().port()); }
    static std::string bulk(std::string_view s) {
        return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
    }

    void poll() {
        asio::error_code ec;
        for (;;) {
            asio::ip::tcp::socket c = acc.accept(ec);
            if (ec) break;
            c.non_blocking(true);
            conns.push_back(std::move(c));
            got.emplace_back();
        }
        for (std::size_t i = 0; i < conns.size(); ++i) {
            // Before the subscription every connection is read (the
            // publishing one says nothing yet); after it, not the other one.
            bool is_pub = sub >= 0 && static_cast<int>(i) != sub;
            if (is_pub && !reading_pub) continue;
            std::array<char, 65536> buf;
            for (;;) {
                std::size_t n = conns[i].read_some(asio::buffer(buf), ec);
                if (ec || n == 0) break;
                got[i].append(buf.data(), n);
            }
            if (sub < 0 && got[i].find("SUBSCRIBE") != std::string::npos) {
                sub = static_cast<int>(i);
                write(i, "*3\r\n" + bulk("subscribe") + bulk("ROOM") + ":1\r\n");
            }
            if (is_pub) {
                // Answer every complete PUBLISH read so far (":1"), keep the rest.
                std::size_t at = 0, answered = 0;
                while (std::size_t end = end_of_command(got[i], at)) {
                    at = end;
                    ++answered;
                }
                got[i].erase(0, at);
                if (answered) write(i, replies(answered));
                publishes += answered;
            }
        }
    }
    static std::string replies(std::size_t n) {
        std::string r;
        for (std::size_t k = 0; k < n; ++k) r += ":1\r\n";
        return r;
    }
    // Where the command at `at` (*3 and three bulk strings) ends; 0 if it is not all there.
    static std::size_t end_of_command(const std::string& s, std::size_t at) {
        if (s.compare(at, 4, "*3\r\n") != 0) return 0;
        std::size_t p = at + 4;
        for (int k = 0; k < 3; ++k) {
            if (p >= s.size() || s[p] != '$') return 0;
            std::size_t eol = s.find("\r\n", p);
            if (eol == std::string::npos) return 0;
            std::size_t len = std::stoul(s.substr(p + 1, eol - p - 1));
            p = eol + 2 + len + 2;
            if (p > s.size()) return 0;
        }
        return p;
    }
    void write(std::size_t i, const std::string& bytes) {
        asio::error_code ec;
        conns[i].non_blocking(false);
        asio::write(conns[i], asio::buffer(bytes), ec);
        conns[i].non_blocking(true);
    }
    void push(std::string_view payload) {
        write(static_cast<std::size_t>(sub), "*3\r\n" + bulk("message") + bulk("ROOM") + bulk(payload));
    }
};

} // namespace

TEST_CASE("redis bridge: Redis stops reading - bounded in bytes, dropped and counted, Redis->local goes on",
          "[redis]") {
    scheduler s;
    stalled_redis r(s);
    backplane bp("A");
    auto o = host::fast_options();
    o.max_pending_bytes = 256 << 10;
    redis_bridge bridge("A", redis::parse_url(r.url() + "?channel=ROOM"), o);
    subscribe_to sub("A");
    sub.set_max_bytes(std::size_t(64) << 20); // the test's listener never falls behind
    tally heard;
    bp.activate(s);
    bridge.activate(s);
    component::link({sub, "outbox"}, {heard, "inbox"});
    sub.activate(s);
    heard.activate(s);
    auto until = [&](const std::function<bool()>& f) {
        return run_until(s, [&] {
            r.poll();
            return f();
        });
    };
    REQUIRE(until([&] { return bridge.linked(); }));

    // 48 MiB said locally while Redis reads nothing: far more than any
    // kernel buffer, queue or message count would absorb.
    constexpr int n = 3000;
    constexpr std::size_t size = 16 << 10;
    burst b("A", n, size);
    b.start(s);
    REQUIRE(until([&] { return heard.count == n; })); // local delivery went on
    CHECK(heard.bytes == n * size);
    CHECK(bridge.forwarded() == 0);
    CHECK(bridge.dropped_pending() > 0);
    // What waits for Redis: within the bound (plus one command at most).
    CHECK(bridge.pending_bytes() <= o.max_pending_bytes + size + 64);
    CHECK(bridge.pending_bytes() > 0);
    // Every message either waits for an answer or was counted lost.
    REQUIRE(until([&] { return bridge.not_forwarded() + bridge.pending_messages() == n; }));
    CHECK(bridge.linked());

    // The bridge never waits on the stalled connection: Redis->local goes on.
    r.push("from redis while stalled");
    REQUIRE(until([&] { return !heard.short_ones.empty(); }));
    CHECK(heard.short_ones.back() == "from redis while stalled");
    CHECK(bridge.received() == 1);

    // Redis reads again: the answers free the window, forwarding resumes.
    std::uint64_t waiting = bridge.pending_messages();
    std::uint64_t waiting_commands = bridge.pending_commands();
    r.reading_pub = true;
    REQUIRE(until([&] { return bridge.pending_bytes() == 0; }));
    CHECK(bridge.forwarded() == waiting);
    burst after("A", 10, 100);
    after.start(s);
    REQUIRE(until([&] { return bridge.forwarded() == waiting + 10; }));
    // (The 10 small ones may share a PUBLISH: packed.)
    CHECK(r.publishes == bridge.publishes());
    CHECK(r.publishes > waiting_commands);
    CHECK(r.publishes <= waiting_commands + 10);
    CHECK(bridge.outages() == 0); // stalled, never disconnected
}

TEST_CASE("redis bridge: a SIGSTOPped redis-server - local chat goes on, bounded, resumes after SIGCONT",
          "[redis][integration]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped");
        return;
    }
    redis_server rs;
    scheduler s;
    auto o = host::fast_options();
    o.max_pending_bytes = 512 << 10;
    host a("A", rs.url(), "ROOM", o);
    host b("B", rs.url(), "ROOM");
    a.start(s);
    b.start(s);
    REQUIRE(run_until(s, [&] { return a.bridge.linked() && b.bridge.linked(); }));

    rs.pause();
    constexpr int n = 2000;
    constexpr std::size_t size = 16 << 10;
    tally local;
    subscribe_to counted("A");
    counted.set_max_bytes(std::size_t(64) << 20);
    component::link({counted, "outbox"}, {local, "inbox"});
    counted.activate(s);
    local.activate(s);
    burst flood("A", n, size);
    flood.start(s);
    REQUIRE(run_until(s, [&] { return local.count == n; })); // local delivery goes on
    CHECK(a.bridge.dropped_pending() > 0);
    CHECK(a.bridge.pending_bytes() <= o.max_pending_bytes + size + 64);
    CHECK(a.bridge.linked()); // alive, only stalled

    rs.resume();
    REQUIRE(run_until(s, [&] { return a.bridge.pending_bytes() == 0; }));
    auto after = numbered("after ", 20);
    publisher p("A", after);
    p.start(s);
    REQUIRE(run_until(s, [&] {
        auto h = b.heard();
        return h.size() >= after.size() && std::equal(after.begin(), after.end(), h.end() - after.size());
    }));
    CHECK(a.bridge.outages() == 0);
}

namespace {
// A chat client on a host's backplane, its socket a collector.
struct chat_peer {
    std::unique_ptr<pipeline> handler;
    collector sock;
    chat_peer(scheduler& s, const std::string& bp, std::uint16_t port)
        : handler(std::make_unique<pipeline>(
              chat_protocol(connection_info{"10.0.0.9", port, "127.0.0.1", 1700, port}, bp))) {
        component::link({*handler, "outbox"}, {sock, "inbox"});
        component::link({*handler, "signal"}, {sock, "control"});
        handler->activate(s);
        sock.activate(s);
    }
    void write(std::string bytes) { deliver(*handler, "inbox", message(std::move(bytes))); }
    std::string heard() const {
        std::string out;
        for (const std::string& v : sock.values<std::string>()) out += v;
        return out;
    }
};
} // namespace

TEST_CASE("redis bridge: chat lines cross hosts framed once, byte for byte, a plain payload gets each client's ending",
          "[redis][integration][chat]") {
    if (!redis_server::available()) {
        WARN("redis-server is not installed: skipped (scripts/install-deps installs it)");
        return;
    }
    redis_server rs;
    scheduler s;
    backplane bp_a("A", delivery_policy::fail), bp_b("B", delivery_policy::fail);
    redis_bridge br_a("A", redis::parse_url(rs.url() + "?channel=ROOM"), host::fast_options());
    redis_bridge br_b("B", redis::parse_url(rs.url() + "?channel=ROOM"), host::fast_options());
    bp_a.activate(s);
    bp_b.activate(s);
    br_a.activate(s);
    br_b.activate(s);
    REQUIRE(run_until(s, [&] { return br_a.linked() && br_b.linked(); }));
    chat_peer a1(s, "A", 1), a2(s, "A", 2), b1(s, "B", 3), b_lf(s, "B", 4);
    b_lf.write("lf here\n");
    REQUIRE(run_until(s, [&] { return a1.heard().size() > 0 && b1.heard().size() > 0; }));
    CHECK(a1.heard() == "10.0.0.9:4 says lf here\r\n");
    CHECK(b1.heard() == "10.0.0.9:4 says lf here\r\n");

    a1.write("hello\r\nworld\r\n");
    const std::string crlf = "10.0.0.9:4 says lf here\r\n10.0.0.9:1 says hello\r\n10.0.0.9:1 says world\r\n";
    const std::string lf = "10.0.0.9:1 says hello\n10.0.0.9:1 says world\n";
    REQUIRE(run_until(s, [&] {
        return b1.heard().size() >= crlf.size() && a2.heard().size() >= crlf.size() && b_lf.heard().size() >= lf.size();
    }));
    CHECK(b1.heard() == crlf);
    CHECK(a2.heard() == crlf);
    CHECK(b_lf.heard() == lf);
    CHECK(a1.heard() == "10.0.0.9:4 says lf here\r\n"); // never its own lines, from either host

    REQUIRE(rs.cli("PUBLISH ROOM 'plain hello'") == 0);
    REQUIRE(run_until(
        s, [&] { return b_lf.heard().ends_with("plain hello\n") && a1.heard().ends_with("plain hello\r\n"); }));
    CHECK(b1.heard() == crlf + "plain hello\r\n");
    CHECK(b_lf.heard() == lf + "plain hello\n");
    CHECK(br_a.bad_packs() == 0);
    CHECK(br_b.bad_packs() == 0);
}
