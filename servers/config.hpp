// The daemon's configuration, in layers: a flag wins over the environment,
// the environment over the config file, the file over the default.
//
// File syntax (INI): `# comment`, `[section]`, `key = value`. Sections:
// [kamaelia] (log-level, log-file, data-dir, ...) and one per server
// ([greeter], [chat], ...). An unknown section or key is an error naming its line.
//
// Environment, one rule for every key: [section] key is
// KAMAELIA_<SECTION>_<KEY>, upper case with '-' as '_' ([grey] allowed-domain
// is KAMAELIA_GREY_ALLOWED_DOMAIN; lists are comma-separated as in the file).
// Besides: KAMAELIA_CONFIG names the config file (read when present; --config
// wins and must exist) and KAMAELIA_DATA_DIR is [kamaelia] data-dir. A
// variable in a section's name space (KAMAELIA_GREY_*, KAMAELIA_KAMAELIA_*)
// that names no key is an error naming it, like an unknown key in the file:
// a typo must not silently leave a default in place. Other KAMAELIA_* names
// are not config by the rule (KAMAELIA_SOURCE_DIR of a build script): the
// daemon logs them as ignored.
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
    std::string origin{}; // the environment variable it came from (empty: the file's line)
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

    // A config with no values (what the environment is layered on when there is no file).
    static config_file empty(const std::string& path);
    // Layers `over` on top of this file's values: a key in both takes `over`'s.
    void overlay(const config_values& over);

    std::optional<std::string> get(const std::string& section, const std::string& key) const;
    // Typed getters: a bad value is a config_error naming file and line.
    std::optional<std::uint16_t> get_port(const std::string& section, const std::string& key) const;
    std::optional<std::uint64_t> get_uint(const std::string& section, const std::string& key) const;
    std::optional<double> get_seconds(const std::string& section, const std::string& key) const;
    const std::string& path() const noexcept { return path_; }

private:
    std::string where(const config_value& v) const {
        return v.origin.empty() ? path_ + ":" + std::to_string(v.line) : v.origin;
    }
    const config_value* find(const std::string& section, const std::string& key) const;
    std::string path_;
    std::map<std::string, std::map<std::string, config_value>> values_;
};

using config_keys_map = std::map<std::string, std::set<std::string>>;

inline constexpr const char* env_config = "KAMAELIA_CONFIG";
inline constexpr const char* env_data_dir = "KAMAELIA_DATA_DIR";

// The variable for a key: ("grey", "allowed-domain") -> KAMAELIA_GREY_ALLOWED_DOMAIN.
std::string env_name(const std::string& section, const std::string& key);
// The KAMAELIA_* entries of `env` ("NAME=VALUE" strings, as in environ) as
// config values. KAMAELIA_CONFIG is skipped (see load_config); a name in a
// section's name space that is no key is a config_error naming it.
config_values env_values(const std::vector<std::string>& env, const config_keys_map& allowed);
// The KAMAELIA_* names in `env` that are outside every section's name space
// (and so not config): ignored, worth a warning.
std::vector<std::string> env_ignored(const std::vector<std::string>& env, const config_keys_map& allowed);
// This process's environment, as "NAME=VALUE" strings.
std::vector<std::string> process_environment();
// The value of NAME in `env`, if set.
std::optional<std::string> env_get(const std::vector<std::string>& env, const std::string& name);

// The file and the environment, layered: `flag_path` (--config) must exist;
// else KAMAELIA_CONFIG is read when the file is there. nullopt when neither
// a file nor a KAMAELIA_* key is given.
std::optional<config_file> load_config(const std::string& flag_path, const std::vector<std::string>& env,
                                       const config_keys_map& allowed);

// `--threads` / [kamaelia] threads: "auto" is `auto_value` (the CPUs the
// process may use), else a whole number from 1 to max_threads; anything else
// is a config_error saying what is expected.
inline constexpr std::size_t max_threads = 1024;
std::size_t parse_threads(const std::string& text, std::size_t auto_value);

// The data directory for a tool run without --data-dir: KAMAELIA_DATA_DIR, else ./var.
std::string default_data_dir();

} // namespace kamaelia::daemon
