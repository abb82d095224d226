#include <kamaelia/protocols/telnet.hpp>

namespace kamaelia {

void telnet_decoder::feed(std::string_view in, std::string& out) {
    for (char ch : in) {
        auto c = static_cast<unsigned char>(ch);
        switch (state_) {
        case st::data:
            if (c == telnet::iac) {
                state_ = st::iac;
            } else {
                out.push_back(ch);
            }
            break;
        case st::iac:
            if (c == telnet::iac) {
                out.push_back(ch); // escaped 0xFF
                state_ = st::data;
            } else if (c == telnet::will || c == telnet::wont || c == telnet::do_ || c == telnet::dont) {
                state_ = st::option;
            } else if (c == telnet::sb) {
                state_ = st::sub;
                sub_len_ = 0;
            } else {
                ++commands_; // NOP, GA, AYT, IP... carry no data
                state_ = st::data;
            }
            break;
        case st::option:
            ++commands_;
            state_ = st::data;
            break;
        case st::sub:
            if (c == telnet::iac) {
                state_ = st::sub_iac;
            } else if (++sub_len_ > telnet::max_subnegotiation) {
                // Not telnet: give the subnegotiation up, so what follows is
                // data again and counts toward the line limit (an IAC SB
                // without SE must not hide an endless line).
                ++abandoned_;
                state_ = st::data;
                out.push_back(ch);
            }
            break;
        case st::sub_iac:
            if (c == telnet::se) {
                ++commands_;
                state_ = st::data;
            } else {
                ++sub_len_; // IAC IAC (or a stray IAC) inside: one byte of it
                state_ = st::sub;
            }
            break;
        }
    }
}

std::string telnet_decoder::decode(std::string chunk) {
    // Most chunks carry no IAC at all: pass them through without a copy.
    if (idle() && chunk.find(static_cast<char>(telnet::iac)) == std::string::npos) return chunk;
    std::string out;
    out.reserve(chunk.size());
    feed(chunk, out);
    return out;
}

std::string telnet_lines::preprocess(std::string chunk) { return decoder_.decode(std::move(chunk)); }

} // namespace kamaelia
