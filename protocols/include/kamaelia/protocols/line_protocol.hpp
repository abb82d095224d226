// A line protocol in one component: the client's bytes framed into lines,
// f(line) called for each, the replies sent back.
//
//   protocol = [](const connection_info&) {
//       return line_protocol([](std::string line) { return "hello " + line; });
//   };
//
// It does what pipeline(telnet_lines(max_line), pure_transformer(f),
// lines_to_chunks()) does, in one body: one object and one coroutine frame
// a connection instead of four of each plus the pipeline's, two links to the
// socket adapter instead of twelve, and one scheduler trip between reading a
// request and writing its reply instead of four. The pipeline stays the way
// to build a protocol from parts (docs/GUIDE.md says when to use which).
//
// Input, exactly as telnet_lines frames it: telnet negotiation stripped (IAC
// IAC is a 0xFF data byte); a line ends at LF, CR LF or telnet's CR NUL; a
// line over max_line bytes is refused before it is kept (the client gets
// "error: line too long (the limit is N bytes)" and the connection ends with
// a protocol_error).
//
// Output: f returns the reply to a line (a std::string, or a
// std::optional<std::string> where std::nullopt answers nothing), sent as it
// is (telnet::escape it if it may hold a 0xFF byte for a telnet client),
// ended the way the client ended that line. The replies to everything read
// together (a batch of pipelined requests) leave as one message, so the
// adapter writes them at once; a message holds at most
// lines_to_chunks::default_max_chunk bytes plus one reply.
//
// Ending, as the pipeline ends:
//  - producer_finished, socket_shutdown (the client half-closed, the socket
//    has gone): the input that came is answered, a last line without its
//    end too; the end message goes out of "signal" (the adapter flushes and
//    closes). Nothing is sent once the socket has gone.
//  - a protocol_error on "control": as producer_finished, and its text (for
//    the peer) is written after the replies.
//  - shutdown_microprocess, server_shutdown, component_error: at once, input
//    not yet answered is dropped; the end message goes out of "signal".
//  - f throws: the component fails; the core's component_error out of
//    "signal" makes the adapter close.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/protocols/telnet.hpp>
#include <kamaelia/util/callable_traits.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace kamaelia {

// The body: framing, batching and ending. A subclass answers the lines.
class line_protocol_base : public component {
public:
    explicit line_protocol_base(std::size_t max_line = default_max_line) : max_line_(max_line) {}
    line_protocol_base(line_protocol_base&&) = default;

    std::size_t max_line() const noexcept { return max_line_; }
    std::string type_name() const override { return "line_protocol"; }

protected:
    task main() final;
    // Appends the reply to `line` (without its line end) to `out`; false
    // when the line gets no reply.
    virtual bool answer(std::string&& line, std::string& out) = 0;

private:
    enum class phase : std::uint8_t { open, ended, too_long };
    // Frames and answers what waits until the replies reach a message's
    // worth; sets phase_ to too_long (the error text in out_) on a long line.
    void answer_input();
    void answer_line(std::string&& line, const std::string& ending);
    // The input has ended: the last line, a protocol_error's text.
    void end_input();
    std::string error_text() const;

    // Everything lives here, not in the coroutine frame: the body keeps no
    // local across a suspension, so its frame is the awaiters alone.
    telnet_decoder decoder_;
    std::string partial_; // the line being read
    std::string chunk_;   // decoded input not framed yet (the replies filled a message)
    std::size_t chunk_pos_ = 0;
    std::string out_; // the replies not sent yet
    std::size_t max_line_;
    bool crlf_ = true; // the client's latest line end: CR LF, else LF
    phase phase_ = phase::open;
};

template <class F>
class line_protocol : public line_protocol_base {
public:
    using result_type = std::invoke_result_t<F&, std::string&&>;
    static_assert(std::is_convertible_v<result_type, std::string> ||
                      std::is_convertible_v<result_type, std::optional<std::string>>,
                  "line_protocol: f(line) must return a std::string or a std::optional<std::string>");

    explicit line_protocol(F f, std::size_t max_line = default_max_line)
        : line_protocol_base(max_line),
          f_(std::move(f)) {}
    line_protocol(line_protocol&&) = default;

protected:
    bool answer(std::string&& line, std::string& out) override {
        if constexpr (detail::is_optional<std::remove_cvref_t<result_type>>::value) {
            auto r = std::invoke(f_, std::move(line));
            if (!r) return false;
            out += *r;
        } else {
            out += std::invoke(f_, std::move(line));
        }
        return true;
    }

private:
    F f_;
};

} // namespace kamaelia
