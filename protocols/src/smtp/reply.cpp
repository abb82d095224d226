#include <kamaelia/smtp/reply.hpp>

#include <charconv>

namespace kamaelia::smtp {

std::string reply::wire() const {
    std::string out;
    for (std::size_t i = 0; i < lines.size() || i == 0; ++i) {
        out += std::to_string(code);
        out += (i + 1 < lines.size()) ? '-' : ' ';
        if (i < lines.size()) out += lines[i];
        out += "\r\n";
    }
    return out;
}

std::string reply::text() const {
    std::string t;
    for (const auto& l : lines) {
        if (!t.empty()) t += "; ";
        t += l;
    }
    return t;
}

std::string format_reply(int code, std::string_view text) {
    std::string out;
    std::string c = std::to_string(code);
    for (;;) {
        auto nl = text.find('\n');
        out += c;
        out += nl == std::string_view::npos ? ' ' : '-';
        out.append(text.substr(0, nl));
        out += "\r\n";
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

void reply_reader::feed(std::string_view bytes) {
    if (pos_ > 0 && pos_ * 2 >= buf_.size()) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    buf_.append(bytes);
    if (buf_.size() - pos_ > 64 * 1024 && buf_.find('\n', pos_) == std::string::npos && error_.empty())
        error_ = "reply line too long";
}

std::optional<reply> reply_reader::next() {
    while (error_.empty()) {
        auto lf = buf_.find('\n', pos_);
        if (lf == std::string::npos) return std::nullopt;
        std::string_view line(buf_.data() + pos_, lf - pos_);
        pos_ = lf + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        int code = 0;
        if (line.size() < 3 || std::from_chars(line.data(), line.data() + 3, code).ptr != line.data() + 3 ||
            code < 200 || code > 599 || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
            error_ = "malformed reply line: " + std::string(line.substr(0, 80));
            return std::nullopt;
        }
        if (partial_.code && partial_.code != code) {
            error_ = "reply code changed inside a multi-line reply";
            return std::nullopt;
        }
        partial_.code = code;
        partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
        if (partial_.lines.size() > 1000) {
            error_ = "endless multi-line reply";
            return std::nullopt;
        }
        if (line.size() <= 3 || line[3] == ' ') {
            reply r = std::move(partial_);
            partial_ = {};
            return r;
        }
    }
    return std::nullopt;
}

extensions parse_ehlo(const reply& r) {
    extensions x;
    for (std::size_t i = 1; i < r.lines.size(); ++i) {
        std::string line = r.lines[i];
        for (char& c : line)
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        auto sp = line.find(' ');
        std::string key = line.substr(0, sp);
        std::string rest = sp == std::string::npos ? std::string() : line.substr(sp + 1);
        if (key == "PIPELINING")
            x.pipelining = true;
        else if (key == "8BITMIME")
            x.eightbitmime = true;
        else if (key == "ENHANCEDSTATUSCODES")
            x.enhancedstatuscodes = true;
        else if (key == "STARTTLS")
            x.starttls = true;
        else if (key == "SMTPUTF8")
            x.smtputf8 = true;
        else if (key == "SIZE") {
            x.size = true;
            std::uint64_t n = 0;
            if (!rest.empty() && std::from_chars(rest.data(), rest.data() + rest.size(), n).ec == std::errc())
                x.max_size = n;
        } else if (key == "XFORWARD") {
            x.xforward = true;
            std::size_t p = 0;
            while (p < rest.size()) {
                auto q = rest.find(' ', p);
                std::string a = rest.substr(p, q == std::string::npos ? std::string::npos : q - p);
                if (!a.empty()) x.xforward_attrs.push_back(a);
                if (q == std::string::npos) break;
                p = q + 1;
            }
        }
    }
    return x;
}

} // namespace kamaelia::smtp
