#include <kamaelia/redis/envelope.hpp>

#include <cstdint>
#include <cstring>
#include <random>

namespace kamaelia::redis {

origin_id new_origin() {
    std::random_device rd;
    origin_id id{};
    for (std::size_t i = 0; i < id.size(); i += 4) {
        unsigned v = rd();
        std::memcpy(id.data() + i, &v, 4);
    }
    return id;
}

void wrap_into(std::string& out, const origin_id& origin, std::string_view payload) {
    out.append(envelope_magic);
    out.append(reinterpret_cast<const char*>(origin.data()), origin.size());
    out.append(payload);
}

std::string wrap(const origin_id& origin, std::string_view payload) {
    std::string out;
    out.reserve(envelope_header + payload.size());
    wrap_into(out, origin, payload);
    return out;
}

void begin_pack(std::string& out, const origin_id& origin) {
    out.assign(pack_magic);
    out.append(reinterpret_cast<const char*>(origin.data()), origin.size());
}

void add_to_pack(std::string& out, std::string_view payload) {
    auto n = static_cast<std::uint32_t>(payload.size());
    const char len[pack_frame_header] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                         static_cast<char>(n >> 8), static_cast<char>(n)};
    out.append(len, sizeof len);
    out.append(payload);
}

unwrapped unwrap(std::string_view raw) noexcept {
    if (raw.size() < envelope_header) return {std::nullopt, raw};
    std::string_view magic = raw.substr(0, envelope_magic.size());
    bool pack = magic == pack_magic;
    if (!pack && magic != envelope_magic) return {std::nullopt, raw};
    origin_id id{};
    std::memcpy(id.data(), raw.data() + envelope_magic.size(), id.size());
    return {id, raw.substr(envelope_header), pack};
}

namespace {
// The next frame of a pack off the front of `rest`; false at the end or
// on a length past the end (`bad`).
bool next_frame(std::string_view& rest, std::string_view& frame, bool& bad) noexcept {
    if (rest.empty()) return false;
    if (rest.size() < pack_frame_header) {
        bad = true;
        return false;
    }
    auto b = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(rest[i])); };
    std::size_t n = b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
    if (n > rest.size() - pack_frame_header) {
        bad = true;
        return false;
    }
    frame = rest.substr(pack_frame_header, n);
    rest.remove_prefix(pack_frame_header + n);
    return true;
}
} // namespace

payloads::payloads(const unwrapped& u) noexcept : rest_(u.payload), pack_(u.pack) {
    if (!pack_) {
        count_ = 1;
        return;
    }
    // Checked whole before anything is delivered: all of a pack or none.
    std::string_view walk = rest_, frame;
    std::size_t n = 0;
    bool bad = false;
    while (next_frame(walk, frame, bad)) ++n;
    if (bad) {
        rest_ = {};
        return;
    }
    count_ = n;
}

bool payloads::next(std::string_view& payload) noexcept {
    if (!count_) return false;
    if (!pack_) {
        if (done_) return false;
        payload = rest_;
        done_ = true;
        return true;
    }
    bool bad = false;
    return next_frame(rest_, payload, bad);
}

} // namespace kamaelia::redis
