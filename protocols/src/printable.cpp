#include <kamaelia/protocols/printable.hpp>

#include <cstdint>

namespace kamaelia {

namespace {

// One step over `s` at `i`: how many bytes the next unit takes and whether
// it may be shown.
struct unit {
    std::size_t len;
    bool ok;
};

bool printable_code_point(std::uint32_t cp) noexcept {
    if (cp < 0xA0) return false; // C1 (the ASCII range is handled before)
    if (cp >= 0x202A && cp <= 0x202E) return false;
    if (cp >= 0x2066 && cp <= 0x2069) return false;
    if (cp == 0x2028 || cp == 0x2029) return false;
    return true;
}

unit next_unit(std::string_view s, std::size_t i) noexcept {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return {1, b == '\t' || (b >= 0x20 && b < 0x7F)};
    // A well-formed UTF-8 sequence (no overlong forms, no surrogates, at most U+10FFFF)?
    std::size_t n = 0;
    std::uint32_t cp = 0, min = 0;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2, cp = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, cp = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, cp = b & 0x07, min = 0x10000;
    }
    bool well_formed = n != 0 && i + n <= s.size();
    for (std::size_t k = 1; well_formed && k < n; ++k) {
        auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) {
            well_formed = false;
        } else {
            cp = (cp << 6) | (c & 0x3F);
        }
    }
    if (well_formed && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF))
        return {n, printable_code_point(cp)};
    // A stray byte: Latin-1, where 0x80-0x9F are the C1 controls.
    return {1, b >= 0xA0};
}

} // namespace

bool is_printable_text(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        unit u = next_unit(s, i);
        if (!u.ok) return false;
        i += u.len;
    }
    return true;
}

std::string printable_text(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        unit u = next_unit(s, i);
        if (u.ok) {
            out.append(s.data() + i, u.len);
        } else {
            out += '?';
        }
        i += u.len;
    }
    return out;
}

} // namespace kamaelia
