// The SMTP connection's stages on their own, without sockets: the envelope
// rules (commands in, replies and log lines out) and the DATA lines (client
// lines in, upstream bytes out) without a scheduler; then, on the
// deterministic fixture, the ENVELOPE stage between the real framer and a
// fake RELAY, and the RELAY stage with a hand-driven upstream.
#include "embedded.hpp"
#include "smtp_fakes.hpp"

#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/core/deliver.hpp>
#include <kamaelia/smtp/envelope.hpp>
#include <kamaelia/smtp/message_body.hpp>
#include <kamaelia/smtp/protocol.hpp>
#include <kamaelia/smtp/relay.hpp>
#include <kamaelia/smtp/transaction.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::smtp;
using kamaelia::greylist::verdict;

namespace {

struct stage_rig {
    proxy_context ctx;
    std::vector<std::string> log;
    stage_rig() {
        ctx.cfg.server_name = "mx.test";
        ctx.cfg.allowed_domains = {"example.org"};
        ctx.log_line = [this](const std::string& s) { log.push_back(s); };
        ctx.wall_clock = [] { return std::time_t(0); };
    }
};

command cmd(std::string_view line) { return parse_command(line); }

line_reader::line text(std::string_view t, bool crlf = true, bool bare_cr = false) {
    line_reader::line l;
    l.text = t;
    l.crlf = crlf;
    l.bare_cr = bare_cr;
    return l;
}

bool ends_with(const std::string& s, const std::string& e) {
    return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

} // namespace

TEST_CASE("smtp envelope: HELO before MAIL, one MAIL at a time, SIZE and BODY checked", "[smtp]") {
    stage_rig r;
    envelope e(r.ctx, "192.0.2.1", 1);
    auto a = e.mail(cmd("MAIL FROM:<a@b.test>"));
    CHECK(a.code == 503);
    CHECK(a.error);
    a = e.hello(cmd("EHLO c.test"), true);
    CHECK(a.code == 250);
    CHECK(a.text.find("\nSTARTTLS") != std::string::npos);
    CHECK(e.hello(cmd("EHLO c.test"), false).text.find("STARTTLS") == std::string::npos);
    CHECK(e.mail(cmd("MAIL FROM:<a@b.test> SIZE=x")).code == 501);
    CHECK(e.mail(cmd("MAIL FROM:<a@b.test> SIZE=99999999999")).code == 552);
    CHECK(e.mail(cmd("MAIL FROM:<a@b.test> BODY=8bitmime SIZE=10")).code == 250);
    CHECK(e.relayed(0).body_8bit);
    CHECK(e.relayed(0).declared_size == std::uint64_t(10));
    a = e.mail(cmd("MAIL FROM:<x@b.test>"));
    CHECK(a.code == 503);
    CHECK(a.text == "5.5.1 Error: nested MAIL command");
    CHECK(e.relayed(0).sender == "a@b.test");

    envelope plain(r.ctx, "192.0.2.1", 2);
    plain.hello(cmd("HELO c.test"), false);
    a = plain.mail(cmd("MAIL FROM:<a@b.test> SIZE=10"));
    CHECK(a.code == 555); // parameters need EHLO
}

TEST_CASE("smtp envelope: RCPT's rules decide what needs the greylist", "[smtp]") {
    stage_rig r;
    r.ctx.cfg.allowed_senders = {"192.0.2.99"};
    r.ctx.cfg.whitelisted_triples = {{"192.0.2.1", "<a@b.test>", "<vip@example.org>"}};
    envelope e(r.ctx, "192.0.2.1", 0x2a);
    greylist::request q;
    auto a = e.rcpt(cmd("RCPT TO:<u@example.org>"), q);
    REQUIRE(a);
    CHECK(a->code == 503);
    e.hello(cmd("EHLO c.test"), false);
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    a = e.rcpt(cmd("RCPT TO:<u@elsewhere.test>"), q);
    REQUIRE(a);
    CHECK(a->code == 550);
    CHECK(a->error);
    a = e.rcpt(cmd("RCPT TO:<postmaster>"), q);
    REQUIRE(a);
    CHECK(a->code == 250);
    a = e.rcpt(cmd("RCPT TO:<vip@example.org>"), q);
    REQUIRE(a);
    CHECK(a->code == 250); // a whitelisted triple
    a = e.rcpt(cmd("RCPT TO:<u@example.org>"), q);
    REQUIRE_FALSE(a); // the greylist decides
    CHECK(q.client_address == "192.0.2.1");
    CHECK(q.helo == "c.test");
    CHECK(q.sender == "a@b.test");
    CHECK(q.recipient == "u@example.org");
    CHECK(q.instance == e.id());
    CHECK(e.id().rfind("2a.", 0) == 0);

    greylist::decision later{verdict::greylisted, std::chrono::seconds(300), {}, "new"};
    auto g = e.rcpt_decided("u@example.org", later);
    CHECK(g.code == 451);
    CHECK(g.text == "4.7.1 <u@example.org>: Recipient address rejected: Greylisted, please try again in 300 seconds");
    greylist::decision ok{verdict::pass, {}, std::chrono::seconds(400), "passed"};
    ok.first_pass = true;
    CHECK(e.rcpt_decided("w@example.org", ok).code == 250);
    CHECK(e.delayed() == 400);
    CHECK(e.accepted() == 3);
    CHECK(e.rcpt_decided("t@example.org", greylist::decision{}).text.rfind("4.3.0", 0) == 0);

    envelope anywhere(r.ctx, "192.0.2.99", 3);
    anywhere.hello(cmd("HELO c.test"), false);
    anywhere.mail(cmd("MAIL FROM:<a@b.test>"));
    a = anywhere.rcpt(cmd("RCPT TO:<u@elsewhere.test>"), q);
    REQUIRE(a);
    CHECK(a->code == 250); // an allowed client relays anywhere, ungreylisted
}

TEST_CASE("smtp envelope: recipient and attempt limits", "[smtp][hostile]") {
    stage_rig r;
    r.ctx.cfg.max_recipients = 2;
    r.ctx.cfg.max_rcpt_attempts = 4;
    r.ctx.cfg.allowed_senders = {"192.0.2.1"};
    envelope e(r.ctx, "192.0.2.1", 1);
    e.hello(cmd("EHLO c.test"), false);
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    greylist::request q;
    CHECK(e.rcpt(cmd("RCPT TO:<a@x.test>"), q)->code == 250);
    CHECK(e.rcpt(cmd("RCPT TO:<b@x.test>"), q)->code == 250);
    auto a = e.rcpt(cmd("RCPT TO:<c@x.test>"), q);
    CHECK(a->code == 452);
    CHECK_FALSE(a->error); // over max_recipients: a transient answer, not an error
    CHECK_FALSE(e.rcpt(cmd("RCPT TO:<d@x.test>"), q)->error);
    a = e.rcpt(cmd("RCPT TO:<e@x.test>"), q);
    CHECK(a->code == 452);
    CHECK(a->error); // past the attempt cap every RCPT is an error
}

TEST_CASE("smtp envelope: the attempt cap counts from the last message delivered, not from the session's start",
          "[smtp][hostile]") {
    // smtp-source -s 8 -m 20000 (grey.proxy_8) sends 2,500 messages on each
    // connection: a per-session cap of 1,000 refused the 1,001st.
    stage_rig r;
    r.ctx.cfg.max_rcpt_attempts = 2;
    r.ctx.cfg.allowed_senders = {"192.0.2.1"};
    envelope e(r.ctx, "192.0.2.1", 1);
    e.hello(cmd("EHLO c.test"), false);
    greylist::request q;
    for (int m = 0; m < 5; ++m) {
        e.mail(cmd("MAIL FROM:<a@b.test>"));
        CHECK(e.rcpt(cmd("RCPT TO:<a@x.test>"), q)->code == 250);
        e.end(outcome::accepted, "250 queued");
    }
    // Transactions that deliver nothing still count against it.
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    CHECK(e.rcpt(cmd("RCPT TO:<a@x.test>"), q)->code == 250);
    e.end(outcome::abandoned, "RSET");
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    CHECK(e.rcpt(cmd("RCPT TO:<a@x.test>"), q)->code == 250);
    e.end(outcome::failed, "upstream lost");
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    auto a = e.rcpt(cmd("RCPT TO:<a@x.test>"), q);
    CHECK(a->code == 452);
    CHECK(a->error);
}

TEST_CASE("smtp envelope: each transaction ends with one log line, in the original's format", "[smtp]") {
    stage_rig r;
    envelope e(r.ctx, "192.0.2.1", 1);
    e.hello(cmd("EHLO c.test"), false);
    e.end(outcome::abandoned, "RSET"); // no transaction: nothing to log
    CHECK(r.log.empty());
    e.mail(cmd("MAIL FROM:<a@b.test>"));
    greylist::request q;
    e.rcpt(cmd("RCPT TO:<u@example.org>"), q);
    e.rcpt_decided("u@example.org", greylist::decision{verdict::greylisted, std::chrono::seconds(60), {}, ""});
    auto no = e.data_refusal();
    REQUIRE(no);
    CHECK(no->code == 554);
    REQUIRE(r.log.size() == 1);
    CHECK(ends_with(r.log[0], " | c.test | 192.0.2.1 | <a@b.test> | <u@example.org> | DEFERRED | no valid recipients"));
    CHECK(r.ctx.deferred == 1);
    CHECK_FALSE(e.in_mail());
    e.end_session("client disconnected"); // a transaction was logged: no NO MAIL line
    CHECK(r.log.size() == 1);

    envelope quiet(r.ctx, "192.0.2.2", 2);
    quiet.end_session("client disconnected");
    REQUIRE(r.log.size() == 2);
    CHECK(ends_with(r.log[1], " |  | 192.0.2.2 | None |  | NO MAIL | client disconnected"));
}

TEST_CASE("smtp envelope: the upstream gets XFORWARD, MAIL and the accepted recipients", "[smtp]") {
    stage_rig r;
    envelope e(r.ctx, "192.0.2.1", 1);
    e.hello(cmd("EHLO c.test"), false);
    e.mail(cmd("MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME"));
    greylist::request q;
    e.rcpt(cmd("RCPT TO:<u@example.org>"), q);
    e.rcpt_decided("u@example.org", greylist::decision{verdict::pass, {}, {}, ""});
    e.rcpt(cmd("RCPT TO:<v@example.org>"), q);
    e.rcpt_decided("v@example.org", greylist::decision{verdict::greylisted, {}, {}, ""});
    e.rcpt(cmd("RCPT TO:<postmaster>"), q);

    extensions bare;
    auto u = relay_commands(e.relayed(40000), bare);
    CHECK_FALSE(u.xforward);
    CHECK(u.commands == std::vector<std::string>{"MAIL FROM:<a@b.test>\r\n", "RCPT TO:<u@example.org>\r\n",
                                                 "RCPT TO:<postmaster>\r\n"});
    extensions full;
    full.size = full.eightbitmime = full.xforward = true;
    full.xforward_attrs = {"NAME", "ADDR", "PORT", "PROTO", "HELO"};
    u = relay_commands(e.relayed(40000), full);
    REQUIRE(u.xforward);
    CHECK(u.commands[0] == "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=40000 PROTO=ESMTP HELO=c.test\r\n");
    CHECK(u.commands[1] == "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME\r\n");
}

TEST_CASE("smtp DATA stage: the body goes upstream unchanged, ended by the final dot", "[smtp]") {
    message_body b(1000);
    CHECK_FALSE(b.active());
    b.start();
    CHECK(b.active());
    CHECK_FALSE(b.take(text("Subject: hi")));
    CHECK_FALSE(b.take(text("")));
    CHECK_FALSE(b.is_end(text("..")));
    CHECK_FALSE(b.take(text(".."))); // still dot-stuffed: the upstream unstuffs
    CHECK(b.is_end(text(".")));
    CHECK_FALSE(b.is_end(text(".", false))); // a bare LF dot is not the end
    b.finish();
    CHECK(b.take_pending() == "Subject: hi\r\n\r\n..\r\n.\r\n");
    CHECK(b.pending() == 0);
    b.reset();
    CHECK_FALSE(b.active());
}

TEST_CASE("smtp DATA stage: bare LF or CR, long lines and size refuse the message once", "[smtp][hostile]") {
    SECTION("bare LF, and the dot after it does not end the message") {
        message_body b(1000);
        b.start();
        CHECK_FALSE(b.take(text("a")));
        CHECK(b.take(text("evil", false)) == true);
        CHECK(b.refused());
        CHECK(b.refusal_code() == 554);
        CHECK(b.refusal() == "5.6.11 Error: bare CR or LF in message (SMTP smuggling protection)");
        CHECK(b.pending() == 0);          // nothing more goes upstream
        CHECK_FALSE(b.is_end(text("."))); // after a bare LF: smuggled, not the end
        CHECK_FALSE(b.take(text("x")));   // refused once; the first reason stays
        CHECK(b.is_end(text(".")));
        CHECK(b.refusal_code() == 554);
    }
    SECTION("bare CR") {
        message_body b(1000);
        b.start();
        CHECK(b.take(text("a\rb", true, true)));
        CHECK(b.refusal_code() == 554);
    }
    SECTION("a line over the limit") {
        message_body b(1000);
        b.start();
        line_reader::line l;
        l.too_long = true;
        CHECK(b.take(l));
        CHECK(b.refusal_code() == 500);
        CHECK(b.is_end(text("."))); // its ending is unknown: the client's dot still ends it
    }
    SECTION("the size limit counts the body's octets with their CRLF") {
        message_body b(10);
        b.start();
        CHECK_FALSE(b.take(text("12345678"))); // 10 with CRLF
        CHECK(b.take(text("")));
        CHECK(b.refusal_code() == 552);
    }
}

// ---- the stages as components, on the deterministic fixture ------------------------

namespace {

// What a fake RELAY was sent, kept after the graph removed it.
struct relay_log {
    std::vector<message> got;      // inbox, in order
    std::vector<message> controls; // control, in order
    bool ended = false;
    // The body bytes it was given, body_end's included.
    std::string body() const {
        std::string s;
        for (auto& m : got) {
            if (auto* b = m.peek<body_bytes>()) s += b->bytes;
            if (auto* e = m.peek<body_end>()) s += e->bytes;
        }
        return s;
    }
    template <class T>
    std::size_t count() const {
        std::size_t n = 0;
        for (auto& m : got) n += m.peek<T>() ? 1 : 0;
        return n;
    }
};

// Stands where RELAY would: records what ENVELOPE sends it; the test
// answers by delivering relay_reply into ENVELOPE's "relay_in".
struct fake_relay : component {
    std::shared_ptr<relay_log> log;
    explicit fake_relay(std::shared_ptr<relay_log> l) : log(std::move(l)) {}
    task main() override {
        for (;;) {
            while (auto m = recv_message("inbox")) log->got.push_back(std::move(*m));
            while (auto m = recv_message("control")) {
                const ipc* c = m->peek<ipc>();
                bool end = c && c->ends();
                log->controls.push_back(std::move(*m));
                if (end) {
                    log->ended = true;
                    send_forced(message(producer_finished()), "signal");
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};

// ENVELOPE behind the real framer, in front of a fake RELAY, on a fake socket.
struct envelope_rig {
    test::fixture f;
    test::fake_engine* eng = test::start_fake_greylist(f);
    std::shared_ptr<proxy_context> ctx = std::make_shared<proxy_context>();
    std::vector<std::string> log;
    std::shared_ptr<relay_log> relay_seen = std::make_shared<relay_log>();
    std::unique_ptr<test::embedded_connection> c;

    envelope_rig() {
        ctx->cfg.server_name = "mx.test";
        ctx->cfg.allowed_domains = {"example.org"};
        ctx->cfg.stop_grace = std::chrono::seconds(30);
        ctx->log_line = [this](const std::string& s) { log.push_back(s); };
        ctx->wall_clock = [] { return std::time_t(0); };
        connection_info ci;
        ci.peer = "192.0.2.10";
        ci.peer_port = 40000;
        c = std::make_unique<test::embedded_connection>(f, protocol(ctx, ci, std::make_unique<fake_relay>(relay_seen)));
        c->read();
    }
    component& envelope_stage() { return *static_cast<graphline&>(*c->handler).child("ENVELOPE"); }
    void relay_says(relay_reply r) {
        deliver(envelope_stage(), "relay_in", message(std::move(r)));
        f.settle();
    }
    static relay_reply final(std::string wire, outcome o) {
        relay_reply r;
        r.wire = std::move(wire);
        r.ended = o;
        r.detail = "upstream: " + r.wire.substr(0, r.wire.size() - 2);
        return r;
    }
    static relay_reply go() {
        relay_reply r;
        r.go = true;
        return r;
    }
};

// A hand-driven upstream MTA for RELAY: records what it is written, says
// what the test scripts, in order.
struct mta_script {
    std::string got;
    int writes = 0; // the relay's sends, one a write to the socket
    int connections = 0;
    int closes = 0;
    component* live = nullptr;
};

struct hand_mta : component {
    std::shared_ptr<mta_script> s;
    explicit hand_mta(std::shared_ptr<mta_script> st) : s(std::move(st)) {
        declare_inbox("script", "what the test makes it say");
        ++s->connections;
        s->live = this;
    }
    ~hand_mta() override {
        s->live = nullptr;
        teardown_now();
    }
    task main() override {
        for (;;) {
            while (auto b = recv<std::string>()) {
                s->got += *b;
                ++s->writes;
            }
            while (auto b = recv<std::string>("script")) co_await send(std::move(*b));
            while (auto c = recv<ipc>("control")) {
                if (c->ends()) {
                    ++s->closes;
                    send_forced(message(socket_shutdown("closed")), "signal");
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};

// RELAY alone: transaction and body in, relay_reply out, a hand-driven upstream.
struct relay_rig {
    test::fixture f;
    std::shared_ptr<proxy_context> ctx = std::make_shared<proxy_context>();
    std::shared_ptr<mta_script> mta = std::make_shared<mta_script>();
    relay rl{ctx, 1};
    test::collector envelope_side; // stands where ENVELOPE's "relay_in" would

    relay_rig() {
        ctx->cfg.server_name = "mx.test";
        ctx->wall_clock = [] { return std::time_t(0); };
        ctx->make_upstream = [this] { return std::make_unique<hand_mta>(mta); };
        component::link({rl, "outbox"}, {envelope_side, "inbox"});
        component::link({rl, "signal"}, {envelope_side, "control"});
        f.activate(rl);
        f.activate(envelope_side);
        f.settle();
    }
    void to_relay(message m, box_name box = "inbox") {
        deliver(rl, box, std::move(m));
        f.settle();
    }
    // The upstream says `text`; returns what the relay wrote to it since the last call.
    std::string upstream_says(std::string text) {
        REQUIRE(mta->live);
        deliver(*mta->live, "script", message(std::move(text)));
        f.settle();
        return std::exchange(mta->got, std::string());
    }
    std::vector<relay_reply> replies() const { return envelope_side.values<relay_reply>(); }
    static transaction txn() {
        transaction t;
        t.id = "1.0";
        t.helo = "c.test";
        t.esmtp = true;
        t.client = "192.0.2.10";
        t.client_port = 40000;
        t.sender = "a@s.test";
        t.recipients = {"u@example.org"};
        return t;
    }
    // Through greeting, EHLO (no PIPELINING), MAIL and RCPT to the upstream's answer to DATA.
    void reach_upstream_data() {
        to_relay(message(txn()));
        CHECK(upstream_says("220 up.test ESMTP\r\n") == "EHLO mx.test\r\n");
        CHECK(upstream_says("250 up.test\r\n") == "MAIL FROM:<a@s.test>\r\n");
        CHECK(upstream_says("250 2.1.0 Ok\r\n") == "RCPT TO:<u@example.org>\r\n");
        CHECK(upstream_says("250 2.1.5 Ok\r\n") == "DATA\r\n");
    }
};

} // namespace

TEST_CASE("smtp ENVELOPE stage: replies keep the commands' order behind a late greylist answer and a waiting RELAY",
          "[smtp]") {
    envelope_rig r;
    r.c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n"
               "Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\n");
    CHECK(r.c->read().empty());       // the batch's replies wait for the greylist's answer
    CHECK(r.relay_seen->got.empty()); // nothing overtakes the pending RCPT
    REQUIRE(r.eng->waiting.size() == 1);

    r.eng->answer(verdict::pass);
    r.f.settle();
    auto out = r.c->read(); // said before ENVELOPE waits on RELAY
    CHECK(out.find("250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n") != std::string::npos);
    CHECK(out.find("354") == std::string::npos);
    REQUIRE(r.relay_seen->got.size() == 1);
    const transaction* t = r.relay_seen->got[0].peek<transaction>();
    REQUIRE(t);
    CHECK(t->helo == "c.test");
    CHECK(t->esmtp);
    CHECK(t->client == "192.0.2.10");
    CHECK(t->client_port == 40000);
    CHECK(t->sender == "a@s.test");
    CHECK(t->recipients == std::vector<std::string>{"u@example.org"});
    CHECK(t->id == "1.1"); // session 1, its second transaction (EHLO ended the first, empty one)

    r.relay_says(envelope_rig::go());
    CHECK(r.c->read() == "354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK(r.relay_seen->body() == "Subject: x\r\n\r\nbody\r\n.\r\n"); // still dot-stuffed, ended by the dot
    CHECK(r.relay_seen->count<body_end>() == 1);
    CHECK(r.c->read().empty()); // NOOP waits for the upstream's reply to the dot

    r.relay_says(envelope_rig::final("250 2.0.0 Ok: queued as 4XYZ\r\n", outcome::accepted));
    CHECK(r.c->read() == "250 2.0.0 Ok: queued as 4XYZ\r\n250 2.0.0 Ok\r\n");
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| <a@s.test> | <u@example.org> | ACCEPTED | upstream: 250 2.0.0 Ok: queued as 4XYZ") !=
          std::string::npos);
    CHECK(r.ctx->delivered == 1);

    r.c->write("QUIT\r\n");
    CHECK(r.c->read() == "221 2.0.0 Bye\r\n");
    CHECK(r.c->sock.closed);
    CHECK(r.relay_seen->ended); // RELAY was told to end (it QUITs the upstream)
}

TEST_CASE("smtp ENVELOPE stage: RELAY's refusal is the client's answer, no 354 without RELAY's go", "[smtp]") {
    envelope_rig r;
    r.eng->rule = [](const greylist::request&) { return greylist::decision{verdict::pass, {}, {}, "passed"}; };
    r.c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nRSET\r\n");
    auto out = r.c->read();
    CHECK(out.find("250 2.1.5 Ok\r\n") != std::string::npos);
    CHECK(out.find("354") == std::string::npos);
    r.relay_says(envelope_rig::final("554 5.0.0 Upstream refused: 550 5.1.1 no such user\r\n", outcome::rejected));
    CHECK(r.c->read() == "554 5.0.0 Upstream refused: 550 5.1.1 no such user\r\n250 2.0.0 Ok\r\n");
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| REJECTED | upstream: 554 5.0.0 Upstream refused") != std::string::npos);
    CHECK(r.relay_seen->count<body_abort>() == 0); // nothing was sent after the refusal
}

TEST_CASE("smtp ENVELOPE stage: a smuggled line aborts the message at RELAY, the refusal is ours at the dot",
          "[smtp][hostile]") {
    envelope_rig r;
    r.eng->rule = [](const greylist::request&) { return greylist::decision{verdict::pass, {}, {}, "passed"}; };
    r.c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    r.relay_says(envelope_rig::go());
    r.c->read();
    r.c->write("ok line\r\nevil\n.\r\nmore\r\n.\r\n");
    CHECK(r.relay_seen->count<body_abort>() == 1);
    CHECK(r.relay_seen->count<body_end>() == 0); // the smuggled dot did not end it, the real one is ours
    CHECK(r.relay_seen->body().find("evil") == std::string::npos);
    CHECK(r.c->read() == "554 5.6.11 Error: bare CR or LF in message (SMTP smuggling protection)\r\n");
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| REJECTED | 5.6.11") != std::string::npos);
}

TEST_CASE("smtp ENVELOPE stage: a stop passes its deadline to RELAY, past it mid-DATA the message is aborted, 421",
          "[smtp]") {
    envelope_rig r;
    r.eng->rule = [](const greylist::request&) { return greylist::decision{verdict::pass, {}, {}, "passed"}; };
    r.c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    r.relay_says(envelope_rig::go());
    r.c->read();
    r.c->write("part one\r\n");
    time_point stopped_at = r.f.sched.now();
    deliver(*r.c->handler, "control", message(shutdown_microprocess("server stopping")));
    r.f.settle();
    REQUIRE(r.relay_seen->controls.size() == 1);
    const relay_stop* s = r.relay_seen->controls[0].peek<relay_stop>();
    REQUIRE(s);
    CHECK(s->at == stopped_at + std::chrono::seconds(30));
    r.f.advance(std::chrono::seconds(29));
    CHECK(r.c->read().empty());
    CHECK(r.relay_seen->count<body_abort>() == 0);
    r.f.advance(std::chrono::seconds(2));
    CHECK(r.relay_seen->count<body_abort>() == 1);
    CHECK(r.c->read().rfind("421 4.3.2 mx.test Service shutting down", 0) == 0);
    CHECK(r.c->sock.closed);
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| FAILED | server stopping during DATA") != std::string::npos);
}

TEST_CASE("smtp RELAY stage: go only after the upstream's 354, the final reply is the upstream's", "[smtp]") {
    relay_rig r;
    r.reach_upstream_data();
    CHECK(r.replies().empty()); // no go before the upstream's 354
    // Our trace headers wait for the client's first body bytes and go out
    // with them: one write (one wake-up of the upstream) less a message.
    CHECK(r.upstream_says("354 go ahead\r\n").empty());
    REQUIRE(r.replies().size() == 1);
    CHECK(r.replies()[0].go);
    int writes = r.mta->writes;
    r.to_relay(message(body_bytes{"Subject: x\r\n\r\n..stuffed\r\n"}));
    CHECK(r.mta->writes == writes + 1);
    CHECK(r.mta->got.rfind("Received: from c.test ([192.0.2.10])", 0) == 0);
    r.to_relay(message(body_end{".\r\n"}));
    CHECK(r.mta->writes == writes + 2);
    auto body = r.mta->got.find("Subject: x");
    REQUIRE(body != std::string::npos);
    CHECK(r.mta->got.substr(body) == "Subject: x\r\n\r\n..stuffed\r\n.\r\n"); // unchanged
    CHECK(r.replies().size() == 1);                                           // waits for the upstream
    r.upstream_says("250 2.0.0 Ok: queued as 7\r\n");
    REQUIRE(r.replies().size() == 2);
    auto last = r.replies()[1];
    CHECK(last.wire == "250 2.0.0 Ok: queued as 7\r\n");
    CHECK(last.ended == outcome::accepted);
    // The connection is kept for the next message; the end QUITs it.
    CHECK(r.mta->closes == 0);
    r.to_relay(message(producer_finished()), "control");
    CHECK(r.mta->got == "QUIT\r\n");
    CHECK(r.mta->closes == 1); // QUIT flushed, then the connection closed
    CHECK(r.rl.finished());
    CHECK(r.envelope_side.controls.size() == 1);
}

TEST_CASE("smtp RELAY stage: the upstream's 4xx and 5xx reach the client as refusals, never a go", "[smtp]") {
    relay_rig r;
    SECTION("a recipient refused: 554, RSET upstream, rejected") {
        r.to_relay(message(relay_rig::txn()));
        r.upstream_says("220 up.test ESMTP\r\n");
        r.upstream_says("250 up.test\r\n");
        r.upstream_says("250 2.1.0 Ok\r\n");
        CHECK(r.upstream_says("550 5.1.1 no such user\r\n") == "RSET\r\n");
        r.upstream_says("250 2.0.0 Ok\r\n");
        REQUIRE(r.replies().size() == 1);
        auto a = r.replies()[0];
        CHECK_FALSE(a.go);
        CHECK(a.wire == "554 5.0.0 Upstream refused: 550 5.1.1 no such user\r\n");
        CHECK(a.ended == outcome::rejected);
    }
    SECTION("DATA deferred: 451, failed") {
        r.reach_upstream_data();
        r.upstream_says("451 4.3.0 try later\r\n");
        REQUIRE(r.replies().size() == 1);
        CHECK(r.replies()[0].wire == "451 4.3.0 Upstream refused: 451 4.3.0 try later\r\n");
        CHECK(r.replies()[0].ended == outcome::failed);
    }
    SECTION("the final dot refused: the upstream's own reply") {
        r.reach_upstream_data();
        r.upstream_says("354 go ahead\r\n");
        r.to_relay(message(body_end{"x\r\n.\r\n"}));
        // A body that is all in its last piece: the trace headers go with it.
        CHECK(r.mta->got.rfind("Received: from c.test", 0) == 0);
        CHECK(r.mta->got.size() > 6);
        CHECK(r.mta->got.compare(r.mta->got.size() - 6, 6, "x\r\n.\r\n") == 0);
        CHECK(r.mta->writes >= 1);
        r.upstream_says("552 5.3.4 message too big\r\n");
        REQUIRE(r.replies().size() == 2);
        CHECK(r.replies()[1].wire == "552 5.3.4 message too big\r\n");
        CHECK(r.replies()[1].ended == outcome::rejected);
    }
}

TEST_CASE("smtp RELAY stage: an upstream that does not answer gives 451 4.4.1 after its timeout (manual clock)",
          "[smtp]") {
    relay_rig r;
    r.ctx->cfg.upstream_timeout = std::chrono::seconds(120);
    r.ctx->cfg.upstream_reply_timeout = std::chrono::seconds(600);
    SECTION("in the envelope") {
        r.reach_upstream_data(); // DATA said, no answer
        r.f.advance(std::chrono::seconds(119));
        CHECK(r.replies().empty());
        r.f.advance(std::chrono::seconds(2));
        REQUIRE(r.replies().size() == 1);
        CHECK(r.replies()[0].wire == "451 4.4.1 Upstream did not answer in time, please try again later\r\n");
        CHECK(r.replies()[0].ended == outcome::failed);
        CHECK(r.replies()[0].detail.rfind("upstream timeout:", 0) == 0);
        CHECK(r.mta->live == nullptr); // the connection is dropped
        CHECK(r.ctx->health.failures() == 1);
    }
    SECTION("after the final dot") {
        r.reach_upstream_data();
        r.upstream_says("354 go ahead\r\n");
        r.to_relay(message(body_end{"x\r\n.\r\n"}));
        r.f.advance(std::chrono::seconds(599));
        CHECK(r.replies().size() == 1);
        r.f.advance(std::chrono::seconds(2));
        REQUIRE(r.replies().size() == 2);
        CHECK(r.replies()[1].wire ==
              "451 4.4.1 Upstream did not answer in time, message not delivered; please try again later\r\n");
        CHECK(r.mta->live == nullptr);
    }
}

TEST_CASE("smtp RELAY stage: a stop mid-DATA lets the message finish within its deadline, else cuts it", "[smtp]") {
    relay_rig r;
    r.reach_upstream_data();
    r.upstream_says("354 go ahead\r\n");
    r.to_relay(message(relay_stop{r.f.sched.now() + std::chrono::seconds(30)}), "control");
    r.to_relay(message(body_bytes{"part one\r\n"}));
    r.f.advance(std::chrono::seconds(10));
    r.to_relay(message(body_end{"part two\r\n.\r\n"}));
    SECTION("the upstream answers in time: its reply, the message delivered") {
        r.f.advance(std::chrono::seconds(10));
        r.upstream_says("250 2.0.0 Ok: queued as 8\r\n");
        REQUIRE(r.replies().size() == 2);
        CHECK_FALSE(r.replies()[1].stopped);
        CHECK(r.replies()[1].ended == outcome::accepted);
    }
    SECTION("it does not: stopped, the connection dropped without a reply to the dot") {
        r.f.advance(std::chrono::seconds(19));
        CHECK(r.replies().size() == 1);
        r.f.advance(std::chrono::seconds(2));
        REQUIRE(r.replies().size() == 2);
        CHECK(r.replies()[1].stopped);
        CHECK(r.mta->live == nullptr);
    }
}

TEST_CASE("smtp RELAY stage: body_abort drops the upstream mid-DATA, the next transaction opens a new one",
          "[smtp][hostile]") {
    relay_rig r;
    r.reach_upstream_data();
    r.upstream_says("354 go ahead\r\n");
    r.to_relay(message(body_bytes{"half a message\r\n"}));
    r.to_relay(message(body_abort{"message refused"}));
    CHECK(r.mta->live == nullptr); // closed mid-DATA: the upstream discards it
    CHECK(r.mta->got.find("\r\n.\r\n") == std::string::npos);
    CHECK(r.replies().size() == 1); // no answer to an abort
    r.to_relay(message(relay_rig::txn()));
    CHECK(r.mta->connections == 2);
}

TEST_CASE("smtp RELAY stage: a message aborted before its first body bytes leaves no trace headers behind",
          "[smtp][hostile]") {
    relay_rig r;
    r.reach_upstream_data();
    r.upstream_says("354 go ahead\r\n");
    CHECK(r.mta->got.empty()); // the headers wait for the body
    r.to_relay(message(body_abort{"message refused"}));
    CHECK(r.mta->live == nullptr);
    CHECK(r.mta->got.empty()); // nothing of the aborted message was written
    // The next message on a new upstream carries exactly one Received header.
    r.reach_upstream_data();
    r.upstream_says("354 go ahead\r\n");
    r.to_relay(message(body_end{"y\r\n.\r\n"}));
    const std::string& got = r.mta->got;
    auto first = got.find("Received: from c.test");
    REQUIRE(first != std::string::npos);
    CHECK(got.find("Received: from c.test", first + 1) == std::string::npos);
}

TEST_CASE("smtp ENVELOPE stage: a RELAY that ends while a client waits on it is a 4xx, never a hang", "[smtp]") {
    envelope_rig r;
    r.eng->rule = [](const greylist::request&) { return greylist::decision{verdict::pass, {}, {}, "passed"}; };
    r.c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    r.c->read();
    deliver(r.envelope_stage(), "relay_in", message(producer_finished("relay gone")));
    r.f.settle();
    CHECK(r.c->read() == "451 4.4.2 Upstream connection lost, please try again later\r\n");
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| FAILED | upstream lost: relay ended") != std::string::npos);
    // The session goes on; a later DATA is refused at once instead of waiting.
    r.c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nQUIT\r\n");
    CHECK(r.c->read() == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n451 4.4.2 Upstream connection lost, please try again "
                         "later\r\n221 2.0.0 Bye\r\n");
    CHECK(r.c->sock.closed);
}
