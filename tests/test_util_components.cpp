// Utility components (docs/ORIGINAL.md, Utilities): transformers, sources, sinks, console,
// rate limiting, timed shutdown, one-shots.
#include <kamaelia/util/console_echoer.hpp>
#include <kamaelia/util/console_reader.hpp>
#include <kamaelia/util/data_source.hpp>
#include <kamaelia/util/message_rate_limit.hpp>
#include <kamaelia/util/null_sink.hpp>
#include <kamaelia/util/one_shot.hpp>
#include <kamaelia/util/pure_transformer.hpp>
#include <kamaelia/util/stateful_transformer.hpp>
#include <kamaelia/util/timed_shutdown.hpp>

#include "fixture.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace kamaelia;
using namespace std::chrono_literals;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::fixture;

namespace {

void chain(component& a, component& b) {
    component::link({a, "outbox"}, {b, "inbox"});
    component::link({a, "signal"}, {b, "control"});
}

// Pushes straight into a component's boxes (the test is its upstream).
template <class T>
void put(component& c, T v) {
    deliver(c, "inbox", message(std::move(v)));
}
void tell(component& c, ipc i) { deliver(c, "control", message(std::move(i))); }

std::string upper(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
}

// Runs `c` with a collector behind it; the collector keeps recording after
// ends. The fixture is declared first in each test: components a test owns
// must be destroyed before their scheduler.
struct rig {
    fixture& f;
    collector out;
    rig(fixture& fx, component& c, bool stop_on_end = false) : f(fx) {
        out.stop_on_end = stop_on_end;
        chain(c, out);
        f.activate(c);
        f.activate(out);
    }
};

} // namespace

// ---- pure_transformer -------------------------------------------------------------

TEST_CASE("pure_transformer: maps, and filters with std::nullopt", "[pure_transformer]") {
    fixture f;
    pure_transformer t([](int n) -> std::optional<int> {
        if (n % 2) return std::nullopt;
        return n * n;
    });
    rig r(f, t);
    for (int i = 1; i <= 6; ++i) put(t, i);
    r.f.settle();
    CHECK(r.out.values<int>() == std::vector<int>{4, 16, 36});
    CHECK(t.type_name() == "pure_transformer");
}

TEST_CASE("pure_transformer: ends on producer_finished after draining, and on shutdown_microprocess",
          "[pure_transformer]") {
    fixture f;
    SECTION("producer_finished") {
        pure_transformer t(upper);
        rig r(f, t);
        put(t, std::string("a"));
        put(t, std::string("b"));
        tell(t, producer_finished("eof"));
        r.f.settle();
        CHECK(t.finished());
        CHECK(r.out.values<std::string>() == std::vector<std::string>{"A", "B"});
        REQUIRE(r.out.controls.size() == 1);
        CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
        CHECK(r.out.controls[0].text == "eof");
        CHECK(r.out.controls[0].from == t.id());
    }
    SECTION("shutdown_microprocess (the original ignored it)") {
        pure_transformer t(upper);
        rig r(f, t);
        put(t, std::string("a"));
        tell(t, shutdown_microprocess());
        r.f.settle();
        CHECK(t.finished());
        CHECK(r.out.items.empty());
        REQUIRE(r.out.controls.size() == 1);
        CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
    }
    SECTION("other control messages are passed on") {
        pure_transformer t(upper);
        rig r(f, t);
        tell(t, ipc{ipc_kind::notify, "hello", 0});
        tell(t, producer_finished());
        r.f.settle();
        CHECK(t.finished());
        REQUIRE(r.out.controls.size() == 2);
        CHECK(r.out.controls[0].text == "hello");
        CHECK(r.out.controls[1].kind == ipc_kind::producer_finished);
    }
}

TEST_CASE("pure_transformer: a message of another type is a clear failure", "[pure_transformer]") {
    fixture f;
    pure_transformer t([](int n) { return n + 1; });
    rig r(f, t);
    put(t, std::string("not a number"));
    r.f.settle();
    CHECK(t.failed());
    CHECK_THAT(t.error_text(), Catch::Contains("recv<int>"));
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::component_error);
}

TEST_CASE("pure_transformer: generic lambdas name their input type", "[pure_transformer]") {
    fixture f;
    auto t = make_pure_transformer<double>([](auto x) { return x * 2; });
    rig r(f, t);
    put(t, 1.25);
    r.f.settle();
    CHECK(r.out.values<double>() == std::vector<double>{2.5});
}

// ---- stateful_transformer -----------------------------------------------------------

namespace {

struct numberer : stateful_transformer<std::string, std::string> {
    int n = 0;
    void process(std::string line) override { emit(std::to_string(++n) + " " + line); }
    void finish() override { emit("total " + std::to_string(n)); }
};

// Splits words, keeps the running count; several outputs per input.
struct word_splitter {
    std::size_t words = 0;
    std::vector<std::string> operator()(const std::string& s) {
        std::vector<std::string> out;
        std::istringstream is(s);
        for (std::string w; is >> w;) out.push_back(w);
        words += out.size();
        return out;
    }
    std::optional<std::string> finish() { return std::to_string(words) + " words"; }
};

} // namespace

TEST_CASE("stateful_transformer: a derived class keeps state and flushes at the end", "[stateful_transformer]") {
    fixture f;
    numberer t;
    rig r(f, t);
    put(t, std::string("a"));
    put(t, std::string("b"));
    tell(t, producer_finished());
    r.f.settle();
    CHECK(t.finished());
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"1 a", "2 b", "total 2"});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("stateful_transformer: shutdown ends it without the final flush", "[stateful_transformer]") {
    fixture f;
    numberer t;
    rig r(f, t);
    put(t, std::string("a"));
    r.f.settle();
    tell(t, shutdown_microprocess());
    r.f.settle();
    CHECK(t.finished());
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"1 a"});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("stateful_transformer: a callable object with state", "[stateful_transformer]") {
    fixture f;
    auto t = make_stateful_transformer(word_splitter{});
    rig r(f, t);
    put(t, std::string("the quick"));
    put(t, std::string("brown fox jumps"));
    r.f.settle();
    CHECK(t.function().words == 5);
    tell(t, producer_finished());
    r.f.settle();
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"the", "quick", "brown", "fox", "jumps", "5 words"});

    // Plain value results, with the state in the object.
    struct running_total {
        int sum = 0;
        int operator()(int n) { return sum += n; }
    };
    auto total = make_stateful_transformer(running_total{});
    rig r2(f, total);
    for (int i = 1; i <= 4; ++i) put(total, i);
    r2.f.settle();
    CHECK(r2.out.values<int>() == std::vector<int>{1, 3, 6, 10});
}

// ---- data_source, one_shot, triggered_one_shot ------------------------------------------

TEST_CASE("data_source: emits its items, then producer_finished", "[data_source]") {
    fixture f;
    data_source src{"one", "two", "three"};
    rig r(f, src, true);
    r.f.settle();
    CHECK(src.finished());
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"one", "two", "three"});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("data_source: waits for room, and stops early when told", "[data_source]") {
    fixture f;
    data_source src(std::vector<int>{1, 2, 3, 4, 5});
    rig r(f, src);
    r.out.in("inbox").set_limit(2);
    r.f.step(); // the source fills the receiver and waits for room
    CHECK_FALSE(src.finished());
    std::size_t before = r.out.items.size();
    CHECK(before < 5);
    tell(src, shutdown_microprocess());
    r.f.settle();
    CHECK(src.finished());
    CHECK(r.out.items.size() <= before + 1); // at most the one it was waiting to send
    CHECK(r.out.items.size() < 5);
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("one_shot: sends its message then producer_finished", "[one_shot]") {
    fixture f;
    one_shot shot("hello");
    rig r(f, shot, true);
    r.f.settle();
    CHECK(shot.finished());
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"hello"});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("triggered_one_shot: waits for any input, then sends once", "[one_shot]") {
    fixture f;
    triggered_one_shot go(42);
    rig r(f, go, true);
    r.f.settle();
    CHECK(r.out.items.empty());
    CHECK_FALSE(go.finished());
    put(go, std::string("anything"));
    put(go, std::string("more"));
    r.f.settle();
    CHECK(go.finished());
    CHECK(r.out.values<int>() == std::vector<int>{42});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("triggered_one_shot: an end before the trigger is passed on, nothing sent", "[one_shot]") {
    fixture f;
    auto kind = GENERATE(ipc_kind::producer_finished, ipc_kind::shutdown_microprocess);
    triggered_one_shot go(std::string("never"));
    rig r(f, go);
    r.f.settle();
    tell(go, ipc{kind, {}, 0});
    r.f.settle();
    CHECK(go.finished());
    CHECK(r.out.items.empty());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == kind);
}

// ---- null_sink ------------------------------------------------------------------------

TEST_CASE("null_sink: discards, awaits (never spins), ends on either end message", "[null_sink]") {
    auto kind = GENERATE(ipc_kind::producer_finished, ipc_kind::shutdown_microprocess);
    fixture f;
    null_sink sink;
    collector sig;
    component::link({sink, "signal"}, {sig, "control"});
    f.activate(sink);
    f.activate(sig);
    f.settle();
    std::uint32_t idle = sink.wakeups();
    f.settle();
    f.advance(10s);
    CHECK(sink.wakeups() == idle); // nothing to do: not resumed at all
    for (int i = 0; i < 100; ++i) put(sink, i);
    f.settle();
    CHECK(sink.discarded() == 100);
    CHECK(sink.wakeups() == idle + 1); // one batch, one wake-up
    tell(sink, ipc{kind, {}, 0});
    f.settle();
    CHECK(sink.finished());
    REQUIRE(sig.controls.size() == 1);
    CHECK(sig.controls[0].kind == kind);
}

// ---- console_echoer -------------------------------------------------------------------

TEST_CASE("console_echoer: writes tag and text, flushes, ends only on end messages", "[console_echoer]") {
    fixture f;
    std::ostringstream os;
    console_echoer echo({.tag = "> ", .out = &os});
    collector sig;
    sig.stop_on_end = false;
    component::link({echo, "signal"}, {sig, "control"});
    f.activate(echo);
    f.activate(sig);
    put(echo, std::string("hello\n"));
    put(echo, 42);
    put(echo, true);
    f.settle();
    CHECK(os.str() == "> hello\n> 42> True");
    CHECK(echo.written() == 3);

    // Any other control message is passed on, and it keeps running (the original stopped).
    tell(echo, ipc{ipc_kind::notify, "note", 0});
    f.settle();
    CHECK_FALSE(echo.finished());
    put(echo, std::string("still here"));
    tell(echo, producer_finished());
    f.settle();
    CHECK(echo.finished());
    CHECK(os.str() == "> hello\n> 42> True> still here");
    REQUIRE(sig.controls.size() == 2);
    CHECK(sig.controls[0].text == "note");
    CHECK(sig.controls[1].kind == ipc_kind::producer_finished);
}

TEST_CASE("console_echoer: repr and forwarder", "[console_echoer]") {
    fixture f;
    std::ostringstream os;
    console_echoer echo({.forwarder = true, .use_repr = true, .out = &os});
    rig r(f, echo);
    put(echo, std::string("a'b\n"));
    put(echo, std::string("tab\there"));
    put(echo, 'x');
    r.f.settle();
    tell(echo, shutdown_microprocess());
    r.f.settle();
    CHECK(os.str() == "\"a'b\\n\"'tab\\there''x'");
    CHECK(r.out.items.size() == 3);
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"a'b\n", "tab\there"});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("message_to_text: the usual types", "[console_echoer]") {
    CHECK(message_to_text(message(std::string("s"))) == "s");
    CHECK(message_to_text(message(std::string("s")), true) == "'s'");
    CHECK(message_to_text(message(-3)) == "-3");
    CHECK(message_to_text(message(static_cast<unsigned char>(7))) == "7");
    CHECK(message_to_text(message(2.5)) == "2.5");
    CHECK(message_to_text(message(producer_finished())) == "producer_finished");
    CHECK(message_to_text(message(shutdown_microprocess("why"))) == "shutdown_microprocess(why)");
    struct opaque {
        int x;
    };
    CHECK_THAT(message_to_text(message(opaque{1})), Catch::StartsWith("<") && Catch::Contains("opaque"));
}

// ---- console_reader -------------------------------------------------------------------

namespace {

struct pipe_fds {
    int r = -1, w = -1;
    pipe_fds() {
        int p[2];
        REQUIRE(::pipe(p) == 0);
        r = p[0];
        w = p[1];
    }
    ~pipe_fds() {
        close_write();
        if (r >= 0) ::close(r);
    }
    void write(const std::string& s) { REQUIRE(::write(w, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
    void close_write() {
        if (w >= 0) ::close(w);
        w = -1;
    }
};

// Steps the scheduler until `done` or a bound (the reactor reports the pipe
// within a cycle or two; no sleeping).
template <class P>
void settle_until(fixture& f, P done) {
    for (int i = 0; i < 1000 && !done(); ++i) f.settle();
}

} // namespace

TEST_CASE("console_reader: lines from a pipe, producer_finished at end of input", "[console_reader]") {
    fixture f;
    pipe_fds p;
    int flags_before = ::fcntl(p.r, F_GETFL);
    console_reader reader({.fd = p.r});
    rig r(f, reader);
    p.write("one\ntwo\r\nthr");
    settle_until(r.f, [&] { return r.out.items.size() >= 2; });
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"one\n", "two\n"});
    p.write("ee\nfour");
    p.close_write();
    settle_until(r.f, [&] { return reader.finished(); });
    CHECK(reader.finished());
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"one\n", "two\n", "three\n", "four\n"});
    CHECK(reader.lines() == 4);
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
    // The reactor made the descriptor non-blocking; it was put back.
    CHECK(::fcntl(p.r, F_GETFL) == flags_before);
}

TEST_CASE("console_reader: stops at once on shutdown while waiting", "[console_reader]") {
    fixture f;
    pipe_fds p;
    int flags_before = ::fcntl(p.r, F_GETFL);
    console_reader reader({.fd = p.r, .eol = ""});
    rig r(f, reader);
    p.write("partial line, no newline yet");
    settle_until(r.f, [&] { return false; });
    CHECK(r.out.items.empty());
    tell(reader, shutdown_microprocess());
    r.f.settle();
    CHECK(reader.finished());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK(::fcntl(p.r, F_GETFL) == flags_before);
}

TEST_CASE("console_reader: a regular file, read without the reactor", "[console_reader]") {
    fixture f;
    char path[] = "/tmp/kamaelia_reader_XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    std::string text;
    for (int i = 0; i < 5000; ++i) text += "line " + std::to_string(i) + "\n";
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::lseek(fd, 0, SEEK_SET);
    console_reader reader({.fd = fd, .eol = ""});
    rig r(f, reader);
    r.f.settle();
    CHECK(reader.finished());
    std::vector<std::string> got = r.out.values<std::string>();
    REQUIRE(got.size() == 5000);
    CHECK(got.front() == "line 0");
    CHECK(got.back() == "line 4999");
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
    ::close(fd);
    ::unlink(path);
}

TEST_CASE("console_reader: /dev/null (not pollable) is just end of input", "[console_reader]") {
    fixture f;
    int fd = ::open("/dev/null", O_RDONLY);
    REQUIRE(fd >= 0);
    console_reader reader({.fd = fd});
    rig r(f, reader);
    settle_until(r.f, [&] { return reader.finished(); });
    CHECK(reader.finished());
    CHECK(r.out.items.empty());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
    ::close(fd);
}

TEST_CASE("console_reader: over-long lines come in pieces", "[console_reader]") {
    fixture f;
    pipe_fds p;
    console_reader reader({.fd = p.r, .eol = "", .max_line = 4});
    rig r(f, reader);
    p.write("abcdefghij\nxy\n");
    p.close_write();
    settle_until(r.f, [&] { return reader.finished(); });
    CHECK(r.out.values<std::string>() == std::vector<std::string>{"abcd", "efgh", "ij", "xy"});
}

// ---- message_rate_limit ------------------------------------------------------------------

TEST_CASE("message_rate_limit: buffers, then one message per interval", "[message_rate_limit]") {
    fixture f;
    message_rate_limit lim(10.0, 3); // every 100 ms once three are queued
    CHECK(lim.interval() == 100ms);
    rig r(f, lim);
    put(lim, 1);
    put(lim, 2);
    CHECK(r.f.settle() < 10); // it waits for more; it does not spin
    r.f.advance(1s);
    CHECK(r.out.items.empty()); // waiting for the buffer to fill
    put(lim, 3);
    put(lim, 4);
    r.f.settle();
    CHECK(r.out.values<int>() == std::vector<int>{1});
    r.f.advance(99ms);
    CHECK(r.out.items.size() == 1);
    r.f.advance(1ms);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2});
    r.f.advance(100ms);
    r.f.advance(100ms);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2, 3, 4});
    CHECK(lim.passed() == 4);

    // Idle for a while: the next one goes at once, no burst of missed slots.
    r.f.advance(1s);
    put(lim, 5);
    put(lim, 6);
    r.f.settle();
    CHECK(r.out.values<int>() == std::vector<int>{1, 2, 3, 4, 5});
    r.f.advance(100ms);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("message_rate_limit: producer_finished flushes at the rate, then is passed on", "[message_rate_limit]") {
    fixture f;
    message_rate_limit lim(4.0, 10); // 250 ms
    rig r(f, lim);
    for (int i = 1; i <= 3; ++i) put(lim, i);
    tell(lim, producer_finished());
    r.f.settle(); // the input ended: no need to wait for ten
    CHECK(r.out.values<int>() == std::vector<int>{1});
    r.f.advance(250ms);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2});
    CHECK(r.out.controls.empty());
    r.f.advance(250ms);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2, 3});
    CHECK(lim.finished());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("message_rate_limit: a shutdown cuts a producer_finished flush short", "[message_rate_limit]") {
    fixture f;
    message_rate_limit lim(1.0, 1);
    rig r(f, lim);
    for (int i = 1; i <= 100; ++i) put(lim, i);
    tell(lim, producer_finished());
    r.f.settle();
    r.f.advance(1s);
    CHECK(r.out.values<int>() == std::vector<int>{1, 2});
    tell(lim, shutdown_microprocess());
    CHECK(r.f.settle() < 10);
    CHECK(lim.finished());
    CHECK(r.out.values<int>() == std::vector<int>{1, 2});
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("message_rate_limit: shutdown is passed on at once, the rest dropped", "[message_rate_limit]") {
    fixture f;
    message_rate_limit lim(1.0, 1);
    rig r(f, lim);
    for (int i = 1; i <= 5; ++i) put(lim, i);
    r.f.settle();
    CHECK(r.out.values<int>() == std::vector<int>{1});
    r.f.advance(300ms);
    tell(lim, ipc{ipc_kind::notify, "passing by", 0});
    r.f.settle();
    CHECK(r.out.controls.size() == 1); // passed on, still waiting for the slot
    tell(lim, shutdown_microprocess());
    r.f.settle();
    CHECK(lim.finished());
    CHECK(r.out.values<int>() == std::vector<int>{1});
    REQUIRE(r.out.controls.size() == 2);
    CHECK(r.out.controls[1].kind == ipc_kind::shutdown_microprocess);
    CHECK_THROWS_AS(message_rate_limit(0.0), bad_state);
}

// ---- timed_shutdown --------------------------------------------------------------------

TEST_CASE("timed_shutdown: sends shutdown_microprocess once the time is up", "[timed_shutdown]") {
    fixture f;
    timed_shutdown t(5s);
    rig r(f, t);
    r.f.settle();
    r.f.advance(4999ms);
    CHECK(r.out.controls.empty());
    CHECK_FALSE(t.finished());
    r.f.advance(1ms);
    CHECK(t.finished());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("timed_shutdown: an end message before then ends it early", "[timed_shutdown]") {
    fixture f;
    timed_shutdown t(5s);
    rig r(f, t);
    r.f.settle();
    put(t, 1); // input is ignored
    r.f.advance(1s);
    tell(t, producer_finished());
    r.f.settle();
    CHECK(t.finished());
    REQUIRE(r.out.controls.size() == 1);
    CHECK(r.out.controls[0].kind == ipc_kind::producer_finished);
    r.f.advance(10s);
    CHECK(r.out.controls.size() == 1);
}
