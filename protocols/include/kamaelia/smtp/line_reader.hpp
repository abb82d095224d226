// SMTP line framing with RFC 5321's limits (§4.5.3.1): command lines 512
// octets, text lines 1000, both counting the CRLF. Pure, fed with whatever
// chunks the socket delivers (pipelined commands, split lines).
//
// A line is cut at LF. It reports whether it ended in CRLF (a bare LF is
// not an SMTP line ending: in DATA that matters, see SMTP smuggling) and
// whether it holds a CR elsewhere. A line over the limit is reported once,
// when its LF finally arrives, with its bytes discarded, so memory stays
// bounded by the limit whatever the peer sends.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::smtp {

class line_reader {
public:
    struct line {
        std::string_view text; // without the ending; valid until the next feed()/next()/clear()
        bool crlf = false;     // ended in CRLF (else a bare LF)
        bool bare_cr = false;  // a CR inside the line
        bool too_long = false; // over the limit (text is empty)
    };

    explicit line_reader(std::size_t max_line = 512) : max_(max_line) {}
    void set_limit(std::size_t max_line) noexcept { max_ = max_line; }
    std::size_t limit() const noexcept { return max_; }

    void feed(std::string_view bytes);
    std::optional<line> next();
    // Bytes held that are not yet a complete line.
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }
    // Forgets everything buffered (after STARTTLS: never act on plaintext
    // that came before the handshake, CVE-2011-0411).
    void clear() noexcept;

private:
    std::string buf_;
    std::size_t pos_ = 0;  // start of the first unread line
    std::size_t scan_ = 0; // where the search for LF resumes
    std::size_t max_;
    bool skipping_ = false; // discarding the rest of an over-long line
};

} // namespace kamaelia::smtp
