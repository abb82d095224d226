// The shared text helpers (one trim, one host-name helper for the whole tree).
#include <kamaelia/net/host_name.hpp>
#include <kamaelia/util/text.hpp>

#include <catch2/catch.hpp>

using kamaelia::trim;

TEST_CASE("trim: spaces, tabs and a carriage return by default", "[util][text]") {
    STATIC_REQUIRE(trim("  a b \t\r") == "a b");
    REQUIRE(trim("") == "");
    REQUIRE(trim(" \t\r ") == "");
    REQUIRE(trim("x") == "x");
    REQUIRE(trim("\r\nkey = v\r") == "\nkey = v"); // only the given characters
}

TEST_CASE("trim: the caller chooses the characters", "[util][text]") {
    REQUIRE(trim(" MAIL FROM:<a@b>\r ", " \t") == "MAIL FROM:<a@b>\r");
    REQUIRE(trim("<<x>>", "<>") == "x");
}

TEST_CASE("host_name is never empty", "[util][text]") { REQUIRE_FALSE(kamaelia::host_name().empty()); }
