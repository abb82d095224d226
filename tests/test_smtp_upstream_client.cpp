// The SMTP connection's UPSTREAM stage on its own, on the deterministic
// fixture (no sockets): an in-process upstream MTA (or a broken one) as its
// connection, replies out one message each, the end with its reason.
#include "smtp_fakes.hpp"

#include <kamaelia/smtp/upstream_client.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

using namespace kamaelia;
using namespace kamaelia::smtp;

namespace {

// A connection that says what it is given, then nothing.
struct says : component {
    std::string text;
    explicit says(std::string t) : text(std::move(t)) {}
    task main() override {
        co_await send(text);
        while (!shutdown_requested()) co_await wait_any();
    }
};

struct client_rig {
    test::fixture f;
    upstream_client uc;
    test::collector session; // stands where RELAY's "up_in" would
    explicit client_rig(std::unique_ptr<component> conn) : uc(std::move(conn)) {
        component::link({uc, "outbox"}, {session, "inbox"});
        component::link({uc, "signal"}, {session, "control"});
        f.activate(uc);
        f.activate(session);
        f.settle();
    }
    void write(std::string bytes) {
        deliver(uc, "inbox", message(std::move(bytes)));
        f.settle();
    }
    std::vector<reply> replies() const { return session.values<reply>(); }
};

std::unique_ptr<component> mta(const std::shared_ptr<test::mta_log>& log,
                               std::function<void(test::fake_mta&)> tweak = {}) {
    auto m = std::make_unique<test::fake_mta>(log);
    if (tweak) tweak(*m);
    return m;
}

} // namespace

TEST_CASE("smtp upstream client: replies out one message each, in order, QUIT then finish closes", "[smtp][upstream]") {
    auto log = std::make_shared<test::mta_log>();
    client_rig r(mta(log));
    REQUIRE(r.replies().size() == 1);
    CHECK(r.replies()[0].code == 220);
    r.write("EHLO mx.test\r\nNOOP\r\n");
    auto got = r.replies();
    REQUIRE(got.size() == 3);
    CHECK(got[1].code == 250);
    CHECK(got[1].lines.size() == 6); // one multi-line reply, one message
    CHECK(parse_ehlo(got[1]).pipelining);
    CHECK(got[2].code == 250);
    r.write("QUIT\r\n");
    deliver(r.uc, "control", message(producer_finished("session over")));
    r.f.settle();
    CHECK(log->quits == 1);
    CHECK(r.replies().back().code == 221);
    CHECK(r.uc.finished());
    REQUIRE(r.session.controls.size() == 1);
    CHECK(r.session.controls[0].kind == ipc_kind::socket_shutdown); // after the 221
    CHECK(log->commands == std::vector<std::string>{"EHLO mx.test", "NOOP", "QUIT"});
}

TEST_CASE("smtp upstream client: an upstream that breaks the protocol ends it, with the reason",
          "[smtp][upstream][hostile]") {
    client_rig r(std::make_unique<says>("250 fine\r\nhello there\r\n"));
    CHECK(r.uc.finished());
    REQUIRE(r.replies().size() == 1); // what came before the break still arrives, first
    CHECK(r.replies()[0].code == 250);
    REQUIRE(r.session.controls.size() == 1);
    CHECK(r.session.controls[0].text.rfind("upstream broke the protocol: ", 0) == 0);
}

TEST_CASE("smtp upstream client: a refused connection, and a stop, end it with why", "[smtp][upstream]") {
    auto log = std::make_shared<test::mta_log>();
    SECTION("refused") {
        client_rig r(mta(log, [](test::fake_mta& m) { m.refuse = true; }));
        CHECK(r.uc.finished());
        CHECK(r.replies().empty());
        REQUIRE(r.session.controls.size() == 1);
        CHECK(r.session.controls[0].text.find("Connection refused") != std::string::npos);
    }
    SECTION("stopped by the session") {
        client_rig r(mta(log));
        CHECK(r.replies().size() == 1);
        deliver(r.uc, "control", message(shutdown_microprocess()));
        r.f.settle();
        CHECK(r.uc.finished());
        REQUIRE(r.session.controls.size() == 1);
        CHECK(r.session.controls[0].text == "closed by the session");
        CHECK(log->quits == 0);
    }
}
