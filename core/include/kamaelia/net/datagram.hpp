// datagram_batch: several UDP datagrams in one message.
//
// The multicast receiver reads a batch per readiness (recvmmsg) and emits it
// as one message: one buffer holds every payload back to back, so a batch
// of 32 datagrams costs two allocations, not 32. The multicast sender takes
// batches too (sendmmsg), as well as single datagrams as std::string.
//
//   for (std::size_t i = 0; i < b.size(); ++i) use(b[i], b.source(i));
#pragma once

#include <asio/ip/udp.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia {

class datagram_batch {
public:
    struct entry {
        std::uint32_t offset = 0;
        std::uint32_t size = 0;
        asio::ip::udp::endpoint source; // unset on the sending side
    };

    datagram_batch() = default;
    // One datagram, its bytes moved in.
    explicit datagram_batch(std::string one) : bytes_(std::move(one)) {
        entries_.push_back({0, static_cast<std::uint32_t>(bytes_.size()), {}});
    }
    // Room for `datagrams` datagrams of `bytes` bytes in all.
    void reserve(std::size_t datagrams, std::size_t bytes) {
        entries_.reserve(datagrams);
        bytes_.reserve(bytes);
    }
    void add(std::string_view d, const asio::ip::udp::endpoint& source = {}) {
        entries_.push_back({static_cast<std::uint32_t>(bytes_.size()), static_cast<std::uint32_t>(d.size()), source});
        bytes_.append(d.data(), d.size());
    }
    // Makes room for a datagram of `n` bytes and returns where to write it
    // (valid until the next add/append).
    char* append(std::size_t n, const asio::ip::udp::endpoint& source = {}) {
        std::size_t at = bytes_.size();
        entries_.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(n), source});
        bytes_.resize(at + n);
        return bytes_.data() + at;
    }
    // Shrinks the last datagram appended to `n` bytes.
    void shrink_last(std::size_t n) {
        entry& e = entries_.back();
        bytes_.resize(e.offset + n);
        e.size = static_cast<std::uint32_t>(n);
    }

    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }
    std::size_t total_bytes() const noexcept { return bytes_.size(); }
    std::string_view operator[](std::size_t i) const noexcept {
        return std::string_view(bytes_.data() + entries_[i].offset, entries_[i].size);
    }
    const asio::ip::udp::endpoint& source(std::size_t i) const noexcept { return entries_[i].source; }
    void clear() noexcept {
        entries_.clear();
        bytes_.clear();
    }

private:
    std::vector<entry> entries_;
    std::string bytes_;
};

} // namespace kamaelia
