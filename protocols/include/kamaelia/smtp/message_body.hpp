// The SMTP session's DATA stage: the client's message, line by line, into
// the bytes that go to the upstream. No I/O.
//
// The body passes through unchanged (still dot-stuffed; RELAY puts the
// trace headers in front). A line that does not end in CRLF or holds a bare CR refuses the
// message (SMTP smuggling: a bare LF "." could end the message for one MTA
// and not the other), as does a line over the limit or a body over the
// size limit. A refused message sends nothing more upstream and is answered
// at the client's final dot, which is still found: a dot line after a CRLF.
#pragma once

#include <kamaelia/smtp/line_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace kamaelia::smtp {

class message_body {
public:
    explicit message_body(std::uint64_t max_size) : max_size_(max_size) {}

    // A message begins (after the upstream's 354).
    void start();
    // Forgets the message (the transaction ended).
    void reset() noexcept;
    bool active() const noexcept { return active_; }

    // The client's final dot: a "." line ending in CRLF after a CRLF.
    bool is_end(const line_reader::line& l) const noexcept;
    // Takes one line of the message (not the final dot). True when this
    // line refused the message: the upstream must not get it.
    bool take(const line_reader::line& l);
    // After the final dot of a message that is not refused: the upstream's end of data.
    void finish() { pending_ += ".\r\n"; }

    bool refused() const noexcept { return refusal_code_ != 0; }
    int refusal_code() const noexcept { return refusal_code_; }
    const std::string& refusal() const noexcept { return refusal_; }

    // Bytes for the upstream, in order.
    std::size_t pending() const noexcept { return pending_.size(); }
    std::string take_pending() { return std::exchange(pending_, std::string()); }

private:
    bool refuse(int code, std::string text);

    std::uint64_t max_size_;
    bool active_ = false;
    bool prev_crlf_ = true; // the previous line ended in CRLF
    std::uint64_t bytes_ = 0;
    int refusal_code_ = 0;
    std::string refusal_;
    std::string pending_;
};

} // namespace kamaelia::smtp
