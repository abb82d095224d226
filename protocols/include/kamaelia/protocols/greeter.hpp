// The greeter protocol: every line X gets the reply "hello X", ended the way
// the client ends its lines. No banner. Works from telnet.
//
// One line_protocol a connection (line_protocol.hpp): the tutorial's
// pipeline(telnet_lines(), pure_transformer(...), lines_to_chunks()) answers
// the same, with five components a connection instead of one.
#pragma once

#include <kamaelia/protocols/line_protocol.hpp>
#include <kamaelia/protocols/telnet.hpp>

#include <string>

namespace kamaelia {

inline auto greeter_protocol(std::size_t max_line = default_max_line) {
    return line_protocol([](std::string line) { return telnet::escape("hello " + std::move(line)); }, max_line);
}

} // namespace kamaelia
