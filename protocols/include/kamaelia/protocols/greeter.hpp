// The greeter protocol: every line X gets the reply "hello X", ended the way
// the client ends its lines. No banner. Works from telnet.
#pragma once

#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <string>

namespace kamaelia {

inline pipeline greeter_protocol(std::size_t max_line = default_max_line) {
    return pipeline(telnet_lines(max_line),
                    pure_transformer([](std::string line) { return telnet::escape("hello " + line); }),
                    lines_to_chunks());
}

} // namespace kamaelia
