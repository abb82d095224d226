// HTTP/1.1 request heads, parsed incrementally by nodejs' http-parser
// (Debian's libhttp-parser-dev), not by hand.
//
//   kamaelia::http::request_parser p({.max_head = 8192});
//   auto r = p.feed(bytes);              // any split of the stream
//   while (auto req = p.next()) ...      // complete requests, in order
//   if (r == parse_result::error) reply p.status() (400, 405, 413, 431) and close
//
// Every size from the wire is checked before it is stored: the request line
// and headers together against max_head, header count against max_headers,
// a body (none is expected: GET only) against max_body, and pipelined
// requests waiting to be answered against max_pending. Only GET and HEAD
// are accepted; anything else is 405 and ends the connection.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kamaelia::http {

struct request {
    std::string method;                                       // GET or HEAD
    std::string target;                                       // as sent: "/api/graph?x=1"
    std::vector<std::pair<std::string, std::string>> headers; // names lower-cased
    bool keep_alive = true;
    int version_minor = 1;

    std::string_view path() const; // target without the query
    std::optional<std::string_view> header(std::string_view lower_name) const;
};

struct parser_limits {
    std::size_t max_head = 8192; // request line + headers, bytes
    std::size_t max_headers = 64;
    std::size_t max_body = 0;    // GET carries none
    std::size_t max_pending = 8; // parsed, not yet taken by next()
};

enum class parse_result { ok, error };

class request_parser {
public:
    explicit request_parser(parser_limits limits = {});
    ~request_parser();
    request_parser(const request_parser&) = delete;
    request_parser& operator=(const request_parser&) = delete;

    // Feeds bytes; after an error every later feed is an error too.
    parse_result feed(std::string_view bytes);
    std::optional<request> next();
    bool failed() const noexcept { return status_ != 0; }
    // The status to answer a failed stream with (400, 405, 413, 431, 503).
    int status() const noexcept { return status_; }
    const std::string& reason() const noexcept { return reason_; }

    struct impl;

private:
    friend struct impl;
    void fail(int status, std::string reason);
    std::unique_ptr<impl> impl_;
    parser_limits limits_;
    std::deque<request> ready_;
    int status_ = 0;
    std::string reason_;
};

// Status line text for the codes the console uses.
std::string_view status_text(int status) noexcept;

// A whole response: status line, Content-Type, Content-Length, Connection,
// `extra` header lines (each ending in \r\n), then the body (omitted for HEAD
// by the caller passing an empty body with content_length set).
std::string format_response(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                            std::string_view extra = {}, std::optional<std::size_t> content_length = {});

} // namespace kamaelia::http
