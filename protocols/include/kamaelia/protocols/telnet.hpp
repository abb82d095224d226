// Telnet: negotiation stripped from the byte stream, so every line-based
// server works from a real `telnet` client.
//
// telnet_decoder is a pure state machine (bytes in, data bytes out): IAC
// commands (WILL/WONT/DO/DONT option, SB ... SE, and the two-byte ones) are
// removed, IAC IAC becomes one 0xFF byte; state carries across chunks.
// telnet_lines is chunks_to_lines behind a decoder. telnet::will_echo()
// builds the IAC WILL ECHO a server sends to hide a password as it is typed;
// telnet::escape() doubles 0xFF in data going back to the client.
#pragma once

#include <kamaelia/net/chunks_to_lines.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kamaelia {

namespace telnet {
inline constexpr unsigned char iac = 255, dont = 254, do_ = 253, wont = 252, will = 251, sb = 250, se = 240;
inline constexpr unsigned char echo = 1;
// The longest subnegotiation (IAC SB ... IAC SE, the bytes between) taken as
// one: a terminal type or a window size takes a few bytes, an environment a
// few hundred. Past it the decoder gives the subnegotiation up.
inline constexpr std::size_t max_subnegotiation = 1024;

// IAC WILL ECHO: "I (the server) echo" — the client stops echoing locally.
inline std::string will_echo() { return std::string{char(iac), char(will), char(echo)}; }
inline std::string wont_echo() { return std::string{char(iac), char(wont), char(echo)}; }

// Data for a telnet client: a 0xFF byte goes out as IAC IAC (else the
// client would take it, and what follows, for a command).
inline std::string escape(std::string s) {
    if (s.find(static_cast<char>(iac)) == std::string::npos) return s;
    std::string out;
    out.reserve(s.size() + 8);
    for (char c : s) {
        out.push_back(c);
        if (static_cast<unsigned char>(c) == iac) out.push_back(c);
    }
    return out;
}
} // namespace telnet

class telnet_decoder {
public:
    // Appends the data bytes of `in` to `out`.
    void feed(std::string_view in, std::string& out);
    // The data bytes of `chunk`: the chunk itself, not copied, when it holds
    // no command (most do).
    std::string decode(std::string chunk);
    std::uint64_t commands_seen() const noexcept { return commands_; }
    // Subnegotiations given up past telnet::max_subnegotiation bytes: the
    // bytes after the limit came out as data.
    std::uint64_t subnegotiations_abandoned() const noexcept { return abandoned_; }
    // Not in the middle of a command: data bytes pass through unchanged.
    bool idle() const noexcept { return state_ == st::data; }

private:
    enum class st : std::uint8_t { data, iac, option, sub, sub_iac } state_ = st::data;
    std::uint64_t commands_ = 0;
    std::uint64_t abandoned_ = 0;
    std::size_t sub_len_ = 0; // bytes of the subnegotiation so far
};

class telnet_lines : public chunks_to_lines {
public:
    explicit telnet_lines(std::size_t max_line = default_max_line) : chunks_to_lines(max_line) {}

protected:
    std::string preprocess(std::string chunk) override;

private:
    telnet_decoder decoder_;
};

} // namespace kamaelia
