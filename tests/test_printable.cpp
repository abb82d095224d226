// printable_text: the one filter for text relayed between users (issue 14, defect 3).
#include <kamaelia/bbs/stages.hpp>
#include <kamaelia/protocols/printable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace kamaelia;

TEST_CASE("printable_text: control sequences become '?', one per character", "[printable][hostile]") {
    CHECK(printable_text("x\rforged says hi") == "x?forged says hi");
    CHECK(printable_text("\x1b[K\x1b[2J") == "?[K?[2J");
    CHECK(printable_text("\x1b]52;c;aGk=\x07") == "?]52;c;aGk=?");
    CHECK(printable_text(std::string("a\0b", 3)) == "a?b");
    CHECK(printable_text("\x7f") == "?");
    CHECK(printable_text("\n") == "?");
    // C1: as a stray byte (8-bit CSI) and as UTF-8 (U+009B).
    CHECK(printable_text("\x9b"
                         "31m") == "?31m");
    CHECK(printable_text("\xc2\x9b"
                         "1m") == "?1m");
    // Bidi overrides and isolates, line and paragraph separators.
    CHECK(printable_text("\xe2\x80\xae"
                         "evil") == "?evil");
    CHECK(printable_text("\xe2\x81\xa6"
                         "x") == "?x");
    CHECK(printable_text("\xe2\x80\xa8") == "?");
}

TEST_CASE("printable_text: tab, ASCII and UTF-8 text pass unchanged", "[printable]") {
    for (std::string s : {"plain text", "tab\there", "café", "日本語", "emoji \xf0\x9f\x98\x80", "\xc2\xa0nbsp", ""}) {
        CHECK(printable_text(s) == s);
        CHECK(is_printable_text(s));
    }
}

TEST_CASE("printable_text: malformed UTF-8 is read as Latin-1, where 0x80-0x9F are controls", "[printable][hostile]") {
    CHECK(printable_text("\xff") == "\xff");                // Latin-1 y-umlaut
    CHECK(printable_text("caf\xe9") == "caf\xe9");          // Latin-1 text still shows
    CHECK(printable_text("\xc0\xaf") == "\xc0\xaf");        // overlong '/': two Latin-1 bytes, not '/'
    CHECK(printable_text("\xed\xa0\x80") == "\xed\xa0?");   // a surrogate: Latin-1 bytes; 0x80 is C1
    CHECK(printable_text("\xe2\x80") == "\xe2?");           // truncated: 0x80 is a C1 byte
    CHECK(printable_text("\xf4\x90\x80\x80") == "\xf4???"); // over U+10FFFF: C1 bytes after 0xF4
    CHECK_FALSE(is_printable_text("\x85"));
}

TEST_CASE("the board and the chat share the filter", "[printable]") {
    CHECK(bbs::has_control_chars("\x1b[2J"));
    CHECK(bbs::has_control_chars("\xc2\x9b"));
    CHECK_FALSE(bbs::has_control_chars("café\tok"));
}

TEST_CASE("printable_text is linear: 8 MB of mixed input in well under a second", "[printable][hostile]") {
    std::string s;
    while (s.size() < 8 << 20) s += "ab\x1b[2J\xc3\xa9\xe6\x97\xa5\xff\x9b";
    auto t0 = std::chrono::steady_clock::now();
    std::string out = printable_text(s);
    auto spent = std::chrono::steady_clock::now() - t0;
    CHECK(out.size() <= s.size());
    CHECK(spent < std::chrono::seconds(5)); // generous: a shared machine; quadratic would take hours
}
