#include <kamaelia/smtp/command.hpp>

#include <kamaelia/util/text.hpp>

#include <algorithm>
#include <array>

namespace kamaelia::smtp {

namespace {

char up(char c) noexcept { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
char low(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (up(a[i]) != up(b[i])) return false;
    return true;
}

// Spaces and tabs only: a CR inside a command line is the parser's business.
std::string_view trim(std::string_view s) noexcept { return kamaelia::trim(s, " \t"); }

struct verb_name {
    std::string_view name;
    verb v;
};
constexpr std::array<verb_name, 14> verbs = {{{"HELO", verb::helo},
                                              {"EHLO", verb::ehlo},
                                              {"MAIL", verb::mail},
                                              {"RCPT", verb::rcpt},
                                              {"DATA", verb::data},
                                              {"RSET", verb::rset},
                                              {"NOOP", verb::noop},
                                              {"VRFY", verb::vrfy},
                                              {"EXPN", verb::expn},
                                              {"HELP", verb::help},
                                              {"QUIT", verb::quit},
                                              {"STARTTLS", verb::starttls},
                                              {"BDAT", verb::bdat},
                                              {"AUTH", verb::auth}}};

// A character allowed unquoted in a path (printable ASCII and UTF-8 bytes,
// no specials that would break the brackets or the parameters).
bool path_char(unsigned char c) noexcept { return c > 32 && c != 127 && c != '<' && c != '>'; }

// Parses "<path> params..." (after "FROM:" / "TO:"). Returns an error text or "".
std::string parse_path(std::string_view rest, command& cmd, bool allow_null) {
    rest = trim(rest);
    if (rest.empty() || rest.front() != '<') return "path must be in angle brackets";
    // Find the closing bracket, honouring a quoted local part.
    std::size_t i = 1;
    bool quoted = false;
    for (; i < rest.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(rest[i]);
        if (quoted) {
            if (c == '\\' && i + 1 < rest.size()) {
                ++i;
                continue;
            }
            if (c == '"')
                quoted = false;
            else if (c < 32 || c == 127)
                return "control character in the path";
            continue;
        }
        if (c == '"') {
            quoted = true;
            continue;
        }
        if (c == '>') break;
        if (!path_char(c)) return "bad character in the path";
    }
    if (i >= rest.size()) return "missing '>'";
    std::string_view path = rest.substr(1, i - 1);
    if (path.size() > 256) return "path too long";
    // A source route "@a,@b:" is ignored (RFC 5321 §4.1.2, C.).
    if (!path.empty() && path.front() == '@') {
        auto colon = path.find(':');
        if (colon == std::string_view::npos) return "bad source route";
        path.remove_prefix(colon + 1);
    }
    if (path.empty()) {
        if (!allow_null) return "empty path";
    } else {
        auto at = path.rfind('@');
        std::string_view local = at == std::string_view::npos ? path : path.substr(0, at);
        if (local.empty()) return "empty local part";
        if (local.size() > 64) return "local part too long";
        if (at != std::string_view::npos) {
            std::string_view dom = path.substr(at + 1);
            if (dom.empty()) return "empty domain";
            if (dom.size() > 255) return "domain too long";
            if (dom.front() != '[') {
                for (char c : dom) {
                    unsigned char u = static_cast<unsigned char>(c);
                    bool ok = (u >= 128) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '.';
                    if (!ok) return "bad character in the domain";
                }
            } else if (dom.back() != ']') {
                return "bad address literal";
            }
        }
    }
    cmd.address.assign(path);
    // Parameters: KEY[=VALUE], separated by spaces.
    std::string_view params = rest.substr(i + 1);
    if (!params.empty() && params.front() != ' ' && params.front() != '\t') return "junk after the path";
    params = trim(params);
    while (!params.empty()) {
        auto sp = params.find_first_of(" \t");
        std::string_view p = params.substr(0, sp);
        params = sp == std::string_view::npos ? std::string_view{} : trim(params.substr(sp));
        auto eq = p.find('=');
        std::string_view key = p.substr(0, eq);
        if (key.empty()) return "empty parameter name";
        for (char c : key) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
            if (!ok) return "bad parameter name";
        }
        std::string k(key);
        for (char& c : k) c = up(c);
        std::string v = eq == std::string_view::npos ? std::string() : std::string(p.substr(eq + 1));
        if (cmd.params.size() >= 16) return "too many parameters";
        cmd.params.emplace_back(std::move(k), std::move(v));
    }
    return {};
}

} // namespace

std::string_view to_string(verb v) noexcept {
    for (const auto& n : verbs)
        if (n.v == v) return n.name;
    return v == verb::empty ? "(empty)" : "(unknown)";
}

std::optional<std::string> command::param(std::string_view key) const {
    for (const auto& [k, v] : params)
        if (iequal(k, key)) return v;
    return std::nullopt;
}

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = low(c);
    return r;
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    return lower(address.substr(at + 1));
}

bool is_bare_postmaster(std::string_view address) noexcept { return iequal(address, "postmaster"); }

command parse_command(std::string_view line) {
    command cmd;
    std::string_view s = trim(line);
    if (s.empty()) {
        cmd.what = verb::empty;
        cmd.error = "500 5.5.2 Error: bad syntax";
        return cmd;
    }
    auto sp = s.find_first_of(" \t");
    std::string_view word = s.substr(0, sp);
    std::string_view arg = sp == std::string_view::npos ? std::string_view{} : trim(s.substr(sp));
    for (const auto& n : verbs)
        if (iequal(word, n.name)) cmd.what = n.v;
    for (char c : line) {
        if (c == '\0' || c == '\r' || c == '\n') {
            cmd.error = "500 5.5.2 Error: bad character in command";
            return cmd;
        }
    }
    cmd.argument.assign(arg);
    switch (cmd.what) {
    case verb::unknown: cmd.error = "500 5.5.2 Error: command not recognized"; break;
    case verb::helo:
    case verb::ehlo:
        if (arg.empty() || arg.find_first_of(" \t") != std::string_view::npos) {
            cmd.error = std::string("501 5.5.4 Syntax: ") + (cmd.what == verb::helo ? "HELO" : "EHLO") + " hostname";
        }
        break;
    case verb::mail:
    case verb::rcpt: {
        const bool mail = cmd.what == verb::mail;
        std::string_view prefix = mail ? "FROM:" : "TO:";
        if (arg.size() < prefix.size() || !iequal(arg.substr(0, prefix.size()), prefix)) {
            cmd.error = mail ? "501 5.5.4 Syntax: MAIL FROM:<address>" : "501 5.5.4 Syntax: RCPT TO:<address>";
            break;
        }
        std::string why = parse_path(arg.substr(prefix.size()), cmd, mail);
        if (!why.empty()) {
            cmd.address.clear();
            cmd.params.clear();
            cmd.error = std::string("501 5.1.") + (mail ? "7" : "3") + " Bad " + (mail ? "sender" : "recipient") +
                        " address syntax (" + why + ")";
        }
        break;
    }
    case verb::data:
    case verb::rset:
    case verb::quit:
    case verb::starttls:
        if (!arg.empty()) cmd.error = "501 5.5.4 Syntax: " + std::string(to_string(cmd.what)) + " takes no arguments";
        break;
    case verb::vrfy:
    case verb::expn:
        if (arg.empty()) cmd.error = "501 5.5.4 Syntax: " + std::string(to_string(cmd.what)) + " address";
        break;
    default: break;
    }
    return cmd;
}

} // namespace kamaelia::smtp
