#include <kamaelia/smtp/trace.hpp>

#include <cstdio>

namespace kamaelia::smtp {

std::string rfc5322_date(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

namespace {
// Header text must stay one physical line per fold and free of CR/LF.
std::string clean(std::string_view s) {
    std::string r;
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        r += (u < 32 || u == 127 || c == '(' || c == ')') ? '_' : c;
    }
    return r.substr(0, 255);
}
} // namespace

std::string received_header(const trace_info& t) {
    std::string ip = t.client_ip.find(':') != std::string::npos ? "IPv6:" + t.client_ip : t.client_ip;
    std::string h = "Received: from " + clean(t.helo.empty() ? "unknown" : t.helo) + " ([" + clean(ip) + "])\r\n";
    h += "\tby " + clean(t.by) + " (Kamaelia Grey) with " + (t.esmtp ? "ESMTP" : "SMTP") + " id " + clean(t.id);
    if (!t.recipient.empty()) h += "\r\n\tfor <" + clean(t.recipient) + ">";
    h += "; " + rfc5322_date(t.when) + "\r\n";
    return h;
}

std::string x_greylist_header(long long delayed_seconds, std::string_view host, std::time_t when) {
    return "X-Greylist: delayed " + std::to_string(delayed_seconds) + " seconds by kamaelia-grey at " + clean(host) +
           "; " + rfc5322_date(when) + "\r\n";
}

std::string xtext(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string r;
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 33 || u > 126 || c == '+' || c == '=') {
            r += '+';
            r += hex[u >> 4];
            r += hex[u & 15];
        } else {
            r += c;
        }
    }
    return r;
}

std::string log_stamp(std::time_t secs, int millis) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    return buf;
}

} // namespace kamaelia::smtp
