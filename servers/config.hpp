// The daemon's configuration: defaults, then the config file, then flags
// (a flag wins over the file, the file over the default).
//
// File syntax (INI): `# comment`, `[section]`, `key = value`. Sections:
// [kamaelia] (log-level, log-file, data-dir) and one per server ([greeter],
// [chat], ...). An unknown section or key is an error naming its line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace kamaelia::daemon {

class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct config_value {
    std::string value;
    int line = 0;
};

class config_file;

// A module may accept a whole config file in a syntax of its own (grey takes
// Kamaelia Grey's greylist.conf). A file without any [section] line is
// offered to each translator; the first that returns values wins. Values
// keep the line numbers of the original file.
using config_values = std::map<std::string, std::map<std::string, config_value>>;
using config_translator = std::function<std::optional<config_values>(const std::string& text, const std::string& path)>;
std::vector<config_translator>& config_translators();

class config_file {
public:
    // Parses `text` (named `path` in errors); `allowed` maps each section to its keys.
    static config_file parse(const std::string& text, const std::string& path,
                             const std::map<std::string, std::set<std::string>>& allowed);
    static config_file load(const std::string& path, const std::map<std::string, std::set<std::string>>& allowed);
    // Values a translator produced, checked against `allowed` like a parsed file.
    static config_file from_values(config_values values, const std::string& path,
                                   const std::map<std::string, std::set<std::string>>& allowed);

    std::optional<std::string> get(const std::string& section, const std::string& key) const;
    // Typed getters: a bad value is a config_error naming file and line.
    std::optional<std::uint16_t> get_port(const std::string& section, const std::string& key) const;
    std::optional<std::uint64_t> get_uint(const std::string& section, const std::string& key) const;
    std::optional<double> get_seconds(const std::string& section, const std::string& key) const;
    const std::string& path() const noexcept { return path_; }

private:
    std::string where(const config_value& v) const { return path_ + ":" + std::to_string(v.line); }
    const config_value* find(const std::string& section, const std::string& key) const;
    std::string path_;
    std::map<std::string, std::map<std::string, config_value>> values_;
};

} // namespace kamaelia::daemon
