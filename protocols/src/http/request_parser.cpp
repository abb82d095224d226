#include <kamaelia/http/request_parser.hpp>

#include <http_parser.h>

#include <algorithm>
#include <cctype>

namespace kamaelia::http {

std::string_view request::path() const {
    std::string_view t = target;
    auto q = t.find_first_of("?#");
    return q == std::string_view::npos ? t : t.substr(0, q);
}

std::optional<std::string_view> request::header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
        if (k == lower_name) return std::string_view(v);
    return std::nullopt;
}

struct request_parser::impl {
    http_parser parser{};
    http_parser_settings settings{};
    request_parser* owner = nullptr;
    request current;
    std::size_t head_bytes = 0;
    std::size_t body_bytes = 0;
    bool in_value = false;

    static impl& of(http_parser* p) { return *static_cast<impl*>(p->data); }

    // Charges `n` bytes of the head against the limit; false (and the
    // failure recorded) when over it, before anything is stored.
    bool charge(std::size_t n) {
        head_bytes += n;
        if (head_bytes > owner->limits_.max_head) {
            owner->fail(431, "request head too large");
            return false;
        }
        return true;
    }

    static int on_message_begin(http_parser* p) {
        impl& s = of(p);
        s.current = request{};
        s.head_bytes = 0;
        s.body_bytes = 0;
        s.in_value = false;
        return 0;
    }
    static int on_url(http_parser* p, const char* at, std::size_t n) {
        impl& s = of(p);
        if (!s.charge(n)) return 1;
        s.current.target.append(at, n);
        return 0;
    }
    static int on_header_field(http_parser* p, const char* at, std::size_t n) {
        impl& s = of(p);
        bool fresh = s.in_value || s.current.headers.empty();
        if (!s.charge(n + (fresh ? 4 : 0))) return 1; // a new header also costs its ": " and CRLF
        if (fresh) {
            if (s.current.headers.size() >= s.owner->limits_.max_headers) {
                s.owner->fail(431, "too many headers");
                return 1;
            }
            s.current.headers.emplace_back();
            s.in_value = false;
        }
        std::string& name = s.current.headers.back().first;
        for (std::size_t i = 0; i < n; ++i) name += static_cast<char>(std::tolower(static_cast<unsigned char>(at[i])));
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, std::size_t n) {
        impl& s = of(p);
        if (!s.charge(n)) return 1;
        if (s.current.headers.empty()) return 1; // cannot happen: a value follows a field
        s.in_value = true;
        s.current.headers.back().second.append(at, n);
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        impl& s = of(p);
        if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
            s.owner->fail(405, "only GET and HEAD are served");
            return -1;
        }
        s.current.method = http_method_str(static_cast<http_method>(p->method));
        s.current.version_minor = p->http_minor;
        s.current.keep_alive = http_should_keep_alive(p) != 0;
        // ULLONG_MAX: no Content-Length (chunked or none).
        if (p->content_length != ULLONG_MAX && p->content_length > s.owner->limits_.max_body) {
            s.owner->fail(413, "request body too large");
            return -1;
        }
        return 0;
    }
    static int on_body(http_parser* p, const char*, std::size_t n) {
        impl& s = of(p);
        s.body_bytes += n; // discarded: GET carries no body worth keeping
        if (s.body_bytes > s.owner->limits_.max_body) {
            s.owner->fail(413, "request body too large");
            return 1;
        }
        return 0;
    }
    static int on_message_complete(http_parser* p) {
        impl& s = of(p);
        if (s.owner->ready_.size() >= s.owner->limits_.max_pending) {
            s.owner->fail(503, "too many pipelined requests");
            return 1;
        }
        s.owner->ready_.push_back(std::move(s.current));
        s.current = request{};
        // Stop at a request that closes the connection: what follows it is not read.
        if (!s.owner->ready_.back().keep_alive) http_parser_pause(p, 1);
        return 0;
    }
};

request_parser::request_parser(parser_limits limits) : impl_(std::make_unique<impl>()), limits_(limits) {
    http_parser_init(&impl_->parser, HTTP_REQUEST);
    impl_->parser.data = impl_.get();
    impl_->owner = this;
    http_parser_settings_init(&impl_->settings);
    impl_->settings.on_message_begin = &impl::on_message_begin;
    impl_->settings.on_url = &impl::on_url;
    impl_->settings.on_header_field = &impl::on_header_field;
    impl_->settings.on_header_value = &impl::on_header_value;
    impl_->settings.on_headers_complete = &impl::on_headers_complete;
    impl_->settings.on_body = &impl::on_body;
    impl_->settings.on_message_complete = &impl::on_message_complete;
}

request_parser::~request_parser() = default;

void request_parser::fail(int status, std::string reason) {
    if (status_ != 0) return;
    status_ = status;
    reason_ = std::move(reason);
}

parse_result request_parser::feed(std::string_view bytes) {
    if (status_ != 0) return parse_result::error;
    if (HTTP_PARSER_ERRNO(&impl_->parser) == HPE_PAUSED) return parse_result::ok; // closing: ignore the rest
    if (bytes.empty()) return parse_result::ok;
    http_parser_execute(&impl_->parser, &impl_->settings, bytes.data(), bytes.size());
    auto err = HTTP_PARSER_ERRNO(&impl_->parser);
    if (err != HPE_OK && err != HPE_PAUSED) fail(400, http_errno_description(err));
    return status_ ? parse_result::error : parse_result::ok;
}

std::optional<request> request_parser::next() {
    if (ready_.empty()) return std::nullopt;
    request r = std::move(ready_.front());
    ready_.pop_front();
    return r;
}

std::string_view status_text(int status) noexcept {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    }
    return "Error";
}

std::string format_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                            std::string_view extra, std::optional<std::size_t> content_length) {
    std::string out;
    out.reserve(160 + body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += status_text(status);
    out += "\r\nContent-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(content_length.value_or(body.size()));
    out += keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
    if (status == 405) out += "Allow: GET, HEAD\r\n";
    out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
    out += extra;
    out += "\r\n";
    out += body;
    return out;
}

} // namespace kamaelia::http
