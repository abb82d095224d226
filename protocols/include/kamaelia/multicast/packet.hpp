// The file multicaster's datagram format: pure encode/decode functions
// (no sockets, no coroutines), so they are easy to test and fuzz.
//
// Every datagram describes itself, so a receiver that joins at any point of
// the carousel knows the file from the first packet it sees:
//
//   offset size  field (big-endian)
//    0      2    magic "KM"
//    2      1    version (1)
//    3      1    flags (0; others are refused)
//    4      4    file id
//    8      4    sequence number (packet index within the file)
//   12      8    total file size in bytes
//   20      2    chunk size: payload bytes of every packet but the last
//   22      2    payload length of this packet
//   24     32    SHA-256 of the whole file
//   56      4    CRC-32C of bytes 0..55 and the payload
//   60      -    payload: file bytes [seq * chunk, seq * chunk + length)
//
// A datagram of 1,400 bytes (the default, below any real MTU so nothing
// fragments) carries 1,340 file bytes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kamaelia::multicast {

inline constexpr std::size_t header_size = 60;
inline constexpr std::size_t default_datagram_size = 1400;
inline constexpr std::size_t max_datagram_size = 65507; // IPv4 UDP payload limit
inline constexpr std::uint8_t format_version = 1;

using digest = std::array<std::uint8_t, 32>;

// What every packet of one file repeats.
struct file_meta {
    std::uint32_t file_id = 0;
    std::uint64_t total_size = 0;
    std::uint16_t chunk_size = 0; // payload bytes per packet (the last may be shorter)
    digest sha256{};

    // Packets in the file: at least one (an empty file is one empty packet).
    std::uint64_t packet_count() const noexcept {
        if (chunk_size == 0) return 0;
        std::uint64_t n = total_size / chunk_size + (total_size % chunk_size != 0); // no overflow near 2^64
        return n == 0 ? 1 : n;
    }
    std::uint64_t offset_of(std::uint64_t seq) const noexcept { return seq * chunk_size; }
    // Payload length of packet `seq` (seq < packet_count()).
    std::size_t payload_size(std::uint64_t seq) const noexcept {
        std::uint64_t off = offset_of(seq);
        return off >= total_size ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, total_size - off));
    }
    bool same_file(const file_meta& o) const noexcept {
        return file_id == o.file_id && total_size == o.total_size && chunk_size == o.chunk_size && sha256 == o.sha256;
    }
};

// A decoded datagram; `payload` points into the datagram it came from.
struct packet_view {
    file_meta meta;
    std::uint32_t seq = 0;
    std::string_view payload;
};

enum class decode_error : std::uint8_t {
    none,
    too_short,   // shorter than the header
    bad_magic,   // not ours
    bad_version, // a version or flags this build does not know
    bad_length,  // the payload length disagrees with the datagram
    bad_crc,     // damaged in transit
    bad_geometry // sequence number, sizes and payload length do not fit together
};
std::string_view to_string(decode_error e) noexcept;

// Payload bytes per packet for a datagram size (header included).
// Throws std::invalid_argument when the size cannot hold a header and a byte,
// or exceeds max_datagram_size.
std::size_t chunk_size_for(std::size_t datagram_size);

// Writes one packet (header + payload) to `out`, which must hold
// header_size + payload.size() bytes; returns the bytes written. Throws
// std::invalid_argument if the payload does not fit the meta and seq.
std::size_t encode_into(const file_meta& meta, std::uint32_t seq, std::string_view payload, char* out);
// Appends one packet to `out`.
void encode(const file_meta& meta, std::uint32_t seq, std::string_view payload, std::string& out);
std::string encode(const file_meta& meta, std::uint32_t seq, std::string_view payload);

// Parses and checks one datagram (CRC and geometry included).
decode_error decode(std::string_view datagram, packet_view& out) noexcept;

// Hashing helpers. SHA-256 is OpenSSL's. The packet CRC is CRC-32C
// (Castagnoli): the SSE4.2 instruction computes it several times faster
// than zlib's table-driven CRC-32, which was the largest user-space cost on
// both ends; a table does it where the instruction is missing. Chains like
// zlib's crc32: crc32c(b, crc32c(a)) == crc32c(a + b).
digest sha256(std::string_view data);
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0) noexcept;
namespace detail {
std::uint32_t crc32c_portable(std::string_view data, std::uint32_t crc = 0) noexcept; // the table (for tests)
}
std::string to_hex(const digest& d);

// A file id from the content: the first four bytes of its SHA-256.
std::uint32_t file_id_from(const digest& d) noexcept;

} // namespace kamaelia::multicast
