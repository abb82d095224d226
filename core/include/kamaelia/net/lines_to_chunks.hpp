// Framing: lines in, bytes out, each line ended the way the client ends its
// own (found through the chunks_to_lines in the same connection graph;
// CR LF when there is none). Lines waiting together leave as one chunk of
// at most max_chunk bytes (plus the line that crosses it; default 64 KiB).
//
// bound_output(bytes): what waits for the socket is bounded in bytes too.
// Its own inbox then holds at most max(16, bytes / default_max_line) lines
// (lines are at most default_max_line each), and the inbox its chunks go
// to (the socket adapter's) at most max(1, bytes / max_chunk) chunks, so
// a client that does not read holds at most about 2 x bytes + 2 chunks
// here, whatever the message counts; the adapter's own write queue (its
// high watermark) comes on top. A server whose clients' output
// is produced by other clients (the chat) uses it.
// An end message with text (protocol_error) is written to the peer before
// it is passed on, so the client learns why it is being disconnected.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>

#include <memory>
#include <string>

namespace kamaelia {

class lines_to_chunks : public component {
public:
    lines_to_chunks() = default;
    // A fixed line ending, whatever the client uses.
    explicit lines_to_chunks(std::string ending);

    static constexpr std::size_t default_max_chunk = 64 * 1024;
    lines_to_chunks& max_chunk(std::size_t bytes) {
        max_chunk_ = bytes == 0 ? 1 : bytes;
        return *this;
    }
    lines_to_chunks& bound_output(std::size_t bytes) {
        bound_output_ = bytes;
        return *this;
    }

protected:
    task main() override;

private:
    void find_partner();
    std::shared_ptr<detail::line_state> state_;
    std::string fixed_;
    std::size_t max_chunk_ = default_max_chunk;
    std::size_t bound_output_ = 0; // 0: the inboxes keep their own bounds
};

} // namespace kamaelia
