// The greylist key: (client network, sender, recipient), normalised the way
// postgrey does it so that a retry from the same pool, a VERP/BATV/SRS
// sender or a different spelling of the same address meets the same row.
// Pure functions, no I/O.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::greylist {

struct triplet {
    std::string client_net; // "203.0.114.0/24", "2001:db8:1:3::/64", or the text as given if unparsable
    std::string sender;     // normalised, lower-cased; empty for the null sender <>
    std::string recipient;  // lower-cased
    bool operator==(const triplet&) const = default;
};

// ASCII lower case (addresses and host names; no locale).
std::string to_lower(std::string_view s);

// The network of `address` (IPv4 or IPv6 text; an IPv4-mapped IPv6 address
// counts as IPv4) under the given prefix lengths, as "net/len". Text that is
// not an address comes back lower-cased, unchanged otherwise.
std::string client_network(std::string_view address, unsigned ipv4_prefix, unsigned ipv6_prefix);

// A canonical text form of an address ("::ffff:1.2.3.4" -> "1.2.3.4",
// IPv6 compressed and lower-case); the input if it is not an address.
std::string canonical_address(std::string_view address);

// postgrey's sender substitutions, plus SRS: lower case; BATV
// (prvs=TAG=user, msprvs1=TAG=user, btv1==TAG==user) -> user; SRS0/SRS1 ->
// the original user@domain; "+extension" dropped; every all-digit word of
// the local part (VERP numbers) -> "#".
std::string normalise_sender(std::string_view sender);

// Lower case, angle brackets and surrounding blanks removed.
std::string normalise_recipient(std::string_view recipient);

// A parsed IP address; an IPv4-mapped IPv6 address is IPv4 (first 4 bytes).
struct ip_address {
    bool v4 = false;
    std::array<unsigned char, 16> bytes{};
};
std::optional<ip_address> parse_ip(std::string_view text);
// Whether `a` lies in net/prefix (same family only).
bool in_network(const ip_address& a, const ip_address& net, unsigned prefix);

triplet make_triplet(std::string_view client_address, std::string_view sender, std::string_view recipient,
                     unsigned ipv4_prefix = 24, unsigned ipv6_prefix = 64);

// The domain of an address (after the last '@'), lower-cased; empty if none.
std::string domain_of(std::string_view address);

} // namespace kamaelia::greylist
