// The SMTP session's stages on their own, without sockets or a scheduler:
// the envelope (commands and rules in, replies and log lines out), the DATA
// stage (client lines in, upstream bytes out) and the envelope replayed upstream.
#include <kamaelia/smtp/envelope.hpp>
#include <kamaelia/smtp/message_body.hpp>

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
    CHECK(e.body_8bit());
    CHECK(e.declared_size() == std::uint64_t(10));
    a = e.mail(cmd("MAIL FROM:<x@b.test>"));
    CHECK(a.code == 503);
    CHECK(a.text == "5.5.1 Error: nested MAIL command");
    CHECK(e.sender() == "a@b.test");

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
    auto u = relay_commands(e, bare, 40000);
    CHECK_FALSE(u.xforward);
    CHECK(u.commands == std::vector<std::string>{"MAIL FROM:<a@b.test>\r\n", "RCPT TO:<u@example.org>\r\n",
                                                 "RCPT TO:<postmaster>\r\n"});
    extensions full;
    full.size = full.eightbitmime = full.xforward = true;
    full.xforward_attrs = {"NAME", "ADDR", "PORT", "PROTO", "HELO"};
    u = relay_commands(e, full, 40000);
    REQUIRE(u.xforward);
    CHECK(u.commands[0] == "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=40000 PROTO=ESMTP HELO=c.test\r\n");
    CHECK(u.commands[1] == "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME\r\n");
}

TEST_CASE("smtp DATA stage: the body goes upstream unchanged behind the headers, ended by the final dot", "[smtp]") {
    message_body b(1000);
    CHECK_FALSE(b.active());
    b.start("Received: x\r\n");
    CHECK(b.active());
    CHECK_FALSE(b.take(text("Subject: hi")));
    CHECK_FALSE(b.take(text("")));
    CHECK_FALSE(b.is_end(text("..")));
    CHECK_FALSE(b.take(text(".."))); // still dot-stuffed: the upstream unstuffs
    CHECK(b.is_end(text(".")));
    CHECK_FALSE(b.is_end(text(".", false))); // a bare LF dot is not the end
    b.finish();
    CHECK(b.take_pending() == "Received: x\r\nSubject: hi\r\n\r\n..\r\n.\r\n");
    CHECK(b.pending() == 0);
    b.reset();
    CHECK_FALSE(b.active());
}

TEST_CASE("smtp DATA stage: bare LF or CR, long lines and size refuse the message once", "[smtp][hostile]") {
    SECTION("bare LF, and the dot after it does not end the message") {
        message_body b(1000);
        b.start("");
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
        b.start("");
        CHECK(b.take(text("a\rb", true, true)));
        CHECK(b.refusal_code() == 554);
    }
    SECTION("a line over the limit") {
        message_body b(1000);
        b.start("");
        line_reader::line l;
        l.too_long = true;
        CHECK(b.take(l));
        CHECK(b.refusal_code() == 500);
        CHECK(b.is_end(text("."))); // its ending is unknown: the client's dot still ends it
    }
    SECTION("the size limit counts the body, not our headers") {
        message_body b(10);
        b.start(std::string(100, 'h'));
        CHECK_FALSE(b.take(text("12345678"))); // 10 with CRLF
        CHECK(b.take(text("")));
        CHECK(b.refusal_code() == 552);
    }
}
