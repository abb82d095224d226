// Kamaelia Grey's greylist.conf syntax, read strictly.
#include <kamaelia/smtp/greylist_conf.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia::smtp;

namespace {
std::string error_of(const std::string& text) {
    try {
        parse_greylist_conf(text, "greylist.conf");
    } catch (const greylist_conf_error& e) {
        return e.what();
    }
    return "";
}
} // namespace

TEST_CASE("greylist.conf: the shipped .dist file", "[smtp]") {
    const std::string dist = "# Kamaelia Grey\n"
                             "port = 25\n"
                             "servername = mail.example.org\n"
                             "smtp_ip = 192.168.0.25\n"
                             "smtp_port = 8025\n"
                             "inactivity_timeout = 60\n"
                             "greylist_log = /var/log/greylist.log\n"
                             "greylist_debuglog = /var/log/greylist-debug.log\n"
                             "allowed_senders:\n"
                             "    127.0.0.1\n"
                             "allowed_sender_nets:\n"
                             "    192.168.2\n"
                             "allowed_domains:\n"
                             "   localdomain\n"
                             "\texample.org\n"
                             "\n"
                             "whitelisted_triples:\n"
                             "    10.0.0.1 <a@b.test> <c@example.org>\n"
                             "serverid = x=y\n";
    auto c = parse_greylist_conf(dist, "greylist.conf");
    CHECK(c.scalars.at("port").value == "25");
    CHECK(c.scalars.at("smtp_ip").line == 4);
    CHECK(c.scalars.at("serverid").value == "x=y"); // not truncated at the second '='
    REQUIRE(c.lists.at("allowed_domains").size() == 2);
    CHECK(c.lists.at("allowed_domains")[1].value == "example.org");
    CHECK(c.lists.at("allowed_domains")[1].line == 15);
    CHECK(c.lists.at("allowed_sender_nets")[0].value == "192.168.2");
    CHECK(c.lists.at("whitelisted_triples")[0].value == "10.0.0.1 <a@b.test> <c@example.org>");
    CHECK(looks_like_greylist_conf(dist));
    CHECK_FALSE(looks_like_greylist_conf("# x\n[grey]\nport = 1\n"));
}

TEST_CASE("greylist.conf: every key is validated with its line", "[smtp]") {
    CHECK(error_of("port = 25\nbogus = 1\n") == "greylist.conf:2: unknown key 'bogus'");
    CHECK(error_of("\n\nbogus:\n  x\n") == "greylist.conf:3: unknown key 'bogus'");
    CHECK(error_of("allowed_domains = example.org\n").find(":1: 'allowed_domains' is a list") != std::string::npos);
    CHECK(error_of("port:\n  25\n").find(":1: 'port' takes a value") != std::string::npos);
    CHECK(error_of("just words\n").find(":1: expected") != std::string::npos);
    CHECK(error_of("port =\n").find(":1: empty value") != std::string::npos);
    CHECK(error_of("port = 1\n   stray\n").find(":2: indented line outside a list") != std::string::npos);
    // A list ends at the first line without leading whitespace.
    auto c = parse_greylist_conf("allowed_domains:\n a.test\n# comment\nport = 2\n", "g");
    CHECK(c.lists.at("allowed_domains").size() == 1);
    CHECK(error_of("allowed_domains:\n a.test\n# comment\n b.test\n").find(":4: indented line outside a list") !=
          std::string::npos);
}
