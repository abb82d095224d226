// console_echoer: writes every message to stdout (Kamaelia's
// ConsoleEchoer).
//
//   console_echoer()                                  // text as it is, no newline added
//   console_echoer({.tag = "got: ", .forwarder = true, .use_repr = true})
//
// Each message is written as tag + text and flushed at once. Strings are
// written as they are (or quoted and escaped with use_repr, like Python's
// repr()), numbers and booleans in the usual way, control messages by their
// kind; other types as "<type>" (see message_to_text()). With forwarder the
// message then goes on out of "outbox" (waiting for room).
//
// Ends on producer_finished (after the inbox is drained) or
// shutdown_microprocess only — the original ended on any control message —
// and passes the end message on out of "signal"; other control messages are
// passed on too.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/message.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>

namespace kamaelia {

// The text console_echoer writes for `m` (repr: strings quoted and escaped).
std::string message_to_text(const message& m, bool repr = false);

struct console_echoer_options {
    std::string tag{};           // written before each message
    bool forwarder = false;      // also pass each message on out of "outbox"
    bool use_repr = false;       // strings quoted and escaped
    std::ostream* out = nullptr; // where to write (default std::cout)
};

class console_echoer : public component {
public:
    console_echoer() = default;
    explicit console_echoer(console_echoer_options options) : options_(std::move(options)) {}
    explicit console_echoer(std::string tag, bool forwarder = false, bool use_repr = false)
        : options_{std::move(tag), forwarder, use_repr, nullptr} {}
    console_echoer(console_echoer&&) = default;

    const console_echoer_options& options() const noexcept { return options_; }
    std::uint64_t written() const noexcept { return written_; }
    std::string type_name() const override { return "console_echoer"; }

protected:
    task main() override;

private:
    console_echoer_options options_;
    std::uint64_t written_ = 0;
};

} // namespace kamaelia
