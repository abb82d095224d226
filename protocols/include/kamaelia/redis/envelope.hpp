// The envelope a bridged backplane puts around what it publishes to Redis,
// so that it can recognise its own messages when Redis sends them back:
//
//   bytes 0..3    "\0KB1"          (magic: a NUL, then "KB1")
//   bytes 4..19   origin id        (16 random bytes, one per bridge)
//   bytes 20..    the payload      (as published locally, byte for byte)
//
// Anything else on the channel - what `redis-cli PUBLISH` or another program
// sends - is a plain payload and is delivered as it is. (A plain payload
// that itself starts with the 4 magic bytes and is at least 20 bytes long is
// read as an envelope: other publishers should not start with a NUL byte.)
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::redis {

using origin_id = std::array<unsigned char, 16>;

inline constexpr std::string_view envelope_magic{"\0KB1", 4};
inline constexpr std::size_t envelope_header = envelope_magic.size() + std::tuple_size_v<origin_id>;

// A fresh random origin id (from the system's random source).
origin_id new_origin();

// The envelope around `payload`.
std::string wrap(const origin_id& origin, std::string_view payload);
// Appends the envelope around `payload` to `out` (no temporary).
void wrap_into(std::string& out, const origin_id& origin, std::string_view payload);

struct unwrapped {
    std::optional<origin_id> origin; // none: a plain payload
    std::string_view payload;
};
unwrapped unwrap(std::string_view raw) noexcept;

} // namespace kamaelia::redis
