// The chat protocol, in the original's shape: frame the client's lines,
// prefix them with who said them, publish to a backplane, and subscribe to
// everything said there. Every line reaches every other connected client:
// a client's subscriber skips the lines that carry its own prefix (in the
// backplane's fan-out, so no hop is spent on them). A client that does not
// read is cut off by the backplane's policy; the others never wait for it.
//
// Bounds per client, in bytes (issue 14): what the backplane queues for it
// (queue_bytes, default 256 KiB), then what waits for its socket
// (lines_to_chunks::bound_output, the same figure) and the socket
// adapter's write queue (its high watermark, 256 KiB). With the chat's
// policy fail a client that falls that far behind is cut off: what it held
// is freed and its connection closed at once.
//
// Relayed text passes printable_text (printable.hpp): no control
// characters reach another user's terminal; UTF-8 text does.
#pragma once

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/printable.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <string>

namespace kamaelia {

inline constexpr std::size_t default_chat_queue_bytes = 256 * 1024;

inline pipeline chat_protocol(const connection_info& peer, const std::string& backplane_name = "CHAT",
                              std::size_t max_line = default_max_line,
                              std::size_t queue_bytes = default_chat_queue_bytes) {
    // "ADDR:PORT says ": unique among the open connections.
    std::string prefix = telnet::escape(peer.name() + " says ");
    auto own = [prefix](const message& m) {
        const std::string* s = m.peek<std::string>();
        return s && s->compare(0, prefix.size(), prefix) == 0;
    };
    subscribe_to sub(backplane_name, std::move(own));
    sub.set_max_bytes(queue_bytes);
    // The byte bound governs, not a message count: a reader that keeps up
    // is not cut off by a long paste of short lines (64 bytes each at least).
    sub.in("inbox").set_limit(static_cast<std::uint32_t>(queue_bytes / 64 + 1));
    lines_to_chunks out;
    out.bound_output(queue_bytes);
    return pipeline(telnet_lines(max_line), pure_transformer([prefix](std::string line) {
                        return prefix + telnet::escape(printable_text(line));
                    }),
                    publish_to(backplane_name), std::move(sub), std::move(out));
}

} // namespace kamaelia
