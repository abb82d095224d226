// The chat protocol, in the original's shape: frame the client's lines,
// prefix them with who said them, publish to a backplane, and subscribe to
// everything said there. Every line reaches every connected client (the
// sender too: it sees its line went out). A client that does not read is
// cut off by the backplane's policy; the others never wait for it.
#pragma once

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <string>

namespace kamaelia {

inline pipeline chat_protocol(const connection_info& peer, const std::string& backplane_name = "CHAT",
                              std::size_t max_line = default_max_line) {
    return pipeline(telnet_lines(max_line),
                    pure_transformer([prefix = peer.name() + " says "](std::string line) { return prefix + line; }),
                    publish_to(backplane_name), subscribe_to(backplane_name), lines_to_chunks());
}

} // namespace kamaelia
