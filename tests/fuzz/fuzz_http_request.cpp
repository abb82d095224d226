// fuzz-sources: protocols/src/http/request_parser.cpp
// fuzz-libs: -lhttp_parser
// The console's HTTP request parsing on arbitrary bytes: never crash, never
// keep more than its limits allow, and reach the same requests whether the
// bytes arrive at once or one by one.
#include <kamaelia/http/request_parser.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {
std::vector<kamaelia::http::request> run(std::string_view in, std::size_t step, bool& failed) {
    kamaelia::http::parser_limits lim{.max_head = 512, .max_headers = 8, .max_body = 0, .max_pending = 1000};
    kamaelia::http::request_parser p(lim);
    std::vector<kamaelia::http::request> out;
    for (std::size_t i = 0; i < in.size(); i += step) {
        bool error = p.feed(in.substr(i, step)) == kamaelia::http::parse_result::error;
        // Requests completed before an error still count (as they would in one feed).
        while (auto r = p.next()) {
            if (r->target.size() > lim.max_head || r->headers.size() > lim.max_headers) std::abort();
            if (r->method != "GET" && r->method != "HEAD") std::abort();
            out.push_back(std::move(*r));
        }
        if (error) break;
    }
    failed = p.failed(); // which error comes first may depend on the split; that one does not
    return out;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    bool s1 = false, s2 = false;
    auto whole = run(in, in.size() ? in.size() : 1, s1);
    auto bytes = run(in, 1, s2);
    if (whole.size() != bytes.size() || s1 != s2) std::abort();
    for (std::size_t i = 0; i < whole.size(); ++i)
        if (whole[i].target != bytes[i].target || whole[i].headers != bytes[i].headers) std::abort();
    return 0;
}
