// fuzz-sources: protocols/src/smtp/command.cpp protocols/src/smtp/line_reader.cpp protocols/src/smtp/reply.cpp protocols/src/smtp/network.cpp
// The SMTP proxy's parsers on arbitrary bytes: framing (command and text
// limits), the command parser, the upstream reply reader, client networks.
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/line_reader.hpp>
#include <kamaelia/smtp/network.hpp>
#include <kamaelia/smtp/reply.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace kamaelia::smtp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // Feed in uneven pieces, as a socket would.
    line_reader r(size % 2 ? 512 : 1001);
    std::size_t step = 1 + (size % 7);
    for (std::size_t i = 0; i < in.size(); i += step) {
        r.feed(in.substr(i, step));
        while (auto l = r.next()) {
            if (l->too_long) continue;
            // The limit holds, counted on the wire: the text and its ending
            // (CRLF, or a bare LF: 511 octets and LF make 512).
            if (l->text.size() + (l->crlf ? 2 : 1) > r.limit()) std::abort();
            command c = parse_command(l->text);
            if (c.ok() && (c.what == verb::mail || c.what == verb::rcpt)) {
                if (c.address.size() > 256) std::abort();
                (void)domain_of(c.address);
                (void)c.param("SIZE");
            }
            if (!c.ok() && (c.error.size() < 4 || c.error[3] != ' ')) std::abort(); // always a full reply
        }
        if (r.buffered() > 1001 + step) std::abort(); // memory stays bounded
    }
    (void)parse_command(in);
    reply_reader rr;
    rr.feed(in);
    while (auto rep = rr.next()) {
        (void)parse_ehlo(*rep);
        (void)rep->wire();
    }
    if (auto n = network::parse(in)) (void)n->contains(in);
    return 0;
}
