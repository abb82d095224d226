// Client networks for allowed_sender_nets and the like: CIDR (a.b.c.d/n,
// x::/n), single addresses, and greylist.conf's dotted prefixes ("192.168.2"
// means 192.168.2.0/24 -- on an octet boundary, never a string prefix,
// which would also match 192.168.20.x). Pure (inet_pton).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::smtp {

class network {
public:
    // nullopt for text that is none of the accepted forms.
    static std::optional<network> parse(std::string_view text);
    // An IPv4 or IPv6 address as text; IPv4-mapped IPv6 (::ffff:a.b.c.d)
    // counts as IPv4. Garbage never matches.
    bool contains(std::string_view address) const;
    std::string to_string() const;

private:
    bool v6_ = false;
    unsigned prefix_ = 0;
    std::array<std::uint8_t, 16> bytes_{};
};

} // namespace kamaelia::smtp
