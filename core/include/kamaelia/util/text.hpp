// Small text helpers shared by the parsers (configuration files, command lines).
#pragma once

#include <string_view>

namespace kamaelia {

// `s` without the leading and trailing characters in `chars` (default: spaces,
// tabs and a carriage return, what a line read from a file or a socket carries).
constexpr std::string_view trim(std::string_view s, std::string_view chars = " \t\r") noexcept {
    auto b = s.find_first_not_of(chars);
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(chars);
    return s.substr(b, e - b + 1);
}

} // namespace kamaelia
