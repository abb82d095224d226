#include <kamaelia/redis/envelope.hpp>

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

unwrapped unwrap(std::string_view raw) noexcept {
    if (raw.size() < envelope_header || raw.substr(0, envelope_magic.size()) != envelope_magic)
        return {std::nullopt, raw};
    origin_id id{};
    std::memcpy(id.data(), raw.data() + envelope_magic.size(), id.size());
    return {id, raw.substr(envelope_header)};
}

} // namespace kamaelia::redis
