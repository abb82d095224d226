// Trace headers the proxy adds (RFC 5321 §4.4) and small encodings for the
// upstream dialogue. Pure.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace kamaelia::smtp {

// "Thu, 26 Nov 2026 01:02:03 +0000" (RFC 5322 date-time, UTC).
std::string rfc5322_date(std::time_t t);

struct trace_info {
    std::string helo;      // what the client said in HELO/EHLO
    std::string client_ip; // the peer address
    std::string by;        // our server name
    std::string id;        // session/transaction id
    bool esmtp = true;     // EHLO (ESMTP) or HELO (SMTP)
    std::string recipient; // "for <...>" when the message has exactly one
    std::time_t when = 0;
};

// The full "Received: ..." header, folded, ending in CRLF.
std::string received_header(const trace_info& t);

// "X-Greylist: delayed N seconds by kamaelia-grey at HOST; DATE\r\n".
std::string x_greylist_header(long long delayed_seconds, std::string_view host, std::time_t when);

// RFC 3461 xtext (for XFORWARD values): '+', '=' and bytes outside 33..126 become +XX.
std::string xtext(std::string_view s);

// "YYYYMMDDhhmmss.mmm" UTC, the original's session-log stamp.
std::string log_stamp(std::time_t secs, int millis);

} // namespace kamaelia::smtp
