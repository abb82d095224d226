// The Redis backplane bridge: URL and envelope without sockets, then the
// bridge against a real redis-server the test starts (and kills) itself.
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/redis/bridge.hpp>

#include "fixture.hpp"
#include "net_support.hpp"
#include "redis_support.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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
    CHECK(a.bridge.forwarded() == lines.size());
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
