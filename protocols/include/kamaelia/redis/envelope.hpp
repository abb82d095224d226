// The envelope a bridged backplane puts around what it publishes to Redis,
// so that it can recognise its own messages when Redis sends them back.
// One message:
//
//   bytes 0..3    "\0KB1"          (magic: a NUL, then "KB1")
//   bytes 4..19   origin id        (16 random bytes, one per bridge)
//   bytes 20..    the payload      (as published locally, byte for byte)
//
// A pack: the messages a bridge took from its backplane in one turn, in one
// PUBLISH (one command for Redis to run and for every bridge on the channel
// to parse, instead of one a message):
//
//   bytes 0..3    "\0KB2"
//   bytes 4..19   origin id
//   then, for each message in order: its length (4 bytes, big-endian) and
//   its bytes. A pack whose lengths do not add up to its size is malformed
//   and delivered not at all.
//
// Anything else on the channel - what `redis-cli PUBLISH` or another program
// sends - is a plain payload and is delivered as it is. (A plain payload
// that itself starts with one of the magics and is at least 20 bytes long
// is read as an envelope: other publishers should not start with a NUL byte.)
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::redis {

using origin_id = std::array<unsigned char, 16>;

inline constexpr std::string_view envelope_magic{"\0KB1", 4};
inline constexpr std::string_view pack_magic{"\0KB2", 4};
inline constexpr std::size_t envelope_header = envelope_magic.size() + std::tuple_size_v<origin_id>;
inline constexpr std::size_t pack_frame_header = 4; // a message's length in a pack

// A fresh random origin id (from the system's random source).
origin_id new_origin();

// The envelope around `payload`.
std::string wrap(const origin_id& origin, std::string_view payload);
// Appends the envelope around `payload` to `out` (no temporary).
void wrap_into(std::string& out, const origin_id& origin, std::string_view payload);

// Starts a pack in `out` (replacing what it held).
void begin_pack(std::string& out, const origin_id& origin);
// Appends one message to a pack begun with begin_pack (at most 4 GiB - 1).
void add_to_pack(std::string& out, std::string_view payload);

struct unwrapped {
    std::optional<origin_id> origin; // none: a plain payload
    std::string_view payload;        // the message; for a pack, its frames (see payloads)
    bool pack = false;
};
unwrapped unwrap(std::string_view raw) noexcept;

// The messages an unwrapped carries, in order: one, or a pack's. count() is
// none for a malformed pack (then next() yields nothing).
class payloads {
public:
    explicit payloads(const unwrapped& u) noexcept;
    std::optional<std::size_t> count() const noexcept { return count_; }
    bool next(std::string_view& payload) noexcept;

private:
    std::string_view rest_;
    bool pack_;
    bool done_ = false; // the one message of a non-pack was given
    std::optional<std::size_t> count_;
};

} // namespace kamaelia::redis
