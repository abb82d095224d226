#include "config.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kamaelia::daemon {

namespace {
std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}
} // namespace

config_file config_file::parse(const std::string& text, const std::string& path,
                               const std::map<std::string, std::set<std::string>>& allowed) {
    config_file cf;
    cf.path_ = path;
    std::istringstream in(text);
    std::string raw;
    std::string section;
    int n = 0;
    while (std::getline(in, raw)) {
        ++n;
        std::string line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[') {
            if (line.back() != ']') throw config_error(path + ":" + std::to_string(n) + ": bad section header: " + line);
            section = trim(line.substr(1, line.size() - 2));
            if (!allowed.count(section))
                throw config_error(path + ":" + std::to_string(n) + ": unknown section [" + section + "]");
            continue;
        }
        auto eq = line.find('=');
        if (eq == std::string::npos)
            throw config_error(path + ":" + std::to_string(n) + ": expected key = value, got: " + line);
        if (section.empty())
            throw config_error(path + ":" + std::to_string(n) + ": key outside a section (start with e.g. [kamaelia])");
        std::string key = trim(line.substr(0, eq));
        std::string value = trim(line.substr(eq + 1)); // everything after the first '=' (values may contain '=')
        if (!allowed.at(section).count(key))
            throw config_error(path + ":" + std::to_string(n) + ": unknown key '" + key + "' in [" + section + "]");
        cf.values_[section][key] = {value, n};
    }
    return cf;
}

std::vector<config_translator>& config_translators() {
    static std::vector<config_translator> t;
    return t;
}

config_file config_file::from_values(config_values values, const std::string& path,
                                     const std::map<std::string, std::set<std::string>>& allowed) {
    config_file cf;
    cf.path_ = path;
    for (auto& [section, keys] : values) {
        for (auto& [key, v] : keys) {
            auto a = allowed.find(section);
            if (a == allowed.end() || !a->second.count(key))
                throw config_error(path + ":" + std::to_string(v.line) + ": unknown key '" + key + "' in [" + section + "]");
        }
    }
    cf.values_ = std::move(values);
    return cf;
}

config_file config_file::load(const std::string& path, const std::map<std::string, std::set<std::string>>& allowed) {
    std::ifstream f(path);
    if (!f) throw config_error(path + ": cannot read the config file");
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    bool sections = false;
    {
        std::istringstream in(text);
        std::string raw;
        while (!sections && std::getline(in, raw)) {
            std::string l = trim(raw);
            sections = !l.empty() && l.front() == '[';
        }
    }
    if (!sections) {
        for (auto& t : config_translators())
            if (auto v = t(text, path)) return from_values(std::move(*v), path, allowed);
    }
    return parse(text, path, allowed);
}

const config_value* config_file::find(const std::string& section, const std::string& key) const {
    auto s = values_.find(section);
    if (s == values_.end()) return nullptr;
    auto k = s->second.find(key);
    return k == s->second.end() ? nullptr : &k->second;
}

std::optional<std::string> config_file::get(const std::string& section, const std::string& key) const {
    if (auto* v = find(section, key)) return v->value;
    return std::nullopt;
}

std::optional<std::uint64_t> config_file::get_uint(const std::string& section, const std::string& key) const {
    auto* v = find(section, key);
    if (!v) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    unsigned long long x = std::strtoull(v->value.c_str(), &end, 10);
    if (v->value.empty() || *end || errno || v->value[0] == '-')
        throw config_error(where(*v) + ": " + key + " must be a whole number, got '" + v->value + "'");
    return x;
}

std::optional<std::uint16_t> config_file::get_port(const std::string& section, const std::string& key) const {
    auto x = get_uint(section, key);
    if (x && *x > 65535) throw config_error(where(*find(section, key)) + ": " + key + " must be 0..65535");
    if (!x) return std::nullopt;
    return static_cast<std::uint16_t>(*x);
}

std::optional<double> config_file::get_seconds(const std::string& section, const std::string& key) const {
    auto* v = find(section, key);
    if (!v) return std::nullopt;
    char* end = nullptr;
    double x = std::strtod(v->value.c_str(), &end);
    if (v->value.empty() || *end || x < 0)
        throw config_error(where(*v) + ": " + key + " must be a number of seconds, got '" + v->value + "'");
    return x;
}

} // namespace kamaelia::daemon
