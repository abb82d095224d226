// Printable text: the one filter for text one user sends to another (the
// chat's lines, the board's messages and what the board prints).
//
// What passes: tab, the printable ASCII range (0x20-0x7E), and well-formed
// UTF-8 for code points from U+00A0 up, except the invisible ones that
// steer how a terminal lays a line out (the bidirectional overrides and
// isolates U+202A-U+202E and U+2066-U+2069, and U+2028/U+2029, the line and
// paragraph separators). What does not: the C0 controls (NUL, CR, LF, ESC,
// so every CSI and OSC sequence: ESC[K, ESC[2J, OSC 52...), DEL, and the C1
// controls U+0080-U+009F (CSI is also 0x9B). A byte that is not part of a
// well-formed UTF-8 sequence is taken as Latin-1: 0xA0-0xFF pass as they
// are (old 8-bit text still shows), 0x80-0x9F are C1 controls and do not.
// So a user can write "café" or "日本", never move another user's cursor,
// clear their screen, write their clipboard or forge a line's prefix.
//
// printable_text replaces each refused character (one code point, or one
// stray byte) with '?'; is_printable_text says whether nothing would be.
// Both are linear in the input and allocate at most once.
#pragma once

#include <string>
#include <string_view>

namespace kamaelia {

bool is_printable_text(std::string_view s) noexcept;
std::string printable_text(std::string_view s);

} // namespace kamaelia
