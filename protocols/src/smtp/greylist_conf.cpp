#include <kamaelia/smtp/greylist_conf.hpp>

#include <kamaelia/util/text.hpp>

#include <set>
#include <sstream>

namespace kamaelia::smtp {

namespace {

const std::set<std::string>& scalar_keys() {
    static const std::set<std::string> k = {"port",      "servername",         "serverid",     "smtp_ip",
                                            "smtp_port", "inactivity_timeout", "greylist_log", "greylist_debuglog"};
    return k;
}
const std::set<std::string>& list_keys() {
    static const std::set<std::string> k = {"allowed_senders", "allowed_sender_nets", "allowed_domains",
                                            "whitelisted_triples", "whitelisted_nonstandard_triples"};
    return k;
}

std::string trim(std::string_view s) { return std::string(kamaelia::trim(s)); }

} // namespace

bool looks_like_greylist_conf(const std::string& text) {
    std::istringstream in(text);
    std::string raw;
    while (std::getline(in, raw)) {
        std::string l = trim(raw);
        if (!l.empty() && l.front() == '[') return false;
    }
    return true;
}

greylist_conf parse_greylist_conf(const std::string& text, const std::string& path) {
    greylist_conf c;
    std::istringstream in(text);
    std::string raw;
    int n = 0;
    std::vector<conf_item>* list = nullptr;
    auto fail = [&](const std::string& why) { throw greylist_conf_error(path + ":" + std::to_string(n) + ": " + why); };
    while (std::getline(in, raw)) {
        ++n;
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        if (list && !raw.empty() && (raw[0] == ' ' || raw[0] == '\t')) {
            std::string item = trim(raw);
            if (!item.empty()) list->push_back({item, n});
            continue;
        }
        list = nullptr;
        if (raw.empty() || raw[0] == '#') continue;
        std::string line = trim(raw);
        if (line.empty()) continue;
        if (raw[0] == ' ' || raw[0] == '\t') fail("indented line outside a list: " + line);
        auto eq = line.find('=');
        if (eq == std::string::npos) {
            if (line.back() != ':') fail("expected 'key = value' or 'key:', got: " + line);
            std::string key = trim(line.substr(0, line.size() - 1));
            if (scalar_keys().count(key)) fail("'" + key + "' takes a value ('" + key + " = ...'), not a list");
            if (!list_keys().count(key)) fail("unknown key '" + key + "'");
            list = &c.lists[key]; // a repeated list appends
            continue;
        }
        std::string key = trim(line.substr(0, eq));
        std::string value = trim(line.substr(eq + 1));
        if (list_keys().count(key)) fail("'" + key + "' is a list ('" + key + ":' then indented items)");
        if (!scalar_keys().count(key)) fail("unknown key '" + key + "'");
        if (value.empty()) fail("empty value for '" + key + "'");
        c.scalars[key] = {value, n};
    }
    return c;
}

} // namespace kamaelia::smtp
