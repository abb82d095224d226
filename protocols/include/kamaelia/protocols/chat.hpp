// The chat protocol, in the original's shape: frame the client's lines,
// prefix them with who said them, publish to a backplane, and subscribe to
// everything said there. Every line reaches every other connected client:
// a client's subscriber skips the lines that carry its own prefix (in the
// backplane's fan-out, so no hop is spent on them). A client that does not
// read is cut off by the backplane's policy; the others never wait for it.
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
    // "ADDR:PORT says ": unique among the open connections.
    std::string prefix = telnet::escape(peer.name() + " says ");
    auto own = [prefix](const message& m) {
        const std::string* s = m.peek<std::string>();
        return s && s->compare(0, prefix.size(), prefix) == 0;
    };
    return pipeline(telnet_lines(max_line),
                    pure_transformer([prefix](std::string line) { return prefix + telnet::escape(std::move(line)); }),
                    publish_to(backplane_name), subscribe_to(backplane_name, std::move(own)), lines_to_chunks());
}

} // namespace kamaelia
