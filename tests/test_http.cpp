// The console's HTTP request parsing (on http-parser) and the Prometheus
// exposition: pure functions, no sockets.
#include <kamaelia/core/metrics.hpp>
#include <kamaelia/http/request_parser.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace kamaelia;

TEST_CASE("a GET request split anywhere parses the same", "[http]") {
    const std::string req = "GET /api/graph?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    for (std::size_t cut = 0; cut <= req.size(); ++cut) {
        http::request_parser p;
        REQUIRE(p.feed(req.substr(0, cut)) == http::parse_result::ok);
        REQUIRE(p.feed(req.substr(cut)) == http::parse_result::ok);
        auto r = p.next();
        REQUIRE(r);
        CHECK(r->method == "GET");
        CHECK(r->path() == "/api/graph");
        CHECK(r->header("host") == "a");
        CHECK(r->keep_alive);
        CHECK_FALSE(p.next());
    }
}

TEST_CASE("pipelined requests come out in order, Connection: close stops the reading", "[http]") {
    http::request_parser p;
    p.feed("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    CHECK(p.next()->target == "/a");
    auto b = p.next();
    CHECK(b->target == "/b");
    CHECK_FALSE(b->keep_alive);
    CHECK_FALSE(p.next());
    CHECK_FALSE(p.failed());
}

TEST_CASE("hostile requests are refused before anything big is stored", "[http]") {
    SECTION("other methods") {
        http::request_parser p;
        CHECK(p.feed("POST / HTTP/1.1\r\n\r\n") == http::parse_result::error);
        CHECK(p.status() == 405);
    }
    SECTION("a head over the limit, fed a byte at a time") {
        http::request_parser p({.max_head = 256});
        std::string big = "GET /" + std::string(1000, 'a') + " HTTP/1.1\r\n\r\n";
        http::parse_result r = http::parse_result::ok;
        for (char c : big)
            if ((r = p.feed(std::string_view(&c, 1))) == http::parse_result::error) break;
        CHECK(r == http::parse_result::error);
        CHECK(p.status() == 431);
    }
    SECTION("too many headers") {
        http::request_parser p({.max_headers = 4});
        std::string req = "GET / HTTP/1.1\r\n";
        for (int i = 0; i < 5; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
        CHECK(p.feed(req + "\r\n") == http::parse_result::error);
        CHECK(p.status() == 431);
    }
    SECTION("a body") {
        http::request_parser p;
        CHECK(p.feed("GET / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n") == http::parse_result::error);
        CHECK(p.status() == 413);
    }
    SECTION("too many pipelined requests") {
        http::request_parser p({.max_pending = 2});
        CHECK(p.feed("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n") ==
              http::parse_result::error);
        CHECK(p.status() == 503);
    }
    SECTION("garbage") {
        http::request_parser p;
        CHECK(p.feed("\x16\x03\x01\x00\x10garbage\r\n\r\n") == http::parse_result::error);
        CHECK(p.status() == 400);
        CHECK(p.feed("GET / HTTP/1.1\r\n\r\n") == http::parse_result::error); // stays failed
    }
}

TEST_CASE("responses carry length and connection", "[http]") {
    auto r = http::format_response(404, "text/plain", "no\n", false);
    CHECK(r.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    CHECK(r.find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(r.find("Connection: close\r\n") != std::string::npos);
    CHECK(r.substr(r.size() - 7) == "\r\n\r\nno\n");
}

TEST_CASE("the exposition groups families and escapes labels", "[metrics]") {
    metrics::registry reg;
    metrics::histogram h({0.1, 1});
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    reg.add([](metrics::exposition& x) { x.counter("kamaelia_x_total", "xs", {{"server", "a\"b"}}, 3); });
    reg.add([&](metrics::exposition& x) {
        x.counter("kamaelia_x_total", "xs", {{"server", "c"}}, 4);
        x.histogram("kamaelia_t_seconds", "ts", {}, h);
    });
    std::string text = reg.scrape();
    CHECK(text.find("# TYPE kamaelia_x counter\n") != std::string::npos);
    CHECK(text.find("kamaelia_x_total{server=\"a\\\"b\"} 3\nkamaelia_x_total{server=\"c\"} 4\n") != std::string::npos);
    CHECK(text.find("kamaelia_t_seconds_bucket{le=\"0.1\"} 1\n") != std::string::npos);
    CHECK(text.find("kamaelia_t_seconds_bucket{le=\"1\"} 2\n") != std::string::npos);
    CHECK(text.find("kamaelia_t_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
    CHECK(text.find("kamaelia_t_seconds_count 3\n") != std::string::npos);
}

TEST_CASE("a shared histogram's snapshot is the plain histogram of the same observations", "[metrics]") {
    metrics::shared_histogram s({1, 0.1}); // unsorted bounds are sorted, as in histogram
    metrics::histogram h({0.1, 1});
    for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 7.0}) {
        s.observe(v);
        h.observe(v);
    }
    metrics::histogram snap = s.snapshot();
    CHECK(snap.bounds() == h.bounds());
    CHECK(snap.counts() == h.counts());
    CHECK(snap.count() == h.count());
    CHECK(snap.sum() == Approx(h.sum()));
}
