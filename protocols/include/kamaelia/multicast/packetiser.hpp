// packetiser: file chunks in, multicaster datagrams out (see packet.hpp).
//
//   inbox   file_chunk (from file_reader, aligned to meta.chunk_size)
//   outbox  datagram_batch: one datagram per chunk, header and CRC added
//   control/signal: the usual end messages, passed on once the inbox is done
//
// A chunk that does not fit the file's geometry (wrong offset or length)
// is a programming error: the packetiser fails with a clear message.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/multicast/file_reader.hpp>
#include <kamaelia/multicast/packet.hpp>
#include <kamaelia/net/datagram.hpp>

#include <cstdint>

namespace kamaelia::multicast {

// The datagrams for one chunk message (pure: the component's whole work).
datagram_batch packetise(const file_meta& meta, const file_chunk& chunk);

// Size and SHA-256 of a file, reading it once in blocks (for the sender,
// before it starts). Throws std::system_error if it cannot be read.
file_meta describe_file(const std::string& path, std::uint16_t chunk_size);

class packetiser : public component {
public:
    explicit packetiser(file_meta meta) : meta_(meta) {}
    packetiser(packetiser&&) = default;
    const file_meta& meta() const noexcept { return meta_; }
    std::uint64_t packets() const noexcept { return packets_; }
    std::string type_name() const override { return "packetiser"; }

protected:
    task main() override;

private:
    file_meta meta_;
    std::uint64_t packets_ = 0;
};

} // namespace kamaelia::multicast
