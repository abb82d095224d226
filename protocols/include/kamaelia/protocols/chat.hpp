// The chat protocol, in the original's shape: frame the client's lines,
// prefix them with who said them, publish to a backplane, and subscribe to
// everything said there. Every line reaches every other connected client
// (a line carries its connection's id, and each client's subscriber drops
// its own). A client that does not read is cut off by the backplane's
// policy; the others never wait for it.
#pragma once

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace kamaelia {

// What goes over the chat backplane: who said it (the connection id within
// the chat server) and the whole line, prefix included.
struct chat_line {
    std::uint64_t from = 0;
    std::string text;
};

inline pipeline chat_protocol(const connection_info& peer, const std::string& backplane_name = "CHAT",
                              std::size_t max_line = default_max_line) {
    return pipeline(
        telnet_lines(max_line),
        pure_transformer([id = peer.id, prefix = peer.name() + " says "](std::string line) {
            return chat_line{id, prefix + line};
        }),
        publish_to(backplane_name), subscribe_to(backplane_name),
        pure_transformer([id = peer.id](const chat_line& l) -> std::optional<std::string> {
            if (l.from == id) return std::nullopt;
            return telnet::escape(l.text);
        }),
        lines_to_chunks());
}

} // namespace kamaelia
