// What every line-oriented protocol session shares, whatever its dialogue:
// replies gathered and written in one send (a batch of pipelined commands
// is answered with one write), and the connection's end messages read from
// "control" into flags the dialogue can test between lines.
//
// The board's stages (bbs/stages.hpp) and the SMTP session
// (smtp/session.hpp) are line sessions: they differ in how they frame
// input and what an end means to them, not in this runtime.
//
//   inbox    the client's input       outbox   bytes for the client
//   control  the socket's and the     signal   (the subclass's business)
//            server's end messages
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/task.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia {

class line_session : public component {
protected:
    // ---- output: gathered until flush() ------------------------------------
    void write(std::string_view bytes) { out_ += bytes; }
    void discard_output() noexcept { out_.clear(); }
    bool output_pending() const noexcept { return !out_.empty(); }
    // Sends what was gathered out of "outbox", once. True when it went (or
    // there was nothing); false when the client cannot be written to: its
    // socket has closed (nothing is sent) or the send failed.
    subtask<bool> flush();

    // ---- control -----------------------------------------------------------
    // Takes every message waiting on "control" and records the end messages.
    void scan_control();
    // An end message of this kind has been seen.
    bool seen(ipc_kind k) const noexcept { return (seen_ & bit(k)) != 0; }
    // A stop (shutdown_microprocess, server_shutdown, component_error).
    bool stop_seen() const noexcept;
    // The socket has closed: nothing more can be written.
    bool socket_closed() const noexcept { return seen(ipc_kind::socket_shutdown); }
    // The end message that matters most: the latest stop or socket close,
    // else the first "input ended".
    const std::optional<ipc>& end_message() const noexcept { return end_; }

private:
    static constexpr std::uint8_t bit(ipc_kind k) noexcept {
        return static_cast<std::uint8_t>(1u << static_cast<unsigned>(k));
    }

    std::string out_;
    std::optional<ipc> end_;
    std::uint8_t seen_ = 0;
};

} // namespace kamaelia
