#include <kamaelia/smtp/network.hpp>

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace kamaelia::smtp {

namespace {

// Parses an address into 4 or 16 bytes; v6 says which.
bool parse_address(std::string_view text, std::array<std::uint8_t, 16>& out, bool& v6) {
    if (text.size() >= INET6_ADDRSTRLEN) return false;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    out = {};
    if (inet_pton(AF_INET, buf, out.data()) == 1) {
        v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out.data()) == 1) {
        static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(out.data(), mapped, 12) == 0) {
            std::memmove(out.data(), out.data() + 12, 4);
            std::memset(out.data() + 4, 0, 12);
            v6 = false;
        } else {
            v6 = true;
        }
        return true;
    }
    return false;
}

} // namespace

std::optional<network> network::parse(std::string_view text) {
    network n;
    if (text.empty()) return std::nullopt;
    auto slash = text.find('/');
    if (slash != std::string_view::npos) {
        std::string_view bits = text.substr(slash + 1);
        unsigned p = 0;
        auto r = std::from_chars(bits.data(), bits.data() + bits.size(), p);
        if (bits.empty() || r.ptr != bits.data() + bits.size() || r.ec != std::errc()) return std::nullopt;
        if (!parse_address(text.substr(0, slash), n.bytes_, n.v6_)) return std::nullopt;
        if (p > (n.v6_ ? 128u : 32u)) return std::nullopt;
        n.prefix_ = p;
    } else if (parse_address(text, n.bytes_, n.v6_)) {
        n.prefix_ = n.v6_ ? 128 : 32;
    } else {
        // A dotted IPv4 prefix: 1 to 3 whole octets, optional trailing dot.
        std::string_view t = text;
        if (t.back() == '.') t.remove_suffix(1);
        unsigned octets = 0;
        while (!t.empty()) {
            auto dot = t.find('.');
            std::string_view o = t.substr(0, dot);
            unsigned v = 0;
            auto r = std::from_chars(o.data(), o.data() + o.size(), v);
            if (o.empty() || o.size() > 3 || r.ptr != o.data() + o.size() || v > 255 || octets == 3)
                return std::nullopt;
            n.bytes_[octets++] = static_cast<std::uint8_t>(v);
            if (dot == std::string_view::npos) break;
            t.remove_prefix(dot + 1);
            if (t.empty()) return std::nullopt;
        }
        if (octets == 0) return std::nullopt;
        n.v6_ = false;
        n.prefix_ = octets * 8;
    }
    // Canonical: host bits cleared.
    for (unsigned i = 0; i < 16; ++i) {
        unsigned lo = i * 8;
        if (n.prefix_ <= lo)
            n.bytes_[i] = 0;
        else if (n.prefix_ < lo + 8)
            n.bytes_[i] &= static_cast<std::uint8_t>(0xff << (lo + 8 - n.prefix_));
    }
    return n;
}

bool network::contains(std::string_view address) const {
    std::array<std::uint8_t, 16> a{};
    bool v6 = false;
    if (!parse_address(address, a, v6) || v6 != v6_) return false;
    unsigned full = prefix_ / 8, rest = prefix_ % 8;
    if (std::memcmp(a.data(), bytes_.data(), full) != 0) return false;
    if (rest == 0) return true;
    std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == bytes_[full];
}

std::string network::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6_ ? AF_INET6 : AF_INET, bytes_.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(prefix_);
}

} // namespace kamaelia::smtp
