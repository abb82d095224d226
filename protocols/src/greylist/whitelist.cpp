#include <kamaelia/greylist/whitelist.hpp>

#include <fstream>
#include <stdexcept>

namespace kamaelia::greylist {

namespace {

std::string_view strip(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

std::optional<std::regex> make_regex(std::string_view entry) {
    if (entry.size() < 3 || entry.front() != '/' || entry.back() != '/') return std::nullopt;
    try {
        return std::regex(std::string(entry.substr(1, entry.size() - 2)),
                          std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
    } catch (const std::regex_error&) {
        return std::nullopt;
    }
}

bool all_digits_and_dots(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
    return true;
}

template <class Add>
std::vector<std::string> load(std::istream& in, const std::string& name, Add add) {
    std::vector<std::string> bad;
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
        auto hash = line.find('#');
        std::string_view entry = strip(std::string_view(line).substr(0, hash));
        if (entry.empty()) continue;
        if (!add(entry)) bad.push_back(name + ":" + std::to_string(n) + ": " + std::string(entry));
    }
    return bad;
}

} // namespace

bool domain_matches(std::string_view name, std::string_view domain) {
    if (domain.empty() || name.size() < domain.size()) return false;
    if (name == domain) return true;
    return name.size() > domain.size() && name.substr(name.size() - domain.size()) == domain &&
           name[name.size() - domain.size() - 1] == '.';
}

bool whitelist::add_pattern(std::string_view entry, std::vector<pattern>& to) {
    auto re = make_regex(entry);
    if (!re) return false;
    to.push_back({std::move(*re), std::string(entry)});
    return true;
}

bool whitelist::add_client(std::string_view raw) {
    std::string_view entry = strip(raw);
    if (entry.empty()) return false;
    if (entry.front() == '/') return add_pattern(entry, client_res_);
    std::string_view addr = entry;
    std::optional<unsigned> prefix;
    if (auto slash = entry.find('/'); slash != std::string_view::npos) {
        addr = entry.substr(0, slash);
        auto p = entry.substr(slash + 1);
        if (p.empty() || p.size() > 3 || !all_digits_and_dots(p) || p.find('.') != std::string_view::npos) return false;
        prefix = static_cast<unsigned>(std::stoi(std::string(p)));
    }
    if (all_digits_and_dots(addr)) {
        // An IPv4 address, possibly partial ("10.1" is 10.1.0.0/16).
        std::string a(addr);
        while (!a.empty() && a.back() == '.') a.pop_back();
        int dots = 0;
        for (char c : a) dots += c == '.';
        if (dots > 3) return false;
        unsigned implied = 8u * static_cast<unsigned>(dots + 1);
        for (int i = dots; i < 3; ++i) a += ".0";
        auto ip = parse_ip(a);
        if (!ip || (prefix && *prefix > 32)) return false;
        client_nets_.push_back({*ip, prefix.value_or(implied), std::string(entry)});
        return true;
    }
    if (addr.find(':') != std::string_view::npos) {
        auto ip = parse_ip(addr);
        if (!ip) return false;
        unsigned full = ip->v4 ? 32 : 128;
        if (prefix && *prefix > full) return false;
        client_nets_.push_back({*ip, prefix.value_or(full), std::string(entry)});
        return true;
    }
    if (prefix) return false;
    std::string name = to_lower(addr);
    while (!name.empty() && name.front() == '.') name.erase(0, 1);
    if (name.empty()) return false;
    client_names_.push_back(std::move(name));
    return true;
}

bool whitelist::add_recipient(std::string_view raw) {
    std::string_view entry = strip(raw);
    if (entry.empty()) return false;
    if (entry.front() == '/') return add_pattern(entry, rcpt_res_);
    std::string e = to_lower(entry);
    auto at = e.find('@');
    if (at == std::string::npos) {
        rcpt_domains_.push_back(std::move(e));
    } else if (at + 1 == e.size()) {
        if (at == 0) return false;
        rcpt_locals_.push_back(e.substr(0, at));
    } else {
        rcpt_addresses_.push_back(std::move(e));
    }
    return true;
}

bool whitelist::add_sender_domain(std::string_view raw) {
    std::string d = to_lower(strip(raw));
    if (!d.empty() && d.front() == '@') d.erase(0, 1);
    if (d.empty()) return false;
    sender_domains_.push_back(std::move(d));
    return true;
}

std::vector<std::string> whitelist::load_clients(std::istream& in, const std::string& name) {
    return load(in, name, [this](std::string_view e) { return add_client(e); });
}

std::vector<std::string> whitelist::load_recipients(std::istream& in, const std::string& name) {
    return load(in, name, [this](std::string_view e) { return add_recipient(e); });
}

std::vector<std::string> whitelist::load_clients(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read the client whitelist " + path);
    return load_clients(in, path);
}

std::vector<std::string> whitelist::load_recipients(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read the recipient whitelist " + path);
    return load_recipients(in, path);
}

std::optional<std::string> whitelist::match(const request& r) const {
    std::string name = to_lower(r.client_name);
    bool named = !name.empty() && name != "unknown";
    if (named) {
        for (const auto& n : client_names_)
            if (domain_matches(name, n)) return "client " + n;
        for (const auto& p : client_res_)
            if (std::regex_search(name, p.re)) return "client " + p.text;
    }
    if (!client_nets_.empty()) {
        if (auto ip = parse_ip(r.client_address))
            for (const auto& n : client_nets_)
                if (in_network(*ip, n.net, n.prefix)) return "client " + n.text;
    }
    std::string rcpt = normalise_recipient(r.recipient);
    if (!rcpt.empty()) {
        auto at = rcpt.rfind('@');
        std::string local = at == std::string::npos ? rcpt : rcpt.substr(0, at);
        std::string domain = at == std::string::npos ? std::string() : rcpt.substr(at + 1);
        for (const auto& l : rcpt_locals_)
            if (l == local) return "recipient " + l + "@";
        for (const auto& a : rcpt_addresses_)
            if (a == rcpt) return "recipient " + a;
        for (const auto& d : rcpt_domains_)
            if (domain_matches(domain, d)) return "recipient " + d;
        for (const auto& p : rcpt_res_)
            if (std::regex_search(rcpt, p.re)) return "recipient " + p.text;
    }
    if (!sender_domains_.empty()) {
        std::string d = domain_of(r.sender);
        for (const auto& s : sender_domains_)
            if (domain_matches(d, s)) return "sender domain " + s;
    }
    return std::nullopt;
}

std::size_t whitelist::size() const noexcept {
    return client_nets_.size() + client_names_.size() + client_res_.size() + rcpt_locals_.size() +
           rcpt_addresses_.size() + rcpt_domains_.size() + rcpt_res_.size() + sender_domains_.size();
}

} // namespace kamaelia::greylist
