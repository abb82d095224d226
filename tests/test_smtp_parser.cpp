// The pure SMTP pieces: command parser, line framing, reply reader, client
// networks, trace headers.
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/line_reader.hpp>
#include <kamaelia/smtp/network.hpp>
#include <kamaelia/smtp/reply.hpp>
#include <kamaelia/smtp/trace.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia::smtp;

TEST_CASE("smtp parser: verbs are case-insensitive", "[smtp]") {
    CHECK(parse_command("ehlo client.test").what == verb::ehlo);
    CHECK(parse_command("EhLo client.test").argument == "client.test");
    CHECK(parse_command("quit").what == verb::quit);
    CHECK(parse_command("NoOp anything at all").what == verb::noop);
    CHECK(parse_command("STARTTLS").what == verb::starttls);
    auto u = parse_command("XYZZY");
    CHECK(u.what == verb::unknown);
    CHECK(u.error.rfind("500 5.5.2", 0) == 0);
    CHECK(parse_command("").what == verb::empty);
    CHECK_FALSE(parse_command("   ").ok());
}

TEST_CASE("smtp parser: MAIL and RCPT paths", "[smtp]") {
    auto m = parse_command("MAIL FROM:<a@example.org> SIZE=1024 BODY=8BITMIME");
    REQUIRE(m.ok());
    CHECK(m.address == "a@example.org");
    CHECK(m.param("size") == "1024");
    CHECK(m.param("BODY") == "8BITMIME");
    CHECK_FALSE(m.param("SMTPUTF8"));

    auto spaced = parse_command("mail from: <b@example.org>");
    REQUIRE(spaced.ok());
    CHECK(spaced.address == "b@example.org");

    auto null = parse_command("MAIL FROM:<>");
    REQUIRE(null.ok());
    CHECK(null.address.empty());

    auto route = parse_command("RCPT TO:<@relay.test,@b.test:user@example.net>");
    REQUIRE(route.ok());
    CHECK(route.address == "user@example.net");

    auto quoted = parse_command("RCPT TO:<\"odd > name\"@example.net>");
    REQUIRE(quoted.ok());
    CHECK(quoted.address == "\"odd > name\"@example.net");

    auto pm = parse_command("RCPT TO:<Postmaster>");
    REQUIRE(pm.ok());
    CHECK(is_bare_postmaster(pm.address));
    CHECK_FALSE(is_bare_postmaster("postmaster@example.net"));
    CHECK(domain_of("User@Example.NET") == "example.net");
}

TEST_CASE("smtp parser: bad MAIL and RCPT", "[smtp]") {
    CHECK(parse_command("RCPT TO:<>").error.rfind("501 5.1.3", 0) == 0); // only senders may be null
    CHECK(parse_command("MAIL FROM:a@b").error.rfind("501", 0) == 0);    // brackets required
    CHECK(parse_command("MAIL <a@b>").error.rfind("501 5.5.4", 0) == 0);
    CHECK(parse_command("MAIL FROM:<a@b").error.rfind("501", 0) == 0);
    CHECK(parse_command("MAIL FROM:<a@b>junk").error.rfind("501", 0) == 0);
    CHECK(parse_command("RCPT TO:<@b>").error.rfind("501", 0) == 0);
    CHECK(parse_command("RCPT TO:<a@>").error.rfind("501", 0) == 0);
    CHECK(parse_command("RCPT TO:<a@bad_domain!>").error.rfind("501", 0) == 0);
    CHECK(parse_command("RCPT TO:<" + std::string(65, 'x') + "@example.net>").error.find("local part too long") !=
          std::string::npos);
    CHECK(parse_command("MAIL FROM:<a@b> =x").error.rfind("501", 0) == 0);
    CHECK(parse_command(std::string("MAIL FROM:<a\0b@c>", 18)).error.rfind("50", 0) == 0);
    CHECK(parse_command("HELO").error.rfind("501", 0) == 0);
    CHECK(parse_command("EHLO two words").error.rfind("501", 0) == 0);
    CHECK(parse_command("DATA now").error.rfind("501", 0) == 0);
    CHECK(parse_command("VRFY").error.rfind("501", 0) == 0);
}

TEST_CASE("smtp line_reader: pipelined, split and over-long lines", "[smtp]") {
    line_reader r(512);
    r.feed("EHLO a\r\nMAIL FROM:<x@y>\r\nRCP");
    auto a = r.next();
    REQUIRE(a);
    CHECK(a->text == "EHLO a");
    CHECK(a->crlf);
    auto b = r.next();
    REQUIRE(b);
    CHECK(b->text == "MAIL FROM:<x@y>");
    CHECK_FALSE(r.next());
    r.feed("T TO:<z@y>\n");
    auto c = r.next();
    REQUIRE(c);
    CHECK(c->text == "RCPT TO:<z@y>");
    CHECK_FALSE(c->crlf); // bare LF

    r.feed("a\rb\r\n");
    auto d = r.next();
    REQUIRE(d);
    CHECK(d->bare_cr);

    // 511 octets + CRLF = 513 > 512
    r.feed(std::string(511, 'x') + "\r\n" + std::string(510, 'y') + "\r\n");
    auto e = r.next();
    REQUIRE(e);
    CHECK(e->too_long);
    auto f = r.next();
    REQUIRE(f);
    CHECK_FALSE(f->too_long);
    CHECK(f->text.size() == 510);

    // The limit counts the line's own ending: with a bare LF, 511 octets fit
    // (512 on the wire) and 512 do not.
    r.feed(std::string(511, 'u') + "\n" + std::string(512, 'v') + "\n");
    auto e2 = r.next();
    REQUIRE(e2);
    CHECK_FALSE(e2->too_long);
    CHECK_FALSE(e2->crlf);
    CHECK(e2->text.size() == 511);
    auto f2 = r.next();
    REQUIRE(f2);
    CHECK(f2->too_long);

    // An endless line is dropped as it comes; memory stays bounded.
    for (int i = 0; i < 100; ++i) {
        r.feed(std::string(1000, 'z'));
        CHECK_FALSE(r.next());
        CHECK(r.buffered() <= 1512);
    }
    r.feed("\r\nNOOP\r\n");
    auto g = r.next();
    REQUIRE(g);
    CHECK(g->too_long);
    auto h = r.next();
    REQUIRE(h);
    CHECK(h->text == "NOOP");
}

TEST_CASE("smtp reply_reader: multi-line replies and EHLO extensions", "[smtp]") {
    reply_reader rr;
    rr.feed("220 up ESMTP\r\n250-up.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n");
    auto g = rr.next();
    REQUIRE(g);
    CHECK(g->code == 220);
    CHECK_FALSE(rr.next()); // the EHLO reply is not complete yet
    rr.feed("250 8BITMIME\r\n");
    auto e = rr.next();
    REQUIRE(e);
    CHECK(e->lines.size() == 5);
    auto x = parse_ehlo(*e);
    CHECK(x.pipelining);
    CHECK(x.size);
    CHECK(x.max_size == 1000);
    CHECK(x.eightbitmime);
    CHECK(x.xforward);
    CHECK(x.xforward_attrs == std::vector<std::string>{"NAME", "ADDR", "PROTO", "HELO"});
    CHECK_FALSE(x.starttls);
    CHECK(e->wire() ==
          "250-up.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250 8BITMIME\r\n");

    reply_reader bad;
    bad.feed("hello\r\n");
    CHECK_FALSE(bad.next());
    CHECK(bad.failed());
    reply_reader mixed;
    mixed.feed("250-a\r\n251 b\r\n");
    CHECK_FALSE(mixed.next());
    CHECK(mixed.failed());

    CHECK(format_reply(250, "a\nb") == "250-a\r\n250 b\r\n");
}

TEST_CASE("smtp network: CIDR, addresses and dotted prefixes", "[smtp]") {
    auto n = network::parse("192.168.2");
    REQUIRE(n);
    CHECK(n->to_string() == "192.168.2.0/24");
    CHECK(n->contains("192.168.2.77"));
    CHECK_FALSE(n->contains("192.168.20.1")); // the original's string prefix would match this
    CHECK_FALSE(n->contains("garbage"));
    auto c = network::parse("10.0.0.0/8");
    REQUIRE(c);
    CHECK(c->contains("10.200.3.4"));
    CHECK(c->contains("::ffff:10.1.2.3"));
    CHECK_FALSE(c->contains("11.0.0.1"));
    auto one = network::parse("127.0.0.1");
    REQUIRE(one);
    CHECK(one->contains("127.0.0.1"));
    CHECK_FALSE(one->contains("127.0.0.2"));
    auto v6 = network::parse("2001:db8::/32");
    REQUIRE(v6);
    CHECK(v6->contains("2001:db8:1::5"));
    CHECK_FALSE(v6->contains("2001:db9::1"));
    CHECK(network::parse("172.16.0.0/12")->contains("172.31.255.255"));
    CHECK_FALSE(network::parse("172.16.0.0/12")->contains("172.32.0.0"));
    CHECK_FALSE(network::parse("300.1"));
    CHECK_FALSE(network::parse("10.0.0.0/33"));
    CHECK_FALSE(network::parse("1.2.3.4.5"));
    CHECK_FALSE(network::parse(""));
    CHECK_FALSE(network::parse("example.org"));
}

TEST_CASE("smtp trace: Received header and xtext", "[smtp]") {
    trace_info t;
    t.helo = "client.test";
    t.client_ip = "192.0.2.1";
    t.by = "mx.example.org";
    t.id = "1.0";
    t.recipient = "u@example.org";
    t.when = 0;
    CHECK(received_header(t) == "Received: from client.test ([192.0.2.1])\r\n\tby mx.example.org (Kamaelia Grey) with "
                                "ESMTP id 1.0\r\n\tfor <u@example.org>; Thu, 01 Jan 1970 00:00:00 +0000\r\n");
    t.helo = "evil\r\nX-Injected: 1";
    CHECK(received_header(t).find("\r\nX-Injected") == std::string::npos);
    CHECK(xtext("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(log_stamp(0, 5) == "19700101000000.005");
}
