// Where a Redis server is, in the standard Redis URI form:
//
//   redis://[USER:PASS@]HOST:PORT[/DB][?channel=NAME&password-file=PATH]
//
// HOST may be a name, an IPv4 address or [an IPv6 address]; PORT defaults to
// 6379, DB (the database number) to 0. USER and PASS are percent-decoded.
// `channel` names the pub/sub channel (empty: the backplane's own name).
//
// The password should rarely sit in the URL (command lines are visible to
// every user of the machine): resolve_password() takes it, when the URL has
// none, from `password-file` (a file only its owner may read: mode 0600 or
// stricter, else it is refused) or from the environment variable
// REDISCLI_AUTH, as redis-cli does. The password never appears in
// display(), in errors or in logs.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kamaelia::redis {

struct url {
    std::string host;
    std::uint16_t port = 6379;
    std::string user;     // empty: the default user
    std::string password; // empty: no AUTH
    unsigned db = 0;
    std::string channel;
    std::string password_file;

    // "redis://[USER@]HOST:PORT[/DB]" - what logs may show (no password).
    std::string display() const;
};

struct url_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Parses `text`; url_error says what is wrong (never quoting a password).
url parse_url(std::string_view text);

// When `u` has no password: from u.password_file, else from $REDISCLI_AUTH.
// url_error if the file cannot be read or others may read it.
void resolve_password(url& u);

} // namespace kamaelia::redis
