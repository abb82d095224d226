#include <kamaelia/redis/url.hpp>

#include <sys/stat.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kamaelia::redis {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding; `what` names the part in errors (its text is never quoted).
std::string decode(std::string_view s, const char* what) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) throw url_error(std::string("redis URL: bad %-escape in the ") + what);
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

} // namespace

std::string url::display() const {
    std::string out = "redis://";
    if (!user.empty()) out += user + "@";
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
    if (db != 0) out += "/" + std::to_string(db);
    return out;
}

url parse_url(std::string_view text) {
    constexpr std::string_view scheme = "redis://";
    if (text.substr(0, scheme.size()) != scheme)
        throw url_error("redis URL must start with redis:// (rediss:// - TLS - is not supported)");
    std::string_view rest = text.substr(scheme.size());
    url u;

    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    std::string_view path;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
            u.user = decode(userinfo.substr(0, colon), "user name");
            u.password = decode(userinfo.substr(colon + 1), "password");
        } else {
            // redis://SECRET@host is how some clients write a bare password.
            u.password = decode(userinfo, "password");
        }
    }
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos) throw url_error("redis URL: unclosed [ in the host");
        u.host = std::string(rest.substr(1, close - 1));
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw url_error("redis URL: expected :PORT after the [address]");
            port = after.substr(1);
        }
    } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        u.host = std::string(rest.substr(0, colon));
        port = rest.substr(colon + 1);
    } else {
        u.host = std::string(rest);
    }
    if (u.host.empty()) throw url_error("redis URL: no host");
    if (!port.empty()) {
        unsigned p = 0;
        if (!parse_number(port, p) || p == 0 || p > 65535) throw url_error("redis URL: bad port");
        u.port = static_cast<std::uint16_t>(p);
    }
    if (!path.empty() && !parse_number(path, u.db)) throw url_error("redis URL: the path must be a database number");

    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = item.find('=');
        std::string_view key = item.substr(0, eq);
        std::string value = eq == std::string_view::npos ? std::string() : decode(item.substr(eq + 1), "query");
        if (key == "channel") {
            if (value.empty()) throw url_error("redis URL: empty channel");
            u.channel = std::move(value);
        } else if (key == "password-file") {
            u.password_file = std::move(value);
        } else {
            throw url_error("redis URL: unknown parameter \"" + std::string(key) +
                            "\" (known: channel, password-file)");
        }
    }
    return u;
}

void resolve_password(url& u) {
    if (!u.password.empty()) return;
    if (!u.password_file.empty()) {
        struct stat st {};
        if (::stat(u.password_file.c_str(), &st) != 0)
            throw url_error("redis password file " + u.password_file + ": cannot be read");
        if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
            throw url_error("redis password file " + u.password_file + ": others may read it (chmod 600 it)");
        std::ifstream f(u.password_file, std::ios::binary);
        if (!f) throw url_error("redis password file " + u.password_file + ": cannot be read");
        std::string line;
        std::getline(f, line);
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.pop_back();
        if (line.empty()) throw url_error("redis password file " + u.password_file + ": empty");
        u.password = std::move(line);
        return;
    }
    if (const char* env = std::getenv("REDISCLI_AUTH"); env && *env) u.password = env;
}

} // namespace kamaelia::redis
