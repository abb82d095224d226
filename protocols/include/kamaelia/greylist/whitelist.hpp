// Static whitelists in postgrey's formats.
//
// Clients (whitelist_clients): one entry a line, '#' comments;
//   /regex/            matched against the client's host name
//   1.2.3.4, 1.2.3     an address, or a partial one (a /8, /16, /24 network)
//   1.2.3.0/24, 2001:db8::/32, 2001:db8::1   CIDR networks, IPv6 addresses
//   example.com        the client's host name is it or ends in ".example.com"
// Recipients (whitelist_recipients):
//   /regex/            matched against the recipient address
//   postmaster@        that local part at any domain
//   user@example.com   that address
//   example.com        that domain and its subdomains
// Sender domains: a domain and its subdomains.
#pragma once

#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/triplet.hpp>

#include <istream>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia::greylist {

class whitelist {
public:
    // Adds one entry; false for a malformed one (a bad regex or network).
    bool add_client(std::string_view entry);
    bool add_recipient(std::string_view entry);
    bool add_sender_domain(std::string_view entry);

    // Reads a postgrey-format file. Returns the malformed lines as
    // "file:line: text" (they are skipped); throws std::runtime_error when
    // the file cannot be read.
    std::vector<std::string> load_clients(const std::string& path);
    std::vector<std::string> load_recipients(const std::string& path);
    std::vector<std::string> load_clients(std::istream& in, const std::string& name);
    std::vector<std::string> load_recipients(std::istream& in, const std::string& name);

    // The reason when `r` is whitelisted ("client 10.0.0.0/8"), else nullopt.
    std::optional<std::string> match(const request& r) const;

    std::size_t size() const noexcept;

private:
    struct network {
        ip_address net;
        unsigned prefix;
        std::string text;
    };
    struct pattern {
        std::regex re;
        std::string text;
    };
    bool add_pattern(std::string_view entry, std::vector<pattern>& to); // "/regex/"
    std::vector<network> client_nets_;
    std::vector<std::string> client_names_;
    std::vector<pattern> client_res_;
    std::vector<std::string> rcpt_locals_; // "postmaster"
    std::vector<std::string> rcpt_addresses_;
    std::vector<std::string> rcpt_domains_;
    std::vector<pattern> rcpt_res_;
    std::vector<std::string> sender_domains_;
};

// Whether `name` is `domain` or a subdomain of it (both lower case).
bool domain_matches(std::string_view name, std::string_view domain);

} // namespace kamaelia::greylist
