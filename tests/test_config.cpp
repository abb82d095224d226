// The daemon's config file: syntax, validation with line numbers, types.
#include "config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>

using kamaelia::daemon::config_error;
using kamaelia::daemon::config_file;

namespace {
const std::map<std::string, std::set<std::string>> keys = {
    {"kamaelia", {"log-level", "data-dir"}},
    {"greeter", {"bind", "port", "idle-timeout"}},
};
std::string error_of(const std::string& text) {
    try {
        config_file::parse(text, "test.conf", keys);
    } catch (const config_error& e) {
        return e.what();
    }
    return "";
}
} // namespace

TEST_CASE("config: sections, comments, values with '='", "[config]") {
    auto cf =
        config_file::parse("# top\n[kamaelia]\nlog-level = debug\n\n[greeter]\n  port=1602 \nbind = ::\n", "t", keys);
    REQUIRE(cf.get("kamaelia", "log-level") == "debug");
    REQUIRE(cf.get_port("greeter", "port") == 1602);
    REQUIRE(cf.get("greeter", "bind") == "::");
    REQUIRE_FALSE(cf.get("greeter", "idle-timeout"));
    REQUIRE(config_file::parse("[kamaelia]\ndata-dir = a=b\n", "t", keys).get("kamaelia", "data-dir") == "a=b");
}

TEST_CASE("config: unknown keys and sections are errors naming the line", "[config]") {
    REQUIRE(error_of("[greeter]\nport = 1\nprot = 2\n") == "test.conf:3: unknown key 'prot' in [greeter]");
    REQUIRE(error_of("\n[nosuch]\n") == "test.conf:2: unknown section [nosuch]");
    REQUIRE(error_of("port = 1\n").find("test.conf:1: key outside a section") == 0);
    REQUIRE(error_of("[greeter]\njunk\n").find("test.conf:2: expected key = value") == 0);
}

TEST_CASE("config: typed values are checked", "[config]") {
    auto cf = config_file::parse("[greeter]\nport = 70000\nidle-timeout = soon\n", "t.conf", keys);
    REQUIRE_THROWS_WITH(cf.get_port("greeter", "port"), "t.conf:2: port must be 0..65535");
    REQUIRE_THROWS_WITH(cf.get_seconds("greeter", "idle-timeout"),
                        "t.conf:3: idle-timeout must be a number of seconds, got 'soon'");
    auto cf2 = config_file::parse("[greeter]\nport = -1\n", "t.conf", keys);
    REQUIRE_THROWS_AS(cf2.get_port("greeter", "port"), config_error);
}

// ---- the environment layer: KAMAELIA_<SECTION>_<KEY>, flag > env > file > default

namespace {
const std::map<std::string, std::set<std::string>> env_keys = {
    {"kamaelia", {"log-level", "data-dir", "stop-timeout"}},
    {"greeter", {"bind", "port", "idle-timeout"}},
    {"grey", {"upstream", "allowed-domain", "max-message-size"}},
};
using kamaelia::daemon::env_name;
using kamaelia::daemon::env_values;
using kamaelia::daemon::load_config;

// A scratch file of its own, removed at the end.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string& text) {
        char name[] = "/tmp/kamaelia-test-config.XXXXXX";
        int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(fd);
        path = name;
    }
    ~temp_file() { std::remove(path.c_str()); }
};
} // namespace

TEST_CASE("config env: one rule names every key", "[config]") {
    REQUIRE(env_name("grey", "allowed-domain") == "KAMAELIA_GREY_ALLOWED_DOMAIN");
    REQUIRE(env_name("kamaelia", "threads") == "KAMAELIA_KAMAELIA_THREADS");
    REQUIRE(env_name("policy", "bind") == "KAMAELIA_POLICY_BIND");
    REQUIRE(env_name("mcast-recv", "group") == "KAMAELIA_MCAST_RECV_GROUP");
}

TEST_CASE("config env: values, lists and the variable's name in errors", "[config]") {
    auto v = env_values({"PATH=/bin", "KAMAELIA_GREY_ALLOWED_DOMAIN= example.org,example.net ",
                         "KAMAELIA_GREETER_PORT=70000", "KAMAELIA_DATA_DIR=/srv/k", "KAMAELIA_CONFIG=/nope"},
                        env_keys);
    REQUIRE(v.at("grey").at("allowed-domain").value == "example.org,example.net");
    REQUIRE(v.at("kamaelia").at("data-dir").value == "/srv/k");
    REQUIRE_FALSE(v.count("config"));
    auto cf = config_file::empty("(environment)");
    cf.overlay(v);
    REQUIRE_THROWS_WITH(cf.get_port("greeter", "port"), "KAMAELIA_GREETER_PORT: port must be 0..65535");
}

TEST_CASE("config env: an unknown key in a section's name space is an error naming it", "[config]") {
    REQUIRE_THROWS_WITH(env_values({"KAMAELIA_GREY_UPSTRAEM=mx:25"}, env_keys),
                        Catch::Matchers::StartsWith("KAMAELIA_GREY_UPSTRAEM: unknown environment variable"));
    REQUIRE_THROWS_WITH(env_values({"KAMAELIA_KAMAELIA_THREADZ=2"}, env_keys),
                        Catch::Matchers::StartsWith("KAMAELIA_KAMAELIA_THREADZ: unknown"));
    // Outside every section's name space: not config by the rule, ignored
    // (and named by env_ignored, which the daemon logs).
    REQUIRE(env_values({"KAMAELIA_SOURCE_DIR=/src", "KAMAELIA_NOSUCH_PORT=1"}, env_keys).empty());
    REQUIRE(kamaelia::daemon::env_ignored({"KAMAELIA_SOURCE_DIR=/src", "KAMAELIA_GREY_UPSTREAM=x", "KAMAELIA_CONFIG=c",
                                           "KAMAELIA_DATA_DIR=d", "HOME=/root"},
                                          env_keys) == std::vector<std::string>{"KAMAELIA_SOURCE_DIR"});
    // Lower case is not the rule's spelling: not config, and named as ignored.
    REQUIRE(env_values({"KAMAELIA_grey_upstream=x"}, env_keys).empty());
    REQUIRE(kamaelia::daemon::env_ignored({"KAMAELIA_grey_upstream=x"}, env_keys).size() == 1);
    // The two spellings of the data directory must agree.
    REQUIRE_THROWS_AS(env_values({"KAMAELIA_DATA_DIR=/a", "KAMAELIA_KAMAELIA_DATA_DIR=/b"}, env_keys), config_error);
    REQUIRE_NOTHROW(env_values({"KAMAELIA_DATA_DIR=/a", "KAMAELIA_KAMAELIA_DATA_DIR=/a"}, env_keys));
    // Not KAMAELIA_*: none of ours.
    REQUIRE(env_values({"KAMAELIAX=1", "HOME=/root"}, env_keys).empty());
}

TEST_CASE("config env: two keys with one name are refused, not guessed", "[config]") {
    const std::map<std::string, std::set<std::string>> clash = {{"a-b", {"c"}}, {"a", {"b-c"}}};
    REQUIRE_THROWS_WITH(env_values({"KAMAELIA_A_B_C=1"}, clash), Catch::Matchers::Contains("names two config keys"));
}

TEST_CASE("config env: precedence environment > file > default", "[config]") {
    temp_file f("[greeter]\nport = 1602\nbind = ::\n[kamaelia]\ndata-dir = /from/file\n");
    // File only.
    auto cf = load_config(f.path, {}, env_keys);
    REQUIRE(cf);
    REQUIRE(cf->get_port("greeter", "port") == 1602);
    // The environment wins over the file, key by key.
    cf = load_config(f.path, {"KAMAELIA_GREETER_PORT=1603", "KAMAELIA_DATA_DIR=/from/env"}, env_keys);
    REQUIRE(cf->get_port("greeter", "port") == 1603);
    REQUIRE(cf->get("greeter", "bind") == "::");
    REQUIRE(cf->get("kamaelia", "data-dir") == "/from/env");
    // Neither: the default is the caller's (no value here).
    REQUIRE_FALSE(load_config("", {}, env_keys));
    REQUIRE_FALSE(load_config("", {"HOME=/root"}, env_keys));
    // The environment alone.
    cf = load_config("", {"KAMAELIA_GREY_UPSTREAM=mx:25"}, env_keys);
    REQUIRE(cf);
    REQUIRE(cf->get("grey", "upstream") == "mx:25");
    REQUIRE_FALSE(cf->get("greeter", "port"));
}

TEST_CASE("config env: KAMAELIA_CONFIG is read when present, --config must exist", "[config]") {
    temp_file f("[greeter]\nport = 1602\n");
    auto cf = load_config("", {"KAMAELIA_CONFIG=" + f.path}, env_keys);
    REQUIRE(cf);
    REQUIRE(cf->get_port("greeter", "port") == 1602);
    // --config wins over KAMAELIA_CONFIG.
    temp_file g("[greeter]\nport = 1604\n");
    REQUIRE(load_config(g.path, {"KAMAELIA_CONFIG=" + f.path}, env_keys)->get_port("greeter", "port") == 1604);
    // A missing KAMAELIA_CONFIG file: no file (the image sets it whether or not one is mounted).
    REQUIRE_FALSE(load_config("", {"KAMAELIA_CONFIG=/nonexistent/kamaelia.conf"}, env_keys));
    // A missing --config file is an error.
    REQUIRE_THROWS_AS(load_config("/nonexistent/kamaelia.conf", {}, env_keys), config_error);
    // A bad file named by KAMAELIA_CONFIG is still an error naming its line.
    temp_file bad("[greeter]\nprot = 1\n");
    REQUIRE_THROWS_WITH(load_config("", {"KAMAELIA_CONFIG=" + bad.path}, env_keys),
                        bad.path + ":2: unknown key 'prot' in [greeter]");
}

TEST_CASE("config: threads is auto or a number of threads", "[config]") {
    using kamaelia::daemon::parse_threads;
    CHECK(parse_threads("auto", 6) == 6);
    CHECK(parse_threads("auto", 0) == 1); // never zero schedulers
    CHECK(parse_threads("1", 6) == 1);
    CHECK(parse_threads("2", 6) == 2);
    CHECK(parse_threads("16", 2) == 16); // more than the CPUs is allowed (tests, I/O-bound loads)
    CHECK(parse_threads("1024", 2) == 1024);
    for (const char* bad : {"0", "-1", "", "two", "2.5", " 2", "2 ", "1025", "99999999999", "auto2"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_threads(bad, 2), Catch::Contains("threads: expected auto or a number"));
    }
}
