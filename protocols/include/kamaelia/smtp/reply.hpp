// SMTP replies: formatting ours, and reading an upstream server's
// (multi-line "250-..." continuations, EHLO extension keywords). Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia::smtp {

struct reply {
    int code = 0;
    std::vector<std::string> lines; // text of each line, after "NNN-" / "NNN "

    bool positive() const noexcept { return code >= 200 && code < 400; }
    bool transient() const noexcept { return code >= 400 && code < 500; }
    bool permanent() const noexcept { return code >= 500; }
    // The reply as it goes on the wire (CRLF line endings).
    std::string wire() const;
    // The lines joined by "; " (for logs and for quoting in our own replies).
    std::string text() const;
};

// "250 2.0.0 Ok\r\n"; a text with '\n' becomes a multi-line reply.
std::string format_reply(int code, std::string_view text);

// Reads replies from a byte stream (an upstream server).
class reply_reader {
public:
    void feed(std::string_view bytes);
    // The next complete reply, if one is there.
    std::optional<reply> next();
    // The stream broke the protocol (a line that is not "NNN[ -]text", a reply
    // code that changes mid-reply, or an endless line): the text says how.
    const std::string& error() const noexcept { return error_; }
    bool failed() const noexcept { return !error_.empty(); }

private:
    std::string buf_;
    std::size_t pos_ = 0;
    reply partial_;
    std::string error_;
};

// What an upstream EHLO reply offers.
struct extensions {
    bool pipelining = false;
    bool size = false;
    std::uint64_t max_size = 0; // SIZE's argument (0: none given)
    bool eightbitmime = false;
    bool enhancedstatuscodes = false;
    bool starttls = false;
    bool smtputf8 = false;
    bool xforward = false;
    std::vector<std::string> xforward_attrs; // upper-case: NAME ADDR PROTO HELO ...
};
extensions parse_ehlo(const reply& r);

} // namespace kamaelia::smtp
