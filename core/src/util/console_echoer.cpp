#include <kamaelia/core/ipc.hpp>
#include <kamaelia/util/console_echoer.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string_view>
#include <vector>

namespace kamaelia {

namespace {

// Python's repr() of a str: single quotes unless the text holds one and no
// double quote; \n \r \t \\ and the quote escaped; other control bytes \xNN.
std::string repr(std::string_view s) {
    char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
    std::string out;
    out.reserve(s.size() + 2);
    out += q;
    for (unsigned char c : s) {
        switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\\': out += "\\\\"; break;
        default:
            if (c == static_cast<unsigned char>(q)) {
                out += '\\';
                out += static_cast<char>(c);
            } else if (c < 0x20 || c == 0x7f) {
                char buf[5];
                std::snprintf(buf, sizeof buf, "\\x%02x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += q;
    return out;
}

std::string text(std::string_view s, bool as_repr) { return as_repr ? repr(s) : std::string(s); }

template <class T>
bool number(const message& m, std::string& out) {
    if (const T* p = m.peek<T>()) {
        std::ostringstream os;
        os << +*p; // unary + prints small integer types as numbers
        out = os.str();
        return true;
    }
    return false;
}

template <class... T>
bool any_number(const message& m, std::string& out) {
    return (number<T>(m, out) || ...);
}

} // namespace

std::string message_to_text(const message& m, bool as_repr) {
    if (m.empty()) return as_repr ? "None" : "";
    if (const auto* s = m.peek<std::string>()) return text(*s, as_repr);
    if (const auto* s = m.peek<std::string_view>()) return text(*s, as_repr);
    if (const auto* s = m.peek<const char*>()) return text(*s ? *s : "", as_repr);
    if (const auto* c = m.peek<char>()) return text(std::string_view(c, 1), as_repr);
    if (const auto* b = m.peek<std::vector<char>>()) return text(std::string_view(b->data(), b->size()), as_repr);
    if (const auto* b = m.peek<std::vector<unsigned char>>())
        return text(std::string_view(reinterpret_cast<const char*>(b->data()), b->size()), as_repr);
    if (const auto* b = m.peek<bool>()) return *b ? "True" : "False";
    if (const auto* i = m.peek<ipc>()) {
        std::string k(to_string(i->kind));
        return i->text.empty() ? k : k + "(" + (as_repr ? repr(i->text) : i->text) + ")";
    }
    std::string out;
    if (any_number<int, long, long long, unsigned, unsigned long, unsigned long long, short, unsigned short,
                   signed char, unsigned char, float, double, long double>(m, out))
        return out;
    return "<" + m.type_name() + ">";
}

task console_echoer::main() {
    std::ostream& os = options_.out ? *options_.out : std::cout;
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            os << options_.tag << message_to_text(*m, options_.use_repr);
            os.flush();
            ++written_;
            if (options_.forwarder) co_await send_message(std::move(*m), "outbox");
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
