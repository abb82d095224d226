// The receiving end of the file multicaster, as a plain object: it places
// decoded packets by sequence number (any order, duplicates ignored), knows
// which byte ranges are still missing, and verifies the whole file against
// the SHA-256 the packets carry. A carousel pass fills the gaps a lossy
// earlier pass left.
//
// Hostile packets (issue 14): a file larger than max_size is refused before
// anything is allocated. Memory grows with the data received, not with the
// sizes a packet claims: the file's buffer is reserved, not touched (pages
// come as packets fill them), and the bitmap of received packets is kept in
// blocks of 65,536 packets allocated when a packet first lands in one (a
// claimed 2^32 packets costs a 512 KiB directory, not 512 MiB of bits).
// missing() is linear in the blocks touched, not in the packet count.
#pragma once

#include <kamaelia/multicast/packet.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia::multicast {

struct byte_range {
    std::uint64_t begin = 0, end = 0; // [begin, end)
    bool operator==(const byte_range&) const = default;
};
// "0-1339, 2680-4019" (inclusive ends, the way people read ranges); empty: "".
std::string format_ranges(const std::vector<byte_range>& r, std::size_t max_items = 20);

// A file's bytes in one allocation that is not zero-filled first: clearing
// a large file at its first packet would stall the receiver long enough for
// the socket buffer to overflow; pages are touched as packets fill them.
// From 2 MiB on it starts on a 2 MiB boundary, so that the reassembler can
// give a long in-order run transparent huge pages.
class file_bytes {
public:
    static constexpr std::size_t huge_page = std::size_t(2) << 20;
    file_bytes() = default;
    explicit file_bytes(std::size_t n);
    file_bytes(file_bytes&&) noexcept = default;
    file_bytes& operator=(file_bytes&&) noexcept = default;
    file_bytes(const file_bytes& o) : file_bytes(o.n_) {
        if (n_) std::memcpy(p_.get(), o.p_.get(), n_);
    }
    file_bytes& operator=(const file_bytes& o) {
        if (this != &o) *this = file_bytes(o);
        return *this;
    }
    char* data() noexcept { return p_.get(); }
    std::size_t size() const noexcept { return n_; }
    std::string_view view() const noexcept { return {p_.get(), n_}; }
    bool operator==(std::string_view s) const noexcept { return view() == s; }

private:
    struct free_deleter {
        void operator()(char* p) const noexcept;
    };
    std::unique_ptr<char, free_deleter> p_;
    std::size_t n_ = 0;
};

class reassembler {
public:
    struct options {
        std::uint32_t file_id = 0;                      // 0: take the first file seen
        std::uint64_t max_size = default_max_file_size; // refuse bigger files (memory)
        // Hash the gap-free prefix as add() extends it; false: only when
        // the owner calls hash_some() (when it has nothing else to do), and
        // whatever is left in verified().
        bool hash_as_added = true;
        // Once an in-order run has brought about 2 MiB, fault the pages
        // ahead of it in as transparent huge pages, 2 MiB a step (where the kernel
        // has THP at all): one fault and one page-table entry instead of
        // 512. On a virtual machine that shadows the guest's page tables a
        // 4 KiB fault cost ~10 us (3.4 us a 1,340-byte packet, more than
        // everything else the receiver does); see docs/BENCHMARKS.md, mcast.
        bool huge_pages = true;
    };
    static constexpr std::uint64_t default_max_file_size = std::uint64_t(4) << 30;
    enum class verdict : std::uint8_t {
        added,      // new data
        duplicate,  // already had it
        other_file, // another file id: ignored
        conflict,   // this file id, but other sizes or digest: ignored
        too_large,  // over max_size: ignored
    };

    reassembler() : reassembler(options{}) {}
    explicit reassembler(options o) : opt_(o) {}

    verdict add(const packet_view& p);

    bool locked() const noexcept { return locked_; }
    const file_meta& meta() const noexcept { return meta_; }
    bool complete() const noexcept { return locked_ && have_ == meta_.packet_count(); }
    // The SHA-256 of the assembled bytes matches (only when complete()).
    // The digest is computed as the file fills in order (the prefix that
    // has no gap is hashed as it grows, 16 packets at a time, or by
    // hash_some() without hash_as_added), so in the usual case little is
    // left to hash here.
    bool verified();
    // Hashes up to about `max_bytes` more of the gap-free prefix (whole
    // packets, at least one); returns the bytes hashed.
    std::uint64_t hash_some(std::uint64_t max_bytes);
    // Part of the gap-free prefix is received but not hashed yet.
    bool hash_behind() const noexcept { return locked_ && hashed_seq_ < meta_.packet_count() && has(hashed_seq_); }
    std::uint64_t packets_hashed() const noexcept { return hashed_seq_; }
    // Byte ranges not received yet (merged). Before the first packet the size
    // is unknown: then everything is missing and this returns {}.
    std::vector<byte_range> missing() const;
    std::uint64_t missing_bytes() const;
    std::string_view data() const noexcept { return data_.view(); }
    // Drops everything, so the next packet starts a new file (after a digest
    // mismatch, say).
    void reset();
    // Moves the assembled bytes out and resets.
    file_bytes release();

    std::uint64_t packets_added() const noexcept { return added_; }
    std::uint64_t duplicates() const noexcept { return duplicates_; }
    std::uint64_t ignored() const noexcept { return ignored_; }
    std::uint64_t packets_have() const noexcept { return have_; }
    // The sender has finished a pass that we saw: the last packet arrived,
    // then another one (the next pass). One stray datagram never does that.
    bool pass_seen() const noexcept { return pass_seen_; }
    // Bitmap blocks allocated (for tests: memory follows the data).
    std::size_t bitmap_blocks() const noexcept { return blocks_in_use_; }
    // File bytes whose pages were faulted in ahead of the data (see
    // prefault(); for tests: never more than was received in order).
    std::uint64_t prefaulted_bytes() const noexcept { return prefaulted_; }
    // Of those, the bytes advised as huge pages (whether the kernel could
    // give them is its business).
    std::uint64_t huge_bytes() const noexcept { return huge_; }

private:
    struct hasher;
    struct hasher_deleter {
        void operator()(hasher* h) const noexcept;
    };
    static constexpr unsigned block_shift = 16; // packets per bitmap block: 65,536
    static constexpr std::size_t block_words = (std::size_t(1) << block_shift) / 64;
    bool has(std::uint64_t seq) const noexcept {
        const auto& b = bits_[seq >> block_shift];
        return b && ((b[(seq & ((std::uint64_t(1) << block_shift) - 1)) >> 6] >> (seq & 63)) & 1);
    }
    void set(std::uint64_t seq);
    // The word holding `seq` (0 when its block is absent).
    std::uint64_t word(std::uint64_t seq) const noexcept {
        const auto& b = bits_[seq >> block_shift];
        return b ? b[(seq & ((std::uint64_t(1) << block_shift) - 1)) >> 6] : 0;
    }
    void hash_prefix() { hash_some(std::numeric_limits<std::uint64_t>::max()); }
    // Before packet `seq` lands at [begin, end): faults in the pages ahead
    // of a run of packets arriving in order.
    void prefault(std::uint64_t seq, std::uint64_t begin, std::uint64_t end) noexcept;

    options opt_;
    file_meta meta_;
    bool locked_ = false;
    int verified_ = -1; // -1 unknown, 0 mismatch, 1 match
    file_bytes data_;
    std::vector<std::unique_ptr<std::uint64_t[]>> bits_; // blocks, allocated on first use
    std::size_t blocks_in_use_ = 0;
    bool saw_last_ = false, pass_seen_ = false;
    std::unique_ptr<hasher, hasher_deleter> hash_;
    std::uint64_t hashed_seq_ = 0; // packets [0, hashed_seq_) are in the digest
    std::uint64_t have_ = 0, added_ = 0, duplicates_ = 0, ignored_ = 0;
    // The in-order run: the packet it expects next, its bytes, and where
    // the pages faulted in ahead of it end.
    std::uint64_t run_next_ = 0, run_bytes_ = 0, fault_end_ = 0, prefaulted_ = 0, huge_ = 0;
};

} // namespace kamaelia::multicast
