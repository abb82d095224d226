// Framing: lines in, bytes out, each line ended the way the client ends its
// own (found through the chunks_to_lines in the same connection graph;
// CR LF when there is none). Lines waiting together leave as one chunk.
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

protected:
    task main() override;

private:
    void find_partner();
    std::shared_ptr<detail::line_state> state_;
    std::string fixed_;
};

} // namespace kamaelia
