// The Postfix policy protocol: the pure parser, the request-to-query rules,
// reply texts, the per-connection conversation, and the component on an
// embedded connection with a scripted greylist.
#include "embedded.hpp"

#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/greylist/policy.hpp>
#include <kamaelia/greylist/policy_request.hpp>

#include <kamaelia/core/service.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <deque>
#include <memory>

using namespace kamaelia;
using namespace kamaelia::greylist;

namespace {

const std::string rcpt_request = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                                 "client_address=203.0.114.7\nclient_name=unknown\nhelo_name=mx.example.org\n"
                                 "sender=a@example.org\nrecipient=u@example.net\ninstance=123.4.5\n\n";

decision make(verdict v, int wait = 0, int delayed = 0, bool first = false) {
    decision d;
    d.what = v;
    d.wait = std::chrono::seconds(wait);
    d.delayed = std::chrono::seconds(delayed);
    d.first_pass = first;
    d.reason = "test";
    return d;
}

// Answers from a script, through the scheduler like the real engine.
// A greylist service answering from a script (tempfail once it runs out).
struct scripted_engine : component {
    std::deque<decision> script;
    std::vector<greylist::request> asked;
    task main() override {
        while (!shutdown_requested()) {
            while (auto r = recv<kamaelia::request<check>>()) {
                asked.push_back(r->body.r);
                decision d = script.empty() ? make(verdict::tempfail) : script.front();
                if (!script.empty()) script.pop_front();
                r->reply(d);
            }
            co_await wait_any();
        }
    }
};

scripted_engine* start_scripted(test::fixture& f) {
    auto& e = f.spawn<scripted_engine>();
    f.sched.services().register_service(service_name, e, "inbox");
    return &e;
}

} // namespace

TEST_CASE("policy parser: a complete request", "[policy]") {
    auto r = parse_policy_request(rcpt_request + "request=smtpd_access_policy\n");
    REQUIRE(r.status == policy_parse::complete);
    CHECK(r.consumed == rcpt_request.size());
    CHECK(*r.request.get("client_address") == "203.0.114.7");
    CHECK(*r.request.get("sender") == "a@example.org");
    CHECK(r.request.get("nope") == nullptr);
}

TEST_CASE("policy parser: incomplete, CRLF, duplicates, empty values, '=' in values", "[policy]") {
    CHECK(parse_policy_request("request=smtpd_access_policy\nsender=a@b").status == policy_parse::incomplete);
    CHECK(parse_policy_request("").status == policy_parse::incomplete);
    auto r = parse_policy_request("sender=\r\nsender=second\r\nccert_subject=CN=x=y\r\n\r\n");
    REQUIRE(r.status == policy_parse::complete);
    CHECK(r.request.get("sender")->empty()); // the first value wins
    CHECK(*r.request.get("ccert_subject") == "CN=x=y");
    auto e = parse_policy_request("\n");
    CHECK(e.status == policy_parse::complete);
    CHECK(e.request.attributes.empty());
}

TEST_CASE("policy parser: bad input", "[policy]") {
    CHECK(parse_policy_request("no equals sign\n\n").status == policy_parse::malformed);
    CHECK(parse_policy_request("=value\n\n").status == policy_parse::malformed);
    CHECK(parse_policy_request(std::string("a=b\0c\n\n", 8)).status == policy_parse::malformed);
    std::string big = "x=" + std::string(200, 'y') + "\n";
    CHECK(parse_policy_request(big + big, 300).status == policy_parse::too_large);             // complete lines
    CHECK(parse_policy_request(std::string(400, 'z'), 300).status == policy_parse::too_large); // no newline at all
    CHECK(parse_policy_request("x=1\n\n", 5).status == policy_parse::complete);
    CHECK(parse_policy_request("x=1\n\n", 4).status == policy_parse::too_large);
}

TEST_CASE("policy query: RCPT only, required attributes, policy_test_time", "[policy]") {
    auto q = to_query(parse_policy_request(rcpt_request).request);
    REQUIRE(q.ask);
    CHECK(q.req.client_address == "203.0.114.7");
    CHECK(q.req.client_name.empty()); // "unknown" means no name
    CHECK(q.req.helo == "mx.example.org");
    CHECK(q.req.instance == "123.4.5");
    CHECK_FALSE(q.etrn_domain);
    auto with = [](std::string extra) { return to_query(parse_policy_request(extra + rcpt_request).request); };
    CHECK_FALSE(to_query(parse_policy_request("request=smtpd_access_policy\nprotocol_state=DATA\n"
                                              "client_address=1.2.3.4\nsender=\nrecipient=u@x\n\n")
                             .request)
                    .ask);
    CHECK_FALSE(to_query(parse_policy_request("request=other\n\n").request).ask);
    CHECK_FALSE(to_query(parse_policy_request("request=smtpd_access_policy\nsender=a@b\n\n").request).ask);
    CHECK(with("protocol_state=rcpt\n").ask); // the first value (and case) wins
    // A test hook: honoured only when the daemon runs with --test-hooks.
    CHECK(with("policy_test_time=1800000000\n").req.test_time == 0);
    auto hooked = [](std::string extra) { return to_query(parse_policy_request(extra + rcpt_request).request, true); };
    CHECK(hooked("policy_test_time=1800000000\n").req.test_time == 1800000000);
    CHECK(hooked("policy_test_time=junk\n").req.test_time == 0);
    CHECK(hooked("policy_test_time=9223372036854775807\n").req.test_time == 0); // out of range: ignored
    CHECK(hooked("policy_test_time=99999999999999999999\n").req.test_time == 0);
    CHECK(hooked("policy_test_time=-5\n").req.test_time == 0);
    CHECK(with("etrn_domain=\n").etrn_domain);
    // the null sender is a sender
    auto n = to_query(parse_policy_request("request=smtpd_access_policy\nprotocol_state=RCPT\n"
                                           "client_address=1.2.3.4\nsender=\nrecipient=u@x\n\n")
                          .request);
    CHECK(n.ask);
}

TEST_CASE("policy replies: postgrey's texts and substitutions", "[policy]") {
    auto q = to_query(parse_policy_request(rcpt_request).request);
    reply_style st;
    st.host = "mx1";
    st.version = "kamaelia-0.1.0";
    CHECK(policy_action(make(verdict::greylisted, 240), q, st, true, 0) ==
          "DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.net.html");
    st.greylist_text = "Try again in %s s (%r), 100%%";
    CHECK(policy_action(make(verdict::greylisted, 240), q, st, true, 0) ==
          "DEFER_IF_PERMIT Try again in 240 s (example.net), 100%");
    q.etrn_domain = true;
    CHECK(policy_action(make(verdict::greylisted, 1), q, st, true, 0).rfind("DEFER_IF_PERMIT 4.2.0 Try", 0) == 0);
    CHECK(policy_action(make(verdict::pass, 0, 301, true), q, st, true, 0) ==
          "PREPEND X-Greylist: delayed 301 seconds by kamaelia-0.1.0 at mx1; Thu, 01 Jan 1970 00:00:00 UTC");
    CHECK(policy_action(make(verdict::pass, 0, 301, true), q, st, false, 0) == "DUNNO");
    CHECK(policy_action(make(verdict::pass), q, st, true, 0) == "DUNNO");
    CHECK(policy_action(make(verdict::whitelisted), q, st, true, 0) == "DUNNO");
    CHECK(policy_action(make(verdict::tempfail), q, st, true, 0).empty());
    // a text from a file cannot break the reply line
    st.greylist_text = "a\nb";
    CHECK(policy_action(make(verdict::greylisted), q, st, true, 0) == "DEFER_IF_PERMIT 4.2.0 a b");
}

TEST_CASE("policy conversation: split input, keep-alive, header once per instance", "[policy]") {
    policy_conversation c;
    c.feed(rcpt_request.substr(0, 30));
    CHECK(c.next().what == policy_conversation::need_input);
    c.feed(rcpt_request.substr(30) + rcpt_request);
    auto st = c.next();
    REQUIRE(st.what == policy_conversation::ask);
    CHECK(c.answer(make(verdict::pass, 0, 300, true), 0).rfind("action=PREPEND X-Greylist: delayed 300", 0) == 0);
    st = c.next();
    REQUIRE(st.what == policy_conversation::ask); // second recipient, same instance
    CHECK(c.answer(make(verdict::pass, 0, 300, true), 0) == "action=DUNNO\n\n");
    CHECK(c.next().what == policy_conversation::need_input);
    c.feed("request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n\n");
    st = c.next();
    REQUIRE(st.what == policy_conversation::reply);
    CHECK(st.text == "action=DUNNO\n\n");
    c.feed("garbage\n\n");
    CHECK(c.next().what == policy_conversation::close);
}

TEST_CASE("policy component: answers, keeps the connection, closes on a store failure", "[policy]") {
    test::fixture f;
    auto* eng = start_scripted(f);
    eng->script = {make(verdict::greylisted, 300), make(verdict::pass, 0, 301, true), make(verdict::tempfail)};
    test::embedded_connection c(f, std::make_unique<policy_protocol>(service_name, reply_style{}, 4096, "test"));
    c.write(rcpt_request);
    CHECK(c.read() == "action=DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.net.html\n\n");
    c.write(rcpt_request.substr(0, 10));
    CHECK(c.read().empty());
    c.write(rcpt_request.substr(10));
    CHECK(c.read().rfind("action=PREPEND X-Greylist: delayed 301 seconds", 0) == 0);
    c.write("request=smtpd_access_policy\nprotocol_state=DATA\n\n");
    CHECK(c.read() == "action=DUNNO\n\n");
    CHECK_FALSE(c.sock.closed);
    c.write(rcpt_request); // the store fails: no reply, the connection closes
    CHECK(c.read().empty());
    CHECK(c.sock.closed);
    CHECK(eng->asked.size() == 3);
    CHECK(eng->asked[0].sender == "a@example.org");
}

TEST_CASE("policy component: a pass in the pass memory is answered without asking the service", "[policy]") {
    test::fixture f;
    auto* eng = start_scripted(f);
    eng->script = {make(verdict::greylisted, 300)};
    pass_memory::options o;
    o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)); };
    auto memory = std::make_shared<pass_memory>(o);
    memory->remember(make_triplet("203.0.114.7", "a@example.org", "u@example.net"), "", 1'700'000'000, 1'700'000'000,
                     3600);
    test::embedded_connection c(
        f, std::make_unique<policy_protocol>(service_name, reply_style{}, 4096, "test", false, nullptr, memory));
    c.write(rcpt_request);
    CHECK(c.read() == "action=DUNNO\n\n");
    CHECK(eng->asked.empty());
    CHECK(memory->hits() == 1);
    std::string other = rcpt_request;
    other.replace(other.find("u@example.net"), 13, "v@example.net");
    c.write(other); // not remembered: the service is asked
    CHECK(c.read().rfind("action=DEFER_IF_PERMIT", 0) == 0);
    REQUIRE(eng->asked.size() == 1);
    CHECK(eng->asked[0].recipient == "v@example.net");
}

TEST_CASE("policy component: an oversized request closes without a reply", "[policy]") {
    test::fixture f;
    auto* eng = start_scripted(f);
    test::embedded_connection c(f, std::make_unique<policy_protocol>(service_name, reply_style{}, 256, "test"));
    c.write("x=" + std::string(1000, 'y'));
    CHECK(c.read().empty());
    CHECK(c.sock.closed);
    CHECK(eng->asked.empty());
}

TEST_CASE("policy component: the peer closing ends it after the pending answer", "[policy]") {
    test::fixture f;
    auto* eng = start_scripted(f);
    eng->script = {make(verdict::whitelisted)};
    test::embedded_connection c(f, std::make_unique<policy_protocol>(service_name, reply_style{}, 4096, "test"));
    c.write(rcpt_request);
    c.close_input();
    CHECK(c.read() == "action=DUNNO\n\n");
    CHECK(c.sock.closed);
}

TEST_CASE("policy parser: linear work however the request is split (issue 14, defect 7)", "[policy][hostile]") {
    // A 63 KB request of short attributes, delivered two lines per read.
    std::string req = "request=smtpd_access_policy\nprotocol_state=RCPT\n";
    std::vector<std::string> lines;
    for (int i = 0; req.size() < 63 * 1024; ++i) {
        std::string l = "x" + std::to_string(i) + "=v\n";
        req += l;
    }
    req += "\n";
    policy_conversation c({}, 64 * 1024);
    std::size_t pos = 0, chunks = 0;
    policy_conversation::step st;
    while (pos < req.size()) {
        std::size_t end = pos;
        for (int n = 0; n < 2 && end < req.size(); ++n) end = req.find('\n', end) + 1;
        c.feed(std::string_view(req).substr(pos, end - pos));
        pos = end;
        ++chunks;
        st = c.next();
        if (st.what != policy_conversation::need_input) break;
    }
    CHECK(chunks > 4000);
    CHECK(st.what == policy_conversation::reply); // complete (no recipient: DUNNO)
    // Each byte is examined a bounded number of times (newline search + line checks).
    CHECK(c.parse_steps() <= 3 * req.size());
    CHECK(c.buffered() == 0);
}

TEST_CASE("policy parser: a repeated attribute keeps its first value, found by hash", "[policy][hostile]") {
    std::string req;
    for (int i = 0; i < 5000; ++i) req += "sender=s" + std::to_string(i) + "\n";
    req += "\n";
    auto r = parse_policy_request(req, 1 << 20);
    REQUIRE(r.status == policy_parse::complete);
    CHECK(*r.request.get("sender") == "s0");
    CHECK(r.request.attributes.size() == 1);
}

TEST_CASE("policy parser: past 32 names a repeat is still found, before and after the index", "[policy][hostile]") {
    // 32 names are scanned; the 33rd builds the hash index over all of them.
    std::string req;
    for (int round = 0; round < 3; ++round)
        for (int i = 0; i < 2000; ++i) {
            req += 'n';
            req += std::to_string(i);
            req += "=v";
            req += std::to_string(round);
            req += '\n';
        }
    req += "sender=first\nsender=second\n\n";
    auto r = parse_policy_request(req, 1 << 20);
    REQUIRE(r.status == policy_parse::complete);
    CHECK(r.request.attributes.size() == 2001);
    CHECK(*r.request.get("n0") == "v0");    // indexed when the 33rd name came
    CHECK(*r.request.get("n31") == "v0");   // the last scanned one
    CHECK(*r.request.get("n32") == "v0");   // the one that built the index
    CHECK(*r.request.get("n1999") == "v0"); // indexed on arrival
    CHECK(*r.request.get("sender") == "first");
    CHECK(r.request.get("n2000") == nullptr);
}

TEST_CASE("policy parser: a short request keeps every name, first value wins, without the index", "[policy]") {
    auto r = parse_policy_request("a=1\nb=2\na=3\nc=\nb=4\n\n");
    REQUIRE(r.status == policy_parse::complete);
    REQUIRE(r.request.attributes.size() == 3);
    CHECK(*r.request.get("a") == "1");
    CHECK(*r.request.get("b") == "2");
    CHECK(r.request.get("c")->empty());
    CHECK(r.request.get("d") == nullptr);
}
