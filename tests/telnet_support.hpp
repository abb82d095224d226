// What a telnet client's terminal shows of a protocol's output, for tests
// that read a line-based server through an embedded connection.
#pragma once

#include <kamaelia/protocols/telnet.hpp>

#include <string>

namespace kamaelia::test {

// The bytes with telnet commands removed.
inline std::string text(const std::string& raw) {
    std::string out;
    telnet_decoder d;
    d.feed(raw, out);
    return out;
}

inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace kamaelia::test
