#include <kamaelia/greylist/triplet.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace kamaelia::greylist {

std::string to_lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '<')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '>' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

using parsed_address = ip_address;

bool parse_address(std::string_view text, parsed_address& out) {
    if (text.empty() || text.size() > 63) return false;
    char buf[64];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 0;
    // A zone index (fe80::1%eth0) is not part of the network.
    if (char* pct = std::strchr(buf, '%')) *pct = 0;
    if (inet_pton(AF_INET, buf, out.bytes.data()) == 1) {
        out.v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(out.bytes.data(), mapped, 12) == 0) {
            std::memmove(out.bytes.data(), out.bytes.data() + 12, 4);
            out.v4 = true;
        }
        return true;
    }
    return false;
}

std::string format_address(const parsed_address& a) {
    char buf[INET6_ADDRSTRLEN];
    if (a.v4) {
        // glibc's inet_ntop formats IPv4 with sprintf: ~1,300 instructions,
        // twice a decision (the triplet's network, the client's address).
        std::size_t n = 0;
        for (int i = 0; i < 4; ++i) {
            if (i) buf[n++] = '.';
            unsigned v = a.bytes[i];
            if (v >= 100) buf[n++] = static_cast<char>('0' + v / 100);
            if (v >= 10) buf[n++] = static_cast<char>('0' + v / 10 % 10);
            buf[n++] = static_cast<char>('0' + v % 10);
        }
        return std::string(buf, n);
    }
    if (!inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf)) return {};
    return buf;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

// prvs=TAG=user / msprvs1=TAG=user / btv1==TAG==user -> user
std::string_view strip_batv(std::string_view local) {
    for (std::string_view p : {std::string_view("prvs="), std::string_view("msprvs1="), std::string_view("btv1==")}) {
        if (local.substr(0, p.size()) == p) {
            auto rest = local.substr(p.size());
            auto eq = rest.find('=');
            if (eq == std::string_view::npos) return local;
            rest = rest.substr(eq + 1);
            if (!rest.empty() && rest.front() == '=') rest.remove_prefix(1); // btv1's double '='
            return rest.empty() ? local : rest;
        }
    }
    return local;
}

// SRS0=HHH=TT=orig-domain=orig-user / SRS1=HHH=fwd==HHH=TT=orig-domain=orig-user
// -> orig-user@orig-domain (the part after the last three '=' separated fields)
bool unwrap_srs(std::string_view local, std::string& user, std::string& domain) {
    if (local.substr(0, 5) != "srs0=" && local.substr(0, 5) != "srs1=") return false;
    auto u = local.rfind('=');
    if (u == std::string_view::npos || u + 1 >= local.size()) return false;
    auto d = local.rfind('=', u - 1);
    if (d == std::string_view::npos || d + 1 >= u) return false;
    user = std::string(local.substr(u + 1));
    domain = std::string(local.substr(d + 1, u - d - 1));
    return true;
}

} // namespace

std::optional<ip_address> parse_ip(std::string_view text) {
    ip_address a;
    if (!parse_address(trim(text), a)) return std::nullopt;
    return a;
}

bool in_network(const ip_address& a, const ip_address& net, unsigned prefix) {
    if (a.v4 != net.v4) return false;
    prefix = std::min(prefix, a.v4 ? 32u : 128u);
    for (unsigned i = 0; i < prefix / 8; ++i)
        if (a.bytes[i] != net.bytes[i]) return false;
    if (unsigned rest = prefix % 8) {
        auto mask = static_cast<unsigned char>(0xff00u >> rest);
        if ((a.bytes[prefix / 8] & mask) != (net.bytes[prefix / 8] & mask)) return false;
    }
    return true;
}

std::string canonical_address(std::string_view address) {
    parsed_address a;
    if (!parse_address(trim(address), a)) return to_lower(address);
    return format_address(a);
}

std::string client_network(std::string_view address, unsigned ipv4_prefix, unsigned ipv6_prefix) {
    parsed_address a;
    if (!parse_address(trim(address), a)) return to_lower(address);
    unsigned bits = a.v4 ? std::min(ipv4_prefix, 32u) : std::min(ipv6_prefix, 128u);
    unsigned total = a.v4 ? 32 : 128;
    for (unsigned i = bits; i < total; ++i) a.bytes[i / 8] &= static_cast<unsigned char>(~(0x80u >> (i % 8)));
    std::string net = format_address(a);
    char suffix[5] = {'/'};
    char* end = std::to_chars(suffix + 1, suffix + sizeof suffix, bits).ptr;
    net.append(suffix, end);
    return net;
}

std::string normalise_sender(std::string_view sender) {
    std::string s = to_lower(trim(sender));
    auto at = s.rfind('@');
    if (at == std::string::npos) return s;
    // Views into `s` (or the SRS parts): one allocation for the result.
    std::string_view local(s.data(), at);
    std::string_view domain = std::string_view(s).substr(at + 1);
    std::string srs_user, srs_domain;
    std::string_view user;
    if (unwrap_srs(local, srs_user, srs_domain)) {
        user = srs_user;
        domain = srs_domain;
    } else {
        user = strip_batv(local);
    }
    if (auto plus = user.find('+'); plus != std::string_view::npos && plus > 0) user = user.substr(0, plus);
    // Every all-digit word (Perl's \b\d+\b) becomes '#'.
    std::string out;
    out.reserve(user.size() + 1 + domain.size());
    for (std::size_t i = 0; i < user.size();) {
        if (is_word(user[i])) {
            std::size_t j = i;
            bool digits = true;
            for (; j < user.size() && is_word(user[j]); ++j)
                if (!is_digit(user[j])) digits = false;
            if (digits)
                out += '#';
            else
                out.append(user.substr(i, j - i));
            i = j;
        } else {
            out += user[i++];
        }
    }
    out += '@';
    out.append(domain);
    return out;
}

std::string normalise_recipient(std::string_view recipient) { return to_lower(trim(recipient)); }

triplet make_triplet(std::string_view client_address, std::string_view sender, std::string_view recipient,
                     unsigned ipv4_prefix, unsigned ipv6_prefix) {
    return {client_network(client_address, ipv4_prefix, ipv6_prefix), normalise_sender(sender),
            normalise_recipient(recipient)};
}

std::string domain_of(std::string_view address) {
    auto a = trim(address);
    auto at = a.rfind('@');
    if (at == std::string_view::npos) return {};
    return to_lower(a.substr(at + 1));
}

} // namespace kamaelia::greylist
