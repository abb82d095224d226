// The first stage of an SMTP connection's graphline (smtp/protocol.hpp):
// command framing. Bytes from the client in, one `framed_line` message per
// line out, under RFC 5321's limits (line_reader does the framing).
//
//   inbox    bytes from the client          outbox  framed_line, then
//   control  the socket's end messages,             `reframed` after a reset
//            the server's stop               signal  every control message,
//   reframe  orders from the session:                passed on after the lines
//            reframe{end} (the session is over)      of the bytes before it
//
// The framer frames at the larger of the command and text limits; the
// session applies the one in force for its state (a command line over 512
// octets is answered "line too long", a DATA line over 1000 refuses the
// message), so a DATA command pipelined with its body needs no round trip
// to switch limits. Memory stays bounded by the limit: a longer line is
// reported once (too_long) when its LF arrives, its bytes discarded.
//
// STARTTLS: the session sends start_tls to the socket adapter, which puts
// a tls_started mark into the byte stream (in order: clear bytes before it,
// decrypted bytes after). At the mark this stage drops the partial line it
// holds and sends `reframed`; the session drops every line ahead of it
// (CVE-2011-0411). The mark travels with the bytes, so decrypted input that
// arrives before the session's turn is never mistaken for clear text.
//
// No line is lost while the session is busy: the framer waits for room in
// the session's inbox (flow control back to the socket), and a stop that
// wakes that wait is passed on before the same line is sent again, so a
// message in DATA keeps its body through the stop's grace. The framer ends
// on reframe{end}, or once the socket has closed (nothing more can come).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/smtp/line_reader.hpp>

#include <cstddef>
#include <string>

namespace kamaelia::smtp {

// One line from the client, as line_reader frames it, owning its text.
struct framed_line {
    std::string text;      // without the ending
    bool crlf = false;     // ended in CRLF (else a bare LF)
    bool bare_cr = false;  // a CR inside the line
    bool too_long = false; // over the framer's limit (text is empty)

    // Octets on the wire, with the ending (RFC 5321 counts the CRLF).
    std::size_t wire_size() const noexcept { return text.size() + (crlf ? 2 : 1); }
    // The line as the session's stages take it, too long for `limit` or not.
    line_reader::line view(std::size_t limit) const noexcept;
};

// Session -> framer, on "reframe".
struct reframe {
    bool end = false; // the session is over: the framer ends
};

// Framer -> session, in the line stream: every line before it was read in
// clear before a STARTTLS switch (the adapter's tls_started).
struct reframed {};

class framer : public component {
public:
    explicit framer(std::size_t max_line);
    std::string type_name() const override { return "smtp::framer"; }

protected:
    task main() override;

private:
    // Sends one line (or the mark) to the session, waiting for room; false
    // when a reframe order came first (the item is dropped).
    subtask<bool> emit(message m);
    // Handles the orders on "reframe"; true when the framer must end.
    bool take_orders();
    // Passes every control message on, in order; true once the socket has closed.
    bool pass_control();
    bool orders_pending() { return !in("reframe").empty(); }

    line_reader reader_;
    bool reset_due_ = false; // a tls_started was taken: send the mark
    bool socket_closed_ = false;
};

} // namespace kamaelia::smtp
