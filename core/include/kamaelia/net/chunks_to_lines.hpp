// Framing: TCP chunks in, lines out (without their terminator).
//
// A line ends at LF, CR LF, or telnet's CR NUL; a CR at the end of a chunk
// waits for the next byte. Every complete line in a chunk is emitted at once
// (the original only released one line per chunk). A line longer than
// max_line bytes is a protocol error: the framer sends protocol_error on
// "signal" with a message for the peer (lines_to_chunks writes it before the
// connection closes) and ends. The line ending the client used is
// remembered, so replies can use the same one (see lines_to_chunks).
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace kamaelia {

namespace detail {
// What the two halves of the line framing share: the client's line ending.
struct line_state {
    std::string ending = "\r\n";
};
} // namespace detail

inline constexpr std::size_t default_max_line = 8192;

class chunks_to_lines : public component {
public:
    explicit chunks_to_lines(std::size_t max_line = default_max_line);

    std::size_t max_line() const noexcept { return max_; }
    std::shared_ptr<detail::line_state> line_state() const noexcept { return state_; }

    // Splits `chunk` onto `partial`, calling emit(line) per complete line.
    // Returns false if the partial line grew past `max`. Pure: used by tests
    // and fuzzing without a scheduler.
    template <class Emit>
    static bool split(std::string& partial, std::string_view chunk, std::size_t max, std::string& ending, Emit&& emit);

protected:
    task main() override;
    // A hook for decoders in front of the framing (telnet): bytes in, data out.
    virtual std::string preprocess(std::string chunk) { return chunk; }

private:
    std::size_t max_;
    std::shared_ptr<detail::line_state> state_;
};

template <class Emit>
bool chunks_to_lines::split(std::string& partial, std::string_view chunk, std::size_t max, std::string& ending,
                            Emit&& emit) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < chunk.size(); ++i) {
        char c = chunk[i];
        if (c == '\n') {
            partial.append(chunk.data() + start, i - start);
            if (!partial.empty() && partial.back() == '\r') {
                partial.pop_back();
                ending = "\r\n";
            } else {
                ending = "\n";
            }
            if (partial.size() > max) return false;
            emit(std::move(partial));
            partial.clear();
            start = i + 1;
        } else if (c == '\0' && (i > start ? chunk[i - 1] == '\r' : (!partial.empty() && partial.back() == '\r'))) {
            // telnet's CR NUL: the end of a line typed at a telnet client
            partial.append(chunk.data() + start, i - start);
            partial.pop_back();
            ending = "\r\n";
            if (partial.size() > max) return false;
            emit(std::move(partial));
            partial.clear();
            start = i + 1;
        }
    }
    partial.append(chunk.data() + start, chunk.size() - start);
    return partial.size() <= max + 1; // +1: a trailing CR may still become CR LF
}

} // namespace kamaelia
