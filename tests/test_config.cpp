// The daemon's config file: syntax, validation with line numbers, types.
#include "config.hpp"

#include <catch2/catch.hpp>

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
    auto cf = config_file::parse("# top\n[kamaelia]\nlog-level = debug\n\n[greeter]\n  port=1602 \nbind = ::\n", "t", keys);
    REQUIRE(cf.get("kamaelia", "log-level") == "debug");
    REQUIRE(cf.get_port("greeter", "port") == 1602);
    REQUIRE(cf.get("greeter", "bind") == "::");
    REQUIRE_FALSE(cf.get("greeter", "idle-timeout"));
    REQUIRE(config_file::parse("[kamaelia]\ndata-dir = a=b\n", "t", keys).get("kamaelia", "data-dir") == "a=b");
}

TEST_CASE("config: unknown keys and sections are errors naming the line", "[config]") {
    REQUIRE(error_of("[greeter]\nport = 1\nprot = 2\n") == "test.conf:3: unknown key 'prot' in [greeter]");
    REQUIRE(error_of("\n[nosuch]\n") == "test.conf:2: unknown section [nosuch]");
    REQUIRE(error_of("port = 1\n") .find("test.conf:1: key outside a section") == 0);
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
