#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

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
            if (line.back() != ']')
                throw config_error(path + ":" + std::to_string(n) + ": bad section header: " + line);
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
                throw config_error(path + ":" + std::to_string(v.line) + ": unknown key '" + key + "' in [" + section +
                                   "]");
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

config_file config_file::empty(const std::string& path) {
    config_file cf;
    cf.path_ = path;
    return cf;
}

void config_file::overlay(const config_values& over) {
    for (const auto& [section, keys] : over)
        for (const auto& [key, v] : keys) values_[section][key] = v;
}

std::string env_name(const std::string& section, const std::string& key) {
    std::string n = "KAMAELIA_";
    for (const std::string* part : {&section, &key}) {
        if (part == &key) n += '_';
        for (char c : *part) n += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return n;
}

std::optional<std::string> env_get(const std::vector<std::string>& env, const std::string& name) {
    for (const auto& e : env)
        if (e.size() > name.size() && e[name.size()] == '=' && e.compare(0, name.size(), name) == 0)
            return e.substr(name.size() + 1);
    return std::nullopt;
}

namespace {
// KAMAELIA_GREY_..., KAMAELIA_KAMAELIA_...: a variable in a section's name space.
bool in_a_section(const std::string& name, const config_keys_map& allowed) {
    for (const auto& [section, keys] : allowed) {
        std::string prefix = env_name(section, "");
        if (name.compare(0, prefix.size(), prefix) == 0) return true;
    }
    return false;
}
} // namespace

std::vector<std::string> env_ignored(const std::vector<std::string>& env, const config_keys_map& allowed) {
    std::set<std::string> known = {env_config, env_data_dir};
    for (const auto& [section, keys] : allowed)
        for (const auto& key : keys) known.insert(env_name(section, key));
    std::vector<std::string> out;
    for (const auto& e : env) {
        std::string name = e.substr(0, e.find('='));
        if (name.compare(0, 9, "KAMAELIA_") == 0 && !known.count(name) && !in_a_section(name, allowed))
            out.push_back(name);
    }
    return out;
}

config_values env_values(const std::vector<std::string>& env, const config_keys_map& allowed) {
    // Every key's name; two keys with one name (section "a-b" key "c" and
    // section "a" key "b-c") cannot be told apart: such a variable is refused.
    std::map<std::string, std::pair<std::string, std::string>> names;
    std::set<std::string> ambiguous;
    for (const auto& [section, keys] : allowed)
        for (const auto& key : keys) {
            auto n = env_name(section, key);
            if (!names.emplace(n, std::make_pair(section, key)).second) ambiguous.insert(n);
        }
    config_values out;
    const std::string prefix = "KAMAELIA_";
    for (const auto& e : env) {
        if (e.compare(0, prefix.size(), prefix) != 0) continue;
        auto eq = e.find('=');
        std::string name = e.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : e.substr(eq + 1);
        if (name == env_config) continue;
        std::pair<std::string, std::string> sk;
        if (name == env_data_dir) {
            sk = {"kamaelia", "data-dir"};
            if (!allowed.count("kamaelia") || !allowed.at("kamaelia").count("data-dir"))
                throw config_error(name + ": no data directory to set here");
            // Both spellings of one key must agree.
            if (auto other = env_get(env, env_name("kamaelia", "data-dir")); other && *other != value)
                throw config_error(name + " and " + env_name("kamaelia", "data-dir") + " disagree");
        } else if (ambiguous.count(name)) {
            throw config_error(name + ": names two config keys; use the config file for this one");
        } else if (auto it = names.find(name); it != names.end()) {
            sk = it->second;
        } else if (in_a_section(name, allowed)) {
            throw config_error(name + ": unknown environment variable (KAMAELIA_CONFIG, KAMAELIA_DATA_DIR or "
                                      "KAMAELIA_<SECTION>_<KEY> for a config key, e.g. KAMAELIA_GREY_UPSTREAM)");
        } else {
            continue; // not ours by the rule (a build script's KAMAELIA_SOURCE_DIR): env_ignored names it
        }
        auto trimmed = trim(value);
        out[sk.first][sk.second] = config_value{trimmed, 0, name};
    }
    return out;
}

std::vector<std::string> process_environment() {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
    return env;
}

std::optional<config_file> load_config(const std::string& flag_path, const std::vector<std::string>& env,
                                       const config_keys_map& allowed) {
    std::optional<config_file> cf;
    if (!flag_path.empty()) {
        cf = config_file::load(flag_path, allowed);
    } else if (auto p = env_get(env, env_config); p && !p->empty()) {
        std::error_code ec;
        if (std::filesystem::exists(*p, ec)) cf = config_file::load(*p, allowed);
    }
    auto ev = env_values(env, allowed);
    if (ev.empty()) return cf;
    if (!cf) cf = config_file::empty("(environment)");
    cf->overlay(ev);
    return cf;
}

std::size_t parse_threads(const std::string& text, std::size_t auto_value) {
    if (text == "auto") return auto_value == 0 ? 1 : std::min(auto_value, max_threads);
    std::size_t n = 0;
    bool digits = !text.empty() && text.size() <= 5;
    for (char c : text) {
        if (c < '0' || c > '9') {
            digits = false;
            break;
        }
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!digits || n == 0 || n > max_threads)
        throw config_error("threads: expected auto or a number of threads from 1 to " + std::to_string(max_threads) +
                           ", got '" + text + "'");
    return n;
}

std::string default_data_dir() {
    const char* d = std::getenv(env_data_dir);
    return d && *d ? d : "./var";
}

} // namespace kamaelia::daemon
