#include <kamaelia/smtp/line_reader.hpp>

namespace kamaelia::smtp {

void line_reader::feed(std::string_view bytes) {
    if (pos_ > 0 && (pos_ == buf_.size() || pos_ * 2 >= buf_.size())) {
        buf_.erase(0, pos_);
        scan_ -= pos_;
        pos_ = 0;
    }
    buf_.append(bytes);
}

void line_reader::clear() noexcept {
    buf_.clear();
    pos_ = scan_ = 0;
    skipping_ = false;
}

std::optional<line_reader::line> line_reader::next() {
    if (scan_ < pos_) scan_ = pos_;
    auto lf = buf_.find('\n', scan_);
    if (lf == std::string::npos) {
        if (pos_ == buf_.size() && buf_.capacity() > 16 * 1024) {
            // Everything read: an idle connection does not keep the buffer of its biggest chunk.
            std::string().swap(buf_);
            pos_ = scan_ = 0;
            return std::nullopt;
        }
        scan_ = buf_.size();
        if (buf_.size() - pos_ > max_) {
            // Over the limit with no end in sight: drop what we have.
            skipping_ = true;
            buf_.clear();
            pos_ = scan_ = 0;
        }
        return std::nullopt;
    }
    line l;
    std::size_t len = lf + 1 - pos_; // with the ending
    std::string_view text(buf_.data() + pos_, lf - pos_);
    pos_ = scan_ = lf + 1;
    if (skipping_ || len > max_) {
        skipping_ = false;
        l.too_long = true;
        return l;
    }
    if (!text.empty() && text.back() == '\r') {
        l.crlf = true;
        text.remove_suffix(1);
    }
    l.bare_cr = text.find('\r') != std::string_view::npos;
    l.text = text;
    return l;
}

} // namespace kamaelia::smtp
