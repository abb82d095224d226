// The proxy's SMTP session with a fake greylist service, an in-process
// upstream MTA and the manual clock.
#include "embedded.hpp"
#include "smtp_fakes.hpp"

#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/smtp/protocol.hpp>

#include <asio/ssl/context.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::smtp;
using kamaelia::greylist::verdict;

namespace {

struct rig {
    test::fixture f;
    test::fake_engine* eng = test::start_fake_greylist(f);
    std::shared_ptr<test::mta_log> mta = std::make_shared<test::mta_log>();
    std::shared_ptr<proxy_context> ctx = std::make_shared<proxy_context>();
    std::function<void(test::fake_mta&)> tweak;
    int upstreams = 0;
    std::vector<std::string> log;

    rig() {
        ctx->cfg.server_name = "mx.test";
        ctx->cfg.allowed_domains = {"example.org"};
        ctx->make_upstream = [this] {
            ++upstreams;
            auto m = std::make_unique<test::fake_mta>(mta);
            if (tweak) tweak(*m);
            return m;
        };
        ctx->log_line = [this](const std::string& s) { log.push_back(s); };
        ctx->wall_clock = [] { return std::time_t(0); };
    }
    std::unique_ptr<test::embedded_connection> connect(std::string ip = "192.0.2.10") {
        connection_info ci;
        ci.peer = std::move(ip);
        ci.peer_port = 40000;
        return std::make_unique<test::embedded_connection>(f, protocol(ctx, ci));
    }
    void pass_all() {
        eng->rule = [](const greylist::request&) {
            greylist::decision d{verdict::pass, {}, std::chrono::seconds(400), "passed"};
            d.first_pass = true;
            return d;
        };
    }
};

bool starts(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Past the greeting, through one recipient's envelope, to the upstream's 354.
void reach_data(test::embedded_connection& c) {
    c.read();
    c.write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c.read().find("354 ") != std::string::npos);
}

} // namespace

TEST_CASE("smtp session: greeting, EHLO, the simple verbs, QUIT", "[smtp]") {
    rig r;
    auto c = r.connect();
    CHECK(starts(c->read(), "220 mx.test ESMTP Kamaelia-Grey"));
    c->write("ehlo client.test\r\n");
    auto e = c->read();
    CHECK(starts(e, "250-mx.test\r\n"));
    CHECK(e.find("250-PIPELINING\r\n") != std::string::npos);
    CHECK(e.find("SIZE 10240000") != std::string::npos);
    CHECK(e.find("8BITMIME") != std::string::npos);
    CHECK(e.find("250 ENHANCEDSTATUSCODES\r\n") != std::string::npos);
    CHECK(e.find("STARTTLS") == std::string::npos); // no certificate, no TLS in this build
    c->write("HELO client.test\r\n");
    CHECK(c->read() == "250 mx.test\r\n");
    c->write("NOOP\r\nRSET\r\nVRFY root\r\nEXPN staff\r\nHELP\r\nSTARTTLS\r\n");
    auto v = c->read();
    CHECK(v == "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n252 2.0.0 Cannot VRFY user, but will accept message and attempt "
               "delivery\r\n502 5.5.1 Error: EXPN not available\r\n214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA "
               "RSET NOOP VRFY HELP QUIT\r\n502 5.5.1 Error: command not implemented\r\n");
    c->write("QUIT\r\n");
    CHECK(c->read() == "221 2.0.0 Bye\r\n");
    CHECK(c->sock.closed);
    REQUIRE(r.log.size() == 1); // a session without mail still gets its line
    CHECK(r.log[0].find(" | client.test | 192.0.2.10 | None |  | NO MAIL | ") != std::string::npos);
}

TEST_CASE("smtp session: order of commands is enforced, the session stays open", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    c->write("MAIL FROM:<a@sender.test>\r\n");
    CHECK(starts(c->read(), "503 5.5.1"));
    c->write("EHLO c.test\r\n");
    c->read();
    c->write("RCPT TO:<u@example.org>\r\n");
    CHECK(starts(c->read(), "503 5.5.1 Error: need MAIL"));
    c->write("DATA\r\n");
    CHECK(starts(c->read(), "503 5.5.1"));
    c->write("MAIL FROM:<>\r\nMAIL FROM:<b@x.test>\r\n");
    auto m = c->read();
    CHECK(starts(m, "250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL"));
    c->write("DATA\r\n");
    CHECK(starts(c->read(), "554 5.5.1 Error: no valid recipients"));
    c->write("XYZZY\r\n" + std::string(600, 'a') + "\r\n");
    auto u = c->read();
    CHECK(u == "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: line too long\r\n");
    c->write("MAIL FROM:<a@b.test> FOO=1\r\n");
    CHECK(starts(c->read(), "555 5.5.4"));
    CHECK_FALSE(c->sock.closed);
}

TEST_CASE("smtp session: repeated errors end the session with 421", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    std::string bad;
    for (int i = 0; i < 19; ++i) bad += "BOGUS\r\n";
    c->write(bad);
    auto out = c->read();
    CHECK(out.find("421") == std::string::npos); // 20 by default, as Postfix's smtpd_hard_error_limit
    CHECK_FALSE(c->sock.closed);
    c->write("BOGUS\r\n");
    out = c->read();
    CHECK(out.find("421 4.7.0 mx.test Error: too many errors\r\n") != std::string::npos);
    CHECK(c->sock.closed);
}

TEST_CASE("smtp session: recipient attempts are capped per session, deferred ones included", "[smtp][hostile]") {
    rig r;
    r.ctx->cfg.max_rcpt_attempts = 30;
    r.ctx->cfg.max_errors = 1000; // the attempt cap alone
    r.eng->rule = [](const greylist::request&) {
        return greylist::decision{verdict::greylisted, std::chrono::seconds(300), {}, "new"};
    };
    auto c = r.connect();
    c->read();
    // One pipelined write: every RCPT deferred, over several transactions.
    std::string cmds = "EHLO c.test\r\n";
    for (int m = 0; m < 5; ++m) {
        cmds += "MAIL FROM:<a" + std::to_string(m) + "@s.test>\r\n";
        for (int i = 0; i < 10; ++i) cmds += "RCPT TO:<u" + std::to_string(i) + "@example.org>\r\n";
        cmds += "RSET\r\n";
    }
    c->write(cmds);
    for (int i = 0; i < 200; ++i) r.f.settle();
    auto out = c->read();
    std::size_t deferred = 0, capped = 0, p = 0;
    while ((p = out.find("451 4.7.1", p)) != std::string::npos) ++deferred, ++p;
    p = 0;
    while ((p = out.find("452 4.5.3 Error: too many recipients", p)) != std::string::npos) ++capped, ++p;
    CHECK(deferred == 30);
    CHECK(capped == 20);
    CHECK(r.eng->asked.size() == 30); // the greylist never heard of the rest
}

TEST_CASE("smtp session: past the attempt cap each RCPT is an error, so a client that keeps trying gets 421",
          "[smtp][hostile]") {
    rig r;
    r.ctx->cfg.max_rcpt_attempts = 5;
    r.ctx->cfg.max_errors = 3;
    r.pass_all();
    auto c = r.connect();
    c->read();
    std::string cmds = "EHLO c.test\r\nMAIL FROM:<a@s.test>\r\n";
    for (int i = 0; i < 20; ++i) cmds += "RCPT TO:<u" + std::to_string(i) + "@example.org>\r\n";
    c->write(cmds);
    for (int i = 0; i < 200; ++i) r.f.settle();
    auto out = c->read();
    CHECK(out.find("421 4.7.0 mx.test Error: too many errors\r\n") != std::string::npos);
    CHECK(c->sock.closed);
    CHECK(r.eng->asked.size() == 5);
}

TEST_CASE("smtp session: greylisting at RCPT, per recipient, the session stays open", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    c->write("EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\n");
    c->read();
    c->write("RCPT TO:<u@Example.ORG>\r\n");
    CHECK(c->read().empty()); // the decision is pending
    REQUIRE(r.eng->asked.size() == 1);
    CHECK(r.eng->asked[0].client_address == "192.0.2.10");
    CHECK(r.eng->asked[0].sender == "a@sender.test");
    CHECK(r.eng->asked[0].recipient == "u@Example.ORG");
    CHECK(r.eng->asked[0].helo == "client.test");
    r.eng->answer(verdict::greylisted, 300);
    r.f.settle();
    CHECK(starts(c->read(),
                 "451 4.7.1 <u@Example.ORG>: Recipient address rejected: Greylisted, please try again in 300 seconds"));
    c->write("RCPT TO:<other@elsewhere.test>\r\n");
    CHECK(starts(c->read(), "550 5.7.1 <other@elsewhere.test>: Relay access denied"));
    CHECK(r.eng->asked.size() == 1); // never asked about a relay attempt
    c->write("RCPT TO:<postmaster>\r\n");
    CHECK(c->read() == "250 2.1.5 Ok\r\n");
    c->write("RSET\r\n");
    c->read();
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| client.test | 192.0.2.10 | <a@sender.test> | <u@Example.ORG>, <other@elsewhere.test>, "
                        "<postmaster> | ") != std::string::npos);
    CHECK(r.log[0].find("DEFERRED") != std::string::npos);
    c->write("QUIT\r\n");
    CHECK(c->read() == "221 2.0.0 Bye\r\n");
}

TEST_CASE("smtp session: pipelined commands are answered in order while a decision is pending", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\n");
    c->read();
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u1@example.org>\r\nRCPT TO:<u2@example.org>\r\nNOOP\r\n");
    CHECK(c->read().empty());
    r.eng->answer(verdict::pass);
    r.f.settle();
    CHECK(c->read().empty()); // the second decision is still pending: nothing may overtake it
    REQUIRE(r.eng->waiting.size() == 1);
    r.eng->answer(verdict::tempfail);
    r.f.settle();
    CHECK(c->read() == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n451 4.3.0 <u2@example.org>: Temporary failure, please try "
                       "again later\r\n250 2.0.0 Ok\r\n");
}

TEST_CASE("smtp session: a triplet in the pass memory is accepted without asking the greylist", "[smtp]") {
    rig r;
    greylist::pass_memory::options o;
    o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)); };
    r.ctx->memory = std::make_shared<greylist::pass_memory>(o);
    r.ctx->memory->remember(greylist::make_triplet("192.0.2.10", "a@s.test", "u@example.org"), "", 1'700'000'000,
                            1'700'000'000, 3600);
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<U@Example.org>\r\n");
    CHECK(c->read().find("250 2.1.5 Ok\r\n") != std::string::npos);
    CHECK(r.eng->asked.empty());
    CHECK(r.ctx->memory->hits() == 1);
    c->write("RCPT TO:<v@example.org>\r\n"); // another triplet: asked
    CHECK(c->read().empty());
    REQUIRE(r.eng->asked.size() == 1);
    CHECK(r.eng->asked[0].recipient == "v@example.org");
}

TEST_CASE("smtp session: allowed client networks relay anywhere without greylisting", "[smtp]") {
    rig r;
    r.ctx->cfg.allowed_sender_nets = {*network::parse("192.0.2")};
    auto c = r.connect("192.0.2.99");
    c->read();
    c->write("HELO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<x@anywhere.test>\r\n");
    CHECK(c->read() == "250 mx.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    CHECK(r.eng->asked.empty());
    auto d = r.connect("192.0.20.1"); // not a string prefix match
    d->read();
    d->write("HELO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<x@anywhere.test>\r\n");
    CHECK(d->read().find("550 5.7.1") != std::string::npos);
}

TEST_CASE("smtp session: more than 100 recipients get 452 4.5.3", "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    c->read();
    std::string cmds = "EHLO c.test\r\nMAIL FROM:<a@s.test>\r\n";
    for (int i = 0; i < 101; ++i) cmds += "RCPT TO:<u" + std::to_string(i) + "@example.org>\r\n";
    c->write(cmds);
    for (int i = 0; i < 200; ++i) r.f.settle();
    auto out = c->read();
    std::size_t ok = 0, p = 0;
    while ((p = out.find("250 2.1.5 Ok", p)) != std::string::npos) ++ok, ++p;
    CHECK(ok == 100);
    CHECK(out.find("452 4.5.3 Error: too many recipients\r\n") != std::string::npos);
}

TEST_CASE("smtp session: DATA is relayed before the reply, byte for byte", "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    c->read();
    c->write("EHLO client.test\r\nMAIL FROM:<a@sender.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<u@example.org>\r\n");
    c->read();
    c->write("DATA\r\n");
    CHECK(c->read() == "354 End data with <CR><LF>.<CR><LF>\r\n");
    REQUIRE(r.mta->commands.size() == 5);
    CHECK(r.mta->commands[0] == "EHLO mx.test");
    CHECK(r.mta->commands[1] == "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.10 PROTO=ESMTP HELO=client.test");
    CHECK(r.mta->commands[2] == "MAIL FROM:<a@sender.test> SIZE=100 BODY=8BITMIME");
    CHECK(r.mta->commands[3] == "RCPT TO:<u@example.org>");
    CHECK(r.mta->commands[4] == "DATA");
    const std::string body = "Subject: hi\r\n\r\n..a stuffed dot line\r\nbody\r\n";
    c->write(body.substr(0, 10));
    c->write(body.substr(10) + ".\r\n");
    CHECK(c->read() == "250 2.0.0 Ok: queued as 4XYZ\r\n"); // the upstream's own reply
    REQUIRE(r.mta->messages.size() == 1);
    const auto& got = r.mta->messages[0];
    CHECK(starts(got, "Received: from client.test ([192.0.2.10])\r\n\tby mx.test (Kamaelia Grey) with ESMTP id "));
    CHECK(got.find("X-Greylist: delayed 400 seconds by kamaelia-grey at mx.test;") != std::string::npos);
    REQUIRE(got.size() >= body.size());
    CHECK(got.substr(got.size() - body.size()) == body);
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("ACCEPTED") != std::string::npos);
    // A second message reuses the upstream connection.
    c->write("MAIL FROM:<>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c->read() == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    c->write("x\r\n.\r\n");
    CHECK(starts(c->read(), "250 2.0.0 Ok"));
    CHECK(r.mta->connections == 1);
    CHECK(r.upstreams == 1);
    c->write("QUIT\r\n");
    CHECK(c->read() == "221 2.0.0 Bye\r\n");
    CHECK(r.mta->quits == 1);
    CHECK(r.ctx->delivered == 2);
}

TEST_CASE("smtp session: the upstream's refusal reaches the client, nothing is acknowledged", "[smtp]") {
    rig r;
    r.pass_all();
    r.tweak = [](test::fake_mta& m) { m.final_reply = "554 5.7.1 Rejected by content filter\r\n"; };
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    c->read();
    c->write("hello\r\n.\r\n");
    CHECK(c->read() == "554 5.7.1 Rejected by content filter\r\n");

    rig r2;
    r2.pass_all();
    r2.tweak = [](test::fake_mta& m) { m.rcpt_reply = "450 4.1.1 mailbox busy\r\n"; };
    auto d = r2.connect();
    d->read();
    d->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    auto out = d->read();
    CHECK(out.find("451 4.3.0 Upstream refused: 450 4.1.1 mailbox busy\r\n") != std::string::npos);
    CHECK(r2.mta->messages.empty());
    CHECK(r2.mta->commands.back() == "RSET");
}

TEST_CASE("smtp session: upstream down gives 4xx, then back-off, then recovery", "[smtp]") {
    rig r;
    r.pass_all();
    r.tweak = [](test::fake_mta& m) { m.refuse = true; };
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    auto out = c->read();
    CHECK(out.find("451 4.4.1 Upstream mail server unavailable") != std::string::npos);
    CHECK(r.upstreams == 1);
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c->read().find("451 4.4.1") != std::string::npos);
    CHECK(r.upstreams == 1); // backing off: not even tried
    r.tweak = nullptr;
    r.f.advance(std::chrono::seconds(2));
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c->read().find("354 ") != std::string::npos);
    CHECK(r.upstreams == 2);
    c->write("ok\r\n.\r\n");
    CHECK(starts(c->read(), "250 2.0.0 Ok"));
    CHECK(r.ctx->health.failures() == 0);
}

TEST_CASE("smtp session: bare LF or CR in DATA refuses the message (SMTP smuggling)", "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    c->read();
    // "\n.\r\n" is not the end of the data; the real end comes later.
    c->write("one\r\ntwo\n.\r\nMAIL FROM:<evil@s.test>\r\n");
    CHECK(c->read().empty());
    c->write("\r\n.\r\n");
    CHECK(starts(c->read(), "554 5.6.11"));
    CHECK(r.mta->messages.empty()); // the upstream never got an end of data
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c->read().find("354 ") != std::string::npos);
    c->write("bare\rcr\r\n.\r\n");
    CHECK(starts(c->read(), "554 5.6.11"));
    CHECK(r.mta->messages.empty());
    CHECK(r.ctx->rejected == 2);
}

TEST_CASE("smtp session: the line limit in force is the session's: 512 for commands, 1000 in DATA", "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    c->read();
    // The framer frames up to the text limit; a command line of 600 octets is still too long.
    c->write("EHLO c.test\r\n" + std::string(598, 'n') + "\r\nMAIL FROM:<a@s.test>\r\n");
    CHECK(c->read().find("500 5.5.2 Error: line too long\r\n250 2.1.0 Ok\r\n") != std::string::npos);
    // DATA pipelined with its body: the body's long lines are framed as text lines.
    const std::string longest(999, 'x'); // with CRLF 1001 octets: the limit (1000 and a stuffed dot)
    c->write("RCPT TO:<u@example.org>\r\nDATA\r\n" + longest + "\r\n.\r\n");
    CHECK(c->read().find("250 2.0.0 Ok") != std::string::npos);
    REQUIRE(r.mta->messages.size() == 1);
    CHECK(r.mta->messages[0].find(longest + "\r\n") != std::string::npos);
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n" + longest + "x\r\n.\r\n");
    CHECK(c->read().find("500 5.5.2 Error: line too long (over 1000 octets)\r\n") != std::string::npos);
    CHECK(r.mta->messages.size() == 1);
}

TEST_CASE("smtp session: SIZE is enforced at MAIL and on the body", "[smtp]") {
    rig r;
    r.pass_all();
    r.ctx->cfg.max_message_size = 100;
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test> SIZE=101\r\n");
    CHECK(c->read().find("552 5.3.4") != std::string::npos);
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    c->read();
    c->write(std::string(60, 'x') + "\r\n" + std::string(60, 'y') + "\r\n.\r\n");
    CHECK(starts(c->read(), "552 5.3.4"));
    CHECK(r.mta->messages.empty());
}

TEST_CASE("smtp session: idle clients get 421 4.4.2 (manual clock)", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    r.f.advance(std::chrono::minutes(4));
    CHECK(c->read().empty());
    r.f.advance(std::chrono::minutes(2));
    CHECK(starts(c->read(), "421 4.4.2 mx.test"));
    CHECK(c->sock.closed);
}

TEST_CASE("smtp session: a client idle in DATA gets 421 4.4.2, the upstream gets no message and no QUIT inside it",
          "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    reach_data(*c);
    c->write("Subject: half\r\n");
    r.f.advance(std::chrono::minutes(6));
    CHECK(starts(c->read(), "421 4.4.2 mx.test"));
    CHECK(c->sock.closed);
    CHECK(r.mta->messages.empty());
    CHECK(r.mta->bytes.find("QUIT") == std::string::npos); // it would be body text there
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find(" | <a@s.test> | <u@example.org> | ABANDONED | timeout") != std::string::npos);
}

TEST_CASE("smtp session: shutdown says 421 4.3.2 to idle sessions, lets DATA finish", "[smtp]") {
    rig r;
    r.pass_all();
    auto idle = r.connect();
    idle->read();
    deliver(*idle->handler, "control", message(shutdown_microprocess("server stopping")));
    r.f.settle();
    CHECK(starts(idle->read(), "421 4.3.2 mx.test"));
    CHECK(idle->sock.closed);

    auto busy = r.connect();
    busy->read();
    busy->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    busy->read();
    busy->write("part one\r\n");
    deliver(*busy->handler, "control", message(shutdown_microprocess("server stopping")));
    r.f.settle();
    CHECK_FALSE(busy->sock.closed);
    busy->write("part two\r\n.\r\n");
    auto out = busy->read();
    CHECK(starts(out, "250 2.0.0 Ok: queued as 4XYZ\r\n421 4.3.2"));
    CHECK(busy->sock.closed);
    REQUIRE(r.mta->messages.size() == 1);
    CHECK(r.mta->quits == 1);
}

TEST_CASE("smtp session: an upstream that stalls after the final dot gives 451 4.4.1 after its own timeout, "
          "not the client's idle one (manual clock)",
          "[smtp]") {
    rig r;
    r.pass_all();
    r.ctx->cfg.idle_timeout = std::chrono::seconds(20);
    r.ctx->cfg.upstream_reply_timeout = std::chrono::seconds(600);
    r.tweak = [](test::fake_mta& m) { m.stall_at_dot = true; };
    auto c = r.connect();
    reach_data(*c);
    c->write("Subject: x\r\n\r\nbody\r\n.\r\n");
    // Well past the client's idle timeout (and the old idle + 30 s cut): it is waiting on us.
    r.f.advance(std::chrono::seconds(60));
    r.f.advance(std::chrono::seconds(300));
    r.f.advance(std::chrono::seconds(239));
    CHECK(c->read().empty());
    CHECK_FALSE(c->sock.closed);
    CHECK(r.log.empty());
    r.f.advance(std::chrono::seconds(2));
    CHECK(c->read() == "451 4.4.1 Upstream did not answer in time, message not delivered; please try again later\r\n");
    CHECK_FALSE(c->sock.closed);
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("| <a@s.test> | <u@example.org> | FAILED | upstream timeout:") != std::string::npos);
    CHECK(r.ctx->delivered == 0);
    // The client's idle timer starts again from the reply, not from its final dot.
    r.f.advance(std::chrono::seconds(10));
    CHECK(c->read().empty());
    c->write("QUIT\r\n");
    CHECK(c->read() == "221 2.0.0 Bye\r\n");
}

TEST_CASE("smtp session: an upstream that stalls in the envelope gives 451 4.4.1 after --upstream-timeout", "[smtp]") {
    rig r;
    r.pass_all();
    r.ctx->cfg.idle_timeout = std::chrono::seconds(20);
    r.ctx->cfg.upstream_timeout = std::chrono::seconds(120);
    r.tweak = [](test::fake_mta& m) { m.greeting.clear(); }; // connects, never says 220
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    r.f.advance(std::chrono::seconds(100));
    auto before = c->read();
    CHECK(before.find("451") == std::string::npos);
    CHECK_FALSE(c->sock.closed);
    r.f.advance(std::chrono::seconds(200)); // connect (30 s) + 120 s for the greeting
    auto out = c->read();
    CHECK(out.find("451 4.4.1 Upstream mail server unavailable") != std::string::npos);
    CHECK_FALSE(c->sock.closed);
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find("FAILED | upstream unavailable") != std::string::npos);
}

TEST_CASE("smtp session: a stop whose grace ends mid-DATA says 421 4.3.2 and logs the transaction", "[smtp]") {
    rig r;
    r.pass_all();
    r.ctx->cfg.stop_grace = std::chrono::seconds(30);
    SECTION("the client is still sending") {
        auto c = r.connect();
        c->read();
        c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
        CHECK(c->read().find("354 ") != std::string::npos);
        c->write("part one\r\n");
        deliver(*c->handler, "control", message(shutdown_microprocess("server stopping")));
        r.f.settle(); // the grace counts from here
        r.f.advance(std::chrono::seconds(20));
        c->write("part two\r\n");
        CHECK(c->read().empty());
        CHECK_FALSE(c->sock.closed);
        r.f.advance(std::chrono::seconds(11));
        CHECK(starts(c->read(), "421 4.3.2 mx.test Service shutting down"));
        CHECK(c->sock.closed);
        CHECK(r.mta->messages.empty());
        REQUIRE(r.log.size() == 1);
        CHECK(r.log[0].find("| FAILED | server stopping during DATA") != std::string::npos);
    }
    SECTION("the client waits on the upstream's reply to its final dot") {
        r.tweak = [](test::fake_mta& m) { m.stall_at_dot = true; };
        auto c = r.connect();
        c->read();
        c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
        CHECK(c->read().find("354 ") != std::string::npos);
        c->write("body\r\n.\r\n");
        r.f.settle();
        deliver(*c->handler, "control", message(shutdown_microprocess("server stopping")));
        r.f.advance(std::chrono::seconds(1));
        r.f.advance(std::chrono::seconds(20));
        CHECK(c->read().empty());
        r.f.advance(std::chrono::seconds(10));
        CHECK(starts(c->read(), "421 4.3.2 mx.test Service shutting down"));
        CHECK(c->sock.closed);
        REQUIRE(r.log.size() == 1);
        CHECK(r.log[0].find("| FAILED | server stopping during DATA") != std::string::npos);
        CHECK(r.ctx->delivered == 0);
    }
}

TEST_CASE("smtp session: a client that leaves during DATA delivers nothing", "[smtp]") {
    rig r;
    r.pass_all();
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\npartial\r\n");
    c->close_input();
    CHECK(r.mta->messages.empty());
    CHECK(c->handler->finished());
}

TEST_CASE("smtp session: a client that half-closes after its commands still gets every reply", "[smtp]") {
    rig r;
    auto c = r.connect();
    c->read();
    deliver(*c->handler, "inbox", message(std::string("EHLO c.test\r\nNOOP\r\nQUIT\r\n")));
    deliver(*c->handler, "control", message(producer_finished("peer closed")));
    r.f.settle();
    auto out = c->read();
    CHECK(out.find("250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n") != std::string::npos);
    CHECK(c->sock.closed);
}

TEST_CASE("smtp session: a recipient refused upstream aborts the whole upstream transaction", "[smtp]") {
    rig r;
    r.pass_all();
    r.tweak = [](test::fake_mta& m) { m.rcpt_replies = {"550 5.1.1 no such user\r\n", "250 2.1.5 Ok\r\n"}; };
    auto c = r.connect();
    c->read();
    // Pipelined upstream: DATA went with the envelope and got 354 (one
    // recipient was fine); without a final dot the upstream delivers nothing.
    c->write("EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<u1@example.org>\r\nRCPT TO:<u2@example.org>\r\nDATA\r\n");
    auto out = c->read();
    CHECK(out.find("554 5.0.0 Upstream refused: 550 5.1.1 no such user\r\n") != std::string::npos);
    CHECK(r.mta->messages.empty());
    CHECK(r.mta->commands.back() == "DATA"); // then the connection was dropped
    // Every recipient refused: DATA gets 554 upstream, the connection is kept (RSET).
    r.tweak = [](test::fake_mta& m) { m.rcpt_reply = "450 4.2.0 busy\r\n"; };
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u1@example.org>\r\nDATA\r\n");
    CHECK(c->read().find("451 4.3.0 Upstream refused: 450 4.2.0 busy\r\n") != std::string::npos);
    CHECK(r.mta->commands.back() == "RSET");
    CHECK(r.upstreams == 2);
    CHECK(r.mta->messages.empty());
}

TEST_CASE("smtp session: the upstream breaking during DATA is a 4xx, never a 250", "[smtp]") {
    rig r;
    r.pass_all();
    r.tweak = [](test::fake_mta& m) { m.die_in_data = true; };
    auto c = r.connect();
    reach_data(*c);
    c->write("Subject: x\r\n\r\nbody\r\n");
    c->write("more\r\n.\r\n");
    CHECK(starts(c->read(), "451 4.4.2 Upstream connection lost, message not delivered"));
    CHECK(r.mta->messages.empty());
    CHECK(r.ctx->delivered == 0);
    // The next message opens a new upstream connection.
    r.tweak = nullptr;
    c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    CHECK(c->read().find("354 ") != std::string::npos);
    c->write("ok\r\n.\r\n");
    CHECK(starts(c->read(), "250 2.0.0 Ok"));
    CHECK(r.upstreams == 2);
}

TEST_CASE("smtp session: an upstream that closes between messages is reopened", "[smtp]") {
    rig r;
    r.pass_all();
    r.tweak = [](test::fake_mta& m) { m.close_after_message = true; };
    auto c = r.connect();
    c->read();
    c->write("EHLO c.test\r\n");
    c->read();
    for (int i = 0; i < 3; ++i) {
        c->write("MAIL FROM:<a@s.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
        CHECK(c->read() == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
        c->write("hello\r\n.\r\n");
        CHECK(c->read() == "250 2.0.0 Ok: queued as 4XYZ\r\n");
    }
    CHECK(r.mta->messages.size() == 3);
    CHECK(r.upstreams == 3);
}

TEST_CASE("smtp session: an IPv4 client on a dual-stack listener is seen as IPv4", "[smtp]") {
    rig r;
    r.ctx->cfg.allowed_senders = {"192.0.2.7"};
    auto c = r.connect("::ffff:192.0.2.7");
    c->read();
    c->write("HELO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<x@anywhere.test>\r\n");
    CHECK(c->read() == "250 mx.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    c->write("QUIT\r\n");
    c->read();
    REQUIRE(r.log.size() == 1);
    CHECK(r.log[0].find(" | 192.0.2.7 | ") != std::string::npos);
}

namespace {
// A socket stand-in that also takes the start_tls message a STARTTLS sends.
struct tls_socket : component {
    std::string written;
    std::size_t upgraded_at = std::string::npos; // bytes written before start_tls
    bool closed = false;
    task main() override {
        for (;;) {
            while (auto m = recv_message("inbox")) {
                if (auto* s = m->peek<std::string>())
                    written += *s;
                else if (m->peek<kamaelia::start_tls>())
                    upgraded_at = written.size();
            }
            while (auto c = recv<ipc>("control")) {
                if (c->ends()) {
                    closed = true;
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};
} // namespace

TEST_CASE("smtp session: STARTTLS upgrades, drops clear text behind it, forgets the session", "[smtp]") {
    rig r;
    r.ctx->tls = std::make_shared<kamaelia::tls_context>(asio::ssl::context::tls_server);
    connection_info ci;
    ci.peer = "192.0.2.10";
    auto h = protocol(r.ctx, ci);
    tls_socket sock;
    component::link({*h, "outbox"}, {sock, "inbox"});
    component::link({*h, "signal"}, {sock, "control"});
    h->activate(r.f.sched);
    sock.activate(r.f.sched);
    auto write = [&](std::string b) {
        deliver(*h, "inbox", message(std::move(b)));
        r.f.settle();
    };
    r.f.settle();
    write("EHLO c.test\r\n");
    CHECK(sock.written.find("250 STARTTLS\r\n") != std::string::npos);
    write("MAIL FROM:<a@s.test>\r\nSTARTTLS\r\nRSET\r\n"); // RSET rides in clear behind STARTTLS
    REQUIRE(sock.upgraded_at != std::string::npos);
    deliver(*h, "inbox", message(kamaelia::tls_started{})); // what the adapter sends on taking start_tls
    r.f.settle();
    auto before = sock.written.substr(0, sock.upgraded_at);
    const std::string ready = "250 2.1.0 Ok\r\n220 2.0.0 Ready to start TLS\r\n";
    REQUIRE(before.size() >= ready.size());
    CHECK(before.substr(before.size() - ready.size()) == ready); // the 220 goes out in clear, before the switch
    CHECK(sock.written.size() == sock.upgraded_at);              // nothing answered the injected RSET
    write("MAIL FROM:<a@s.test>\r\n");
    CHECK(sock.written.substr(sock.upgraded_at) == "503 5.5.1 Error: send HELO/EHLO first\r\n");
    write("EHLO c.test\r\n");
    auto e = sock.written.substr(sock.upgraded_at);
    CHECK(e.find("STARTTLS") == std::string::npos); // not offered again
    write("STARTTLS\r\n");
    CHECK(sock.written.find("503 5.5.1 Error: TLS already active\r\n") != std::string::npos);
    h.reset();
    r.f.settle();
}
