#include <kamaelia/smtp/message_body.hpp>

namespace kamaelia::smtp {

void message_body::start() {
    reset();
    active_ = true;
}

void message_body::reset() noexcept {
    active_ = false;
    prev_crlf_ = true;
    bytes_ = 0;
    refusal_code_ = 0;
    refusal_.clear();
    pending_.clear();
}

bool message_body::is_end(const line_reader::line& l) const noexcept {
    return l.crlf && !l.bare_cr && prev_crlf_ && l.text == ".";
}

bool message_body::refuse(int code, std::string text) {
    if (refusal_code_) return false; // the first reason is the one the client hears
    refusal_code_ = code;
    refusal_ = std::move(text);
    pending_.clear();
    return true;
}

bool message_body::take(const line_reader::line& l) {
    if (l.too_long) {
        prev_crlf_ = true; // its ending is unknown; the client's final dot must still end the message
        return refuse(500, "5.5.2 Error: line too long (over 1000 octets)");
    }
    if (!l.crlf || l.bare_cr) {
        prev_crlf_ = l.crlf;
        return refuse(554, "5.6.11 Error: bare CR or LF in message (SMTP smuggling protection)");
    }
    prev_crlf_ = true;
    bytes_ += l.text.size() + 2;
    bool now = false;
    if (bytes_ > max_size_) now = refuse(552, "5.3.4 Error: message size exceeds fixed limit");
    if (!refusal_code_) {
        pending_.append(l.text);
        pending_ += "\r\n";
    }
    return now;
}

} // namespace kamaelia::smtp
