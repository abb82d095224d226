// The SMTP connection's framing stage on its own, on the deterministic
// fixture (no sockets): bytes in, lines out, control passed on behind the
// lines, the STARTTLS reset, and no line lost to a stop while it waits.
#include "fixture.hpp"

#include <kamaelia/net/tls.hpp>
#include <kamaelia/smtp/framer.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kamaelia;
using namespace kamaelia::smtp;

namespace {

// Stands where the session would: records lines and control; with
// `hold`, reads nothing until "go" (a session busy on a greylist answer).
struct session_stub : component {
    std::vector<message> items;
    std::vector<ipc> controls;
    bool hold = false;
    session_stub() { declare_inbox("go", "start reading"); }
    task main() override {
        if (hold) co_await wait_for("go");
        for (;;) {
            while (auto m = recv_message("inbox")) items.push_back(std::move(*m));
            while (auto c = recv<ipc>("control")) controls.push_back(*c);
            while (recv_message("go")) {}
            co_await wait_any();
        }
    }
    // The lines as text; the mark as "<reframed>", a line over the limit as "<too long>".
    std::vector<std::string> lines() const {
        std::vector<std::string> v;
        for (auto& m : items) {
            if (m.peek<reframed>())
                v.push_back("<reframed>");
            else if (auto* l = m.peek<framed_line>())
                v.push_back(l->too_long ? "<too long>" : l->text);
        }
        return v;
    }
};

struct framer_rig {
    test::fixture f;
    framer fr;
    session_stub s;
    explicit framer_rig(std::size_t limit = 1001, bool hold = false) : fr(limit) {
        s.hold = hold;
        component::link({fr, "outbox"}, {s, "inbox"});
        component::link({fr, "signal"}, {s, "control"});
        f.activate(fr);
        f.activate(s);
        f.settle();
    }
    void bytes(std::string b) {
        deliver(fr, "inbox", message(std::move(b)));
        f.settle();
    }
    void end() {
        deliver(fr, "reframe", message(reframe{true}));
        f.settle();
        CHECK(fr.finished());
    }
};

} // namespace

TEST_CASE("smtp framer: lines across chunks, with their endings, control behind the lines", "[smtp][framer]") {
    framer_rig r;
    r.bytes("EHLO a.test\r\nMAIL FROM:<x@y.test>\r\nRC");
    REQUIRE(r.s.lines() == std::vector<std::string>{"EHLO a.test", "MAIL FROM:<x@y.test>"});
    deliver(r.fr, "inbox", message(std::string("PT TO:<u@example.org>\nbare\rcr\r\n")));
    deliver(r.fr, "control", message(producer_finished("peer closed")));
    r.f.settle();
    REQUIRE(r.s.lines().size() == 4);
    auto* rcpt = r.s.items[2].peek<framed_line>();
    REQUIRE(rcpt);
    CHECK(rcpt->text == "RCPT TO:<u@example.org>");
    CHECK_FALSE(rcpt->crlf); // a bare LF: the session must know (SMTP smuggling)
    auto* cr = r.s.items[3].peek<framed_line>();
    REQUIRE(cr);
    CHECK(cr->crlf);
    CHECK(cr->bare_cr);
    REQUIRE(r.s.controls.size() == 1);
    CHECK(r.s.controls[0].kind == ipc_kind::producer_finished);
    CHECK_FALSE(r.fr.finished()); // a half-close: the session may still answer
    r.end();
}

TEST_CASE("smtp framer: a line over the limit is reported once, its bytes not kept", "[smtp][framer][hostile]") {
    framer_rig r(20);
    r.bytes(std::string(50, 'a'));
    r.bytes(std::string(5000, 'b'));
    CHECK(r.s.items.empty());
    r.bytes("tail\r\nNOOP\r\n");
    CHECK(r.s.lines() == std::vector<std::string>{"<too long>", "NOOP"});
    // The session applies the limit in force: "NOOP\r\n" is 6 octets on the wire.
    auto* noop = r.s.items[1].peek<framed_line>();
    REQUIRE(noop);
    CHECK(noop->wire_size() == 6);
    CHECK(noop->view(6).text == "NOOP");
    CHECK(noop->view(5).too_long);
    r.end();
}

TEST_CASE("smtp framer: tls_started drops the partial line held and marks the place (STARTTLS)",
          "[smtp][framer][hostile]") {
    framer_rig r;
    r.bytes("STARTTLS\r\nRSET\r\nQUI"); // RSET rides in clear behind STARTTLS; a partial line held
    // The adapter's mark, then decrypted input already queued behind it:
    // it must survive (it once was drained with the clear text).
    deliver(r.fr, "inbox", message(kamaelia::tls_started{}));
    deliver(r.fr, "inbox", message(std::string("NOOP\r\n")));
    r.f.settle();
    r.bytes("EHLO after.tls\r\n");
    CHECK(r.s.lines() == std::vector<std::string>{"STARTTLS", "RSET", "<reframed>", "NOOP", "EHLO after.tls"});
    r.end();
}

TEST_CASE("smtp framer: waits for a busy session, a stop meanwhile is passed on and no line is lost",
          "[smtp][framer]") {
    framer_rig r(1001, true);
    r.s.in("inbox").set_limit(1);
    r.bytes("one\r\ntwo\r\nthree\r\n");
    CHECK(r.s.in("inbox").size() == 1);
    CHECK(r.s.in("inbox").parked_senders() == 1); // the framer waits for room
    deliver(r.fr, "control", message(shutdown_microprocess("server stopping")));
    r.f.settle();
    CHECK(r.s.in("control").size() == 1); // passed on at once, though the session is full
    deliver(r.s, "go", message(1));
    r.f.settle();
    CHECK(r.s.lines() == std::vector<std::string>{"one", "two", "three"});
    REQUIRE(r.s.controls.size() == 1);
    CHECK(r.s.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK_FALSE(r.fr.finished()); // a stop is the session's to act on (a message in DATA may finish)
    r.end();
}

TEST_CASE("smtp framer: ends once the socket has closed, after passing that on", "[smtp][framer]") {
    framer_rig r;
    r.bytes("NOOP\r\n");
    deliver(r.fr, "control", message(socket_shutdown("peer reset")));
    r.f.settle();
    CHECK(r.fr.finished());
    CHECK(r.s.lines() == std::vector<std::string>{"NOOP"});
    REQUIRE(r.s.controls.size() == 1);
    CHECK(r.s.controls[0].kind == ipc_kind::socket_shutdown);
}
