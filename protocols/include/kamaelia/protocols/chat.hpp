// The chat protocol, in the original's shape: frame the client's lines,
// prefix them with who said them, publish to a backplane, and subscribe to
// everything said there. Every line reaches every other connected client:
// a client's subscriber skips the lines that carry its own prefix (in the
// backplane's fan-out, so no hop is spent on them). A client that does not
// read is cut off by the backplane's policy; the others never wait for it.
//
// A line is framed once, by its sender: it is published with CR LF, and the
// backplane's one shared payload goes from each subscriber straight to its
// client's socket, which writes it from that one copy (no framing component,
// no copy or allocation per client). A client that ends its own lines with
// LF alone gets its lines re-framed with LF (a copy for that client only).
// A payload published without a line ending (a plain `redis-cli PUBLISH`, a
// host from before framed publishing) gets the client's ending appended.
//
// Bounds per client, in bytes (issue 14): what the backplane queues for it
// (queue_bytes, default 256 KiB), then what waits for its socket (the
// socket adapter's inbox: chat_output_limit lines, about 2 x queue_bytes of
// lines of max_line bytes) and the socket adapter's write queue (its high
// watermark, 256 KiB). With the chat's policy fail a client that falls that
// far behind is cut off: what it held is freed and its connection closed at
// once. A client whose input breaks the protocol (a line too long) is told
// why before it is disconnected.
//
// Relayed text passes printable_text (printable.hpp): no control
// characters reach another user's terminal; UTF-8 text does.
#pragma once

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/protocols/printable.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

namespace kamaelia {

inline constexpr std::size_t default_chat_queue_bytes = 256 * 1024;

// Lines the socket adapter's inbox may hold for one client: twice the
// queue's bytes of the longest lines, and never fewer than the backplane's
// fan-out batch (64), so a client that keeps up is never parked.
inline std::uint32_t chat_output_limit(std::size_t queue_bytes, std::size_t max_line) {
    std::size_t lines = 2 * queue_bytes / std::max<std::size_t>(max_line, 1);
    return static_cast<std::uint32_t>(std::clamp<std::size_t>(lines, 64, 1 << 20));
}

namespace detail {
// A chat payload as it goes to a client whose lines end with `ending`: a
// line published with CR LF passes as it is (the shared bytes) to a CR LF
// client; otherwise the line (without its CR LF, if it has one) gets
// `ending`, in a string of this client's own.
inline void frame_for_client(message& m, const std::string& ending) {
    const std::string* s = m.peek<std::string>();
    if (!s) return;
    const bool framed = s->ends_with("\r\n");
    if (framed && ending == "\r\n") return;
    std::string_view line(*s);
    if (framed) line.remove_suffix(2);
    std::string out;
    out.reserve(line.size() + ending.size());
    out.append(line).append(ending);
    m = message(std::move(out));
}
} // namespace detail

inline pipeline chat_protocol(const connection_info& peer, const std::string& backplane_name = "CHAT",
                              std::size_t max_line = default_max_line,
                              std::size_t queue_bytes = default_chat_queue_bytes) {
    // "ADDR:PORT says ": unique among the open connections.
    std::string prefix = telnet::escape(peer.name() + " says ");
    auto own = [prefix](const message& m) {
        const std::string* s = m.peek<std::string>();
        return s && s->compare(0, prefix.size(), prefix) == 0;
    };
    telnet_lines lines(max_line);
    // The client's own line ending (set by the framer as it reads).
    std::shared_ptr<detail::line_state> client = lines.line_state();
    subscribe_to sub(backplane_name, std::move(own));
    sub.set_max_bytes(queue_bytes);
    // The byte bound governs, not a message count: a reader that keeps up
    // is not cut off by a long paste of short lines (64 bytes each at least).
    sub.in("inbox").set_limit(static_cast<std::uint32_t>(queue_bytes / 64 + 1));
    sub.set_map([client](message& m) { detail::frame_for_client(m, client->ending); });
    sub.set_farewell([client](const ipc& end) -> message {
        if (end.kind != ipc_kind::protocol_error) return {};
        return message((end.text.empty() ? std::string("error: the input broke the protocol") : end.text) +
                       client->ending);
    });
    sub.set_consumer_limit(chat_output_limit(queue_bytes, max_line));
    return pipeline(std::move(lines), pure_transformer([prefix](std::string line) {
                        std::string out = prefix + telnet::escape(printable_text(line));
                        out += "\r\n"; // framed once, for every client
                        return out;
                    }),
                    publish_to(backplane_name), std::move(sub));
}

} // namespace kamaelia
