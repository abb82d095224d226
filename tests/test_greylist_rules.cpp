// The greylist's timing rules and triplet normalisation: pure functions,
// checked at every boundary with exact times.
#include <kamaelia/greylist/rules.hpp>
#include <kamaelia/greylist/triplet.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia::greylist;

namespace {
const timing postgrey{300, 2 * 24 * 3600, 35 * 24 * 3600};
constexpr std::int64_t t0 = 1'700'000'000;
} // namespace

TEST_CASE("a new triplet is greylisted for the whole delay", "[grey]") {
    auto o = judge_triplet(std::nullopt, t0, postgrey);
    CHECK(o.answer.what == verdict::greylisted);
    CHECK(o.answer.reason == "new");
    CHECK(o.answer.wait.count() == 300);
    CHECK(o.write == triplet_row{t0, t0});
    CHECK_FALSE(o.first_pass);
}

TEST_CASE("an early retry is deferred and does not reset first-seen", "[grey]") {
    triplet_row r{t0, t0};
    auto o = judge_triplet(r, t0 + 60, postgrey);
    CHECK(o.answer.what == verdict::greylisted);
    CHECK(o.answer.reason == "early retry");
    CHECK(o.answer.wait.count() == 240);
    CHECK(o.write == triplet_row{t0, t0 + 60});
    CHECK_FALSE(o.store); // only last-seen would move, and it is fresh
    // one second before the delay: still deferred, first-seen kept
    o = judge_triplet(o.write, t0 + 299, postgrey);
    CHECK(o.answer.what == verdict::greylisted);
    CHECK(o.answer.wait.count() == 1);
    CHECK(o.write.first == t0);
}

TEST_CASE("the first retry at exactly the delay passes once with its delay", "[grey]") {
    triplet_row r{t0, t0 + 60};
    auto o = judge_triplet(r, t0 + 300, postgrey);
    CHECK(o.answer.what == verdict::pass);
    CHECK(o.answer.first_pass);
    CHECK(o.first_pass);
    CHECK(o.answer.delayed.count() == 300);
    CHECK(o.write == triplet_row{t0, t0 + 300});
    CHECK(o.store);
    // later: the pass memory, no longer a first pass, refreshed
    auto o2 = judge_triplet(o.write, t0 + 400, postgrey);
    CHECK(o2.answer.what == verdict::pass);
    CHECK_FALSE(o2.answer.first_pass);
    CHECK(o2.write == triplet_row{t0, t0 + 400});
    CHECK_FALSE(o2.store); // used again within the hour: nothing to write
    auto o3 = judge_triplet(o.write, t0 + 300 + 3600, postgrey);
    CHECK(o3.store); // an hour-old stamp is refreshed
    CHECK(judge_triplet(std::nullopt, t0, postgrey).store);
}

TEST_CASE("the retry window: at its end a retry still counts, one second later it starts over", "[grey]") {
    const std::int64_t w = postgrey.retry_window;
    auto o = judge_triplet(triplet_row{t0, t0}, t0 + w, postgrey);
    CHECK(o.answer.what == verdict::pass);
    CHECK(o.answer.delayed.count() == w);
    o = judge_triplet(triplet_row{t0, t0 + 10}, t0 + w + 1, postgrey);
    CHECK(o.answer.what == verdict::greylisted);
    CHECK(o.answer.reason == "retry window over");
    CHECK(o.answer.wait.count() == 300);
    CHECK(o.write == triplet_row{t0 + w + 1, t0 + w + 1});
}

TEST_CASE("pass memory lasts max-age since the last use, refreshed on every use", "[grey]") {
    const std::int64_t a = postgrey.max_age;
    triplet_row passed{t0, t0 + 300};
    auto o = judge_triplet(passed, t0 + 300 + a, postgrey);
    CHECK(o.answer.what == verdict::pass);
    CHECK(o.write.last == t0 + 300 + a);
    // used again just inside max-age of the refreshed time
    o = judge_triplet(o.write, t0 + 300 + 2 * a, postgrey);
    CHECK(o.answer.what == verdict::pass);
    // forgotten one second after max-age
    o = judge_triplet(passed, t0 + 300 + a + 1, postgrey);
    CHECK(o.answer.what == verdict::greylisted);
    CHECK(o.answer.reason == "new");
}

TEST_CASE("a zero delay passes at once", "[grey]") {
    timing t = postgrey;
    t.delay = 0;
    auto o = judge_triplet(std::nullopt, t0, t);
    CHECK(o.answer.what == verdict::pass);
    CHECK(o.answer.first_pass);
}

TEST_CASE("client auto-whitelist counts at most one pass an hour", "[grey]") {
    std::optional<client_row> c;
    c = bump_client(c, t0, postgrey);
    CHECK(*c == client_row{1, t0});
    CHECK_FALSE(bump_client(c, t0 + 3599, postgrey));
    c = bump_client(c, t0 + 3600, postgrey);
    CHECK(*c == client_row{2, t0 + 3600});
    CHECK_FALSE(client_whitelisted(c, t0 + 3600, 5, postgrey));
    CHECK(client_whitelisted(client_row{5, t0}, t0 + 10, 5, postgrey));
    CHECK_FALSE(client_whitelisted(client_row{5, t0}, t0 + 10, 0, postgrey)); // off
    CHECK_FALSE(client_whitelisted(client_row{5, t0}, t0 + postgrey.max_age + 1, 5, postgrey));
    // a clock that went back counts too (postgrey)
    CHECK(bump_client(client_row{3, t0 + 100}, t0, postgrey)->count == 4);
}

TEST_CASE("expiry: passed rows after max-age, unpassed after the retry window", "[grey]") {
    CHECK_FALSE(expired({t0, t0 + 300}, t0 + 300 + postgrey.max_age, postgrey));
    CHECK(expired({t0, t0 + 300}, t0 + 301 + postgrey.max_age, postgrey));
    CHECK_FALSE(expired({t0, t0 + 10}, t0 + 10 + postgrey.retry_window, postgrey));
    CHECK(expired({t0, t0 + 10}, t0 + 11 + postgrey.retry_window, postgrey));
}

TEST_CASE("client networks: /24 and /64 by default, configurable", "[grey]") {
    CHECK(client_network("203.0.114.7", 24, 64) == "203.0.114.0/24");
    CHECK(client_network("203.0.114.99", 24, 64) == "203.0.114.0/24");
    CHECK(client_network("203.0.114.99", 32, 64) == "203.0.114.99/32");
    CHECK(client_network("10.1.2.3", 20, 64) == "10.1.0.0/20");
    CHECK(client_network("2001:db8:1:3::25", 24, 64) == "2001:db8:1:3::/64");
    CHECK(client_network("2001:DB8:1:3:ffff::1", 24, 64) == "2001:db8:1:3::/64");
    CHECK(client_network("2001:db8:1:3:ffff::1", 24, 48) == "2001:db8:1::/48");
    CHECK(client_network("::ffff:192.0.2.77", 24, 64) == "192.0.2.0/24");
    CHECK(client_network("fe80::1%eth0", 24, 64) == "fe80::/64");
    CHECK(client_network("Not-An-Address", 24, 64) == "not-an-address");
    CHECK(client_network("", 24, 64).empty());
    CHECK(canonical_address("::FFFF:1.2.3.4") == "1.2.3.4");
    // IPv4 is formatted without inet_ntop: every octet width, both ends.
    CHECK(canonical_address("0.0.0.0") == "0.0.0.0");
    CHECK(canonical_address("255.255.255.255") == "255.255.255.255");
    CHECK(canonical_address(" <9.10.99.100> ") == "9.10.99.100");
    CHECK(client_network("255.255.255.255", 32, 64) == "255.255.255.255/32");
    CHECK(client_network("198.51.100.200", 0, 64) == "0.0.0.0/0");
    CHECK(client_network("198.51.100.200", 99, 64) == "198.51.100.200/32");
}

TEST_CASE("sender normalisation: case, BATV, SRS, +extension, VERP numbers", "[grey]") {
    CHECK(normalise_sender("John.Doe@Example.ORG") == "john.doe@example.org");
    CHECK(normalise_sender("<a@b.c>") == "a@b.c");
    CHECK(normalise_sender("") == "");
    CHECK(normalise_sender("prvs=1234abcdef=user@example.org") == "user@example.org");
    CHECK(normalise_sender("msprvs1=17abcdefgh=bounces@example.org") == "bounces@example.org");
    CHECK(normalise_sender("btv1==0123456789a==user@example.org") == "user@example.org");
    CHECK(normalise_sender("SRS0=HHH=TT=orig.example=alice@forwarder.example") == "alice@orig.example");
    CHECK(normalise_sender("SRS1=HHH=fwd.example==HHH=TT=orig.example=bob@forwarder.example") == "bob@orig.example");
    CHECK(normalise_sender("user+list-42@example.org") == "user@example.org");
    CHECK(normalise_sender("bounce-12345-678@lists.example.org") == "bounce-#-#@lists.example.org");
    CHECK(normalise_sender("a1234@example.org") == "a1234@example.org");
    CHECK(normalise_sender("12_34@example.org") == "12_34@example.org");
    CHECK(normalise_sender("no-at-sign") == "no-at-sign");
    CHECK(normalise_sender("+@example.org") == "+@example.org");
    CHECK(normalise_recipient(" <User@Example.NET> ") == "user@example.net");
    CHECK(domain_of("u@Example.Net") == "example.net");
    CHECK(domain_of("postmaster").empty());
}

TEST_CASE("the triplet combines the three", "[grey]") {
    auto t = make_triplet("198.51.100.20", "Bob+x@Example.org", "Alice@Example.NET");
    CHECK(t == triplet{"198.51.100.0/24", "bob@example.org", "alice@example.net"});
}

#include <kamaelia/greylist/whitelist.hpp>

#include <sstream>

TEST_CASE("whitelists: postgrey's client file format", "[grey]") {
    whitelist w;
    std::istringstream in("# comment\n"
                          "\n"
                          "  10.1.2.3   # an address\n"
                          "192.168\n"
                          "172.16.0.0/12\n"
                          "2001:db8::/32\n"
                          "example.com\n"
                          "/^mail\\d+\\.provider\\.test$/\n"
                          "300.1.1.1\n"
                          "10.0.0.0/99\n"
                          "/[unclosed/\n");
    auto bad = w.load_clients(in, "wl");
    REQUIRE(bad.size() == 3);
    CHECK(bad[0] == "wl:9: 300.1.1.1");
    CHECK(bad[1] == "wl:10: 10.0.0.0/99");
    auto client = [](std::string addr, std::string name = {}) {
        request r;
        r.client_address = std::move(addr);
        r.client_name = std::move(name);
        r.recipient = "u@example.net";
        return r;
    };
    CHECK(w.match(client("10.1.2.3")));
    CHECK_FALSE(w.match(client("10.1.2.4")));
    CHECK(w.match(client("192.168.77.1")) == "client 192.168");
    CHECK(w.match(client("172.31.255.255")));
    CHECK_FALSE(w.match(client("172.32.0.1")));
    CHECK(w.match(client("2001:db8:ffff::1")));
    CHECK(w.match(client("::ffff:10.1.2.3")));
    CHECK(w.match(client("198.51.100.1", "smtp.Example.COM")));
    CHECK(w.match(client("198.51.100.1", "example.com")));
    CHECK_FALSE(w.match(client("198.51.100.1", "badexample.com")));
    CHECK(w.match(client("198.51.100.1", "mail42.provider.test")));
    CHECK_FALSE(w.match(client("198.51.100.1", "unknown")));
}

TEST_CASE("whitelists: postgrey's recipient file format and sender domains", "[grey]") {
    whitelist w;
    std::istringstream in("postmaster@\nabuse@example.net\nopen.example\n/^list-.*@/\n@\n");
    auto bad = w.load_recipients(in, "r");
    CHECK(bad.size() == 1);
    w.add_sender_domain("@friend.example");
    auto rcpt = [](std::string to, std::string from = "x@example.org") {
        request r;
        r.client_address = "198.51.100.1";
        r.recipient = std::move(to);
        r.sender = std::move(from);
        return r;
    };
    CHECK(w.match(rcpt("PostMaster@anything.example")));
    CHECK(w.match(rcpt("postmaster")));
    CHECK(w.match(rcpt("abuse@example.net")));
    CHECK_FALSE(w.match(rcpt("abuse@example.org")));
    CHECK(w.match(rcpt("anyone@sub.open.example")));
    CHECK(w.match(rcpt("list-users@example.org")));
    CHECK_FALSE(w.match(rcpt("user@example.org")));
    CHECK(w.match(rcpt("user@example.org", "a@mx.friend.example")) == "sender domain friend.example");
    CHECK_FALSE(w.match(rcpt("user@example.org", "")));
    CHECK_THROWS(w.load_clients("/nonexistent/whitelist"));
}
