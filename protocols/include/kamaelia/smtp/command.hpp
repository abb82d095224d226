// The SMTP command parser: one command line (without its line ending) in,
// a typed command out. Pure: no I/O, no allocation beyond the result, so it
// is fuzzed on its own (tests/fuzz/fuzz_smtp_command.cpp).
//
// Verbs are case-insensitive (RFC 5321 §2.4). MAIL and RCPT take a path in
// angle brackets (`FROM:<a>` or the common `FROM: <a>`), with `<>` for the
// null sender, source routes stripped (`<@a,@b:u@d>` -> `u@d`), quoted local
// parts kept as written, and ESMTP parameters `KEY[=VALUE]` (keys upper-cased).
// RFC limits: local part 64, domain 255, path 256 octets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kamaelia::smtp {

enum class verb : std::uint8_t {
    helo,
    ehlo,
    mail,
    rcpt,
    data,
    rset,
    noop,
    vrfy,
    expn,
    help,
    quit,
    starttls,
    bdat,
    auth,
    unknown,
    empty
};

std::string_view to_string(verb v) noexcept;

struct command {
    verb what = verb::unknown;
    std::string argument; // everything after the verb, trimmed
    std::string address;  // MAIL/RCPT: the path without <> and source route ("" for <>)
    std::vector<std::pair<std::string, std::string>> params; // MAIL/RCPT ESMTP parameters, keys upper-case
    // Set when the line is not a valid command of its verb: the full reply
    // (e.g. "501 5.5.4 Syntax: MAIL FROM:<address>").
    std::string error;

    bool ok() const noexcept { return error.empty(); }
    // The value of a parameter (nullopt if absent; "" for a bare keyword).
    std::optional<std::string> param(std::string_view key) const;
};

// Parses one line. `line` excludes CRLF; over-long lines are the framer's job.
command parse_command(std::string_view line);

// The domain of an address ("" when there is none), lower-cased.
std::string domain_of(std::string_view address);
// True for "postmaster" with no domain, in any case (RFC 5321 §4.5.1).
bool is_bare_postmaster(std::string_view address) noexcept;
// ASCII lower-case copy.
std::string lower(std::string_view s);

} // namespace kamaelia::smtp
