#include <kamaelia/multicast/reassembler.hpp>

#include <openssl/evp.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string_view>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 // Linux 5.14; older kernels answer EINVAL
#endif

namespace kamaelia::multicast {

namespace {

constexpr std::uint64_t prefault_step = 128 * 1024; // 32 pages a call
constexpr std::uint64_t prefault_min_run = 16 * 1024;
constexpr std::uint64_t hash_batch = 16; // packets hashed in one go, in order
std::atomic<bool> populate_works{true};

// THP can be had by madvise (enabled: always or madvise, not never).
bool thp_available() {
    static const bool yes = [] {
        std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        if (!f) return false;
        char buf[128] = {};
        std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        return std::string_view(buf, n).find("[never]") == std::string_view::npos;
    }();
    return yes;
}

} // namespace

file_bytes::file_bytes(std::size_t n) : n_(n) {
    if (n == 0) return;
    // Not huge pages for the whole buffer: a forger's scattered packets
    // would each commit 2 MiB. The reassembler advises them step by step
    // ahead of a long in-order run only (prefault()).
    void* p = nullptr;
    if (n >= huge_page) {
        if (::posix_memalign(&p, huge_page, n) != 0) p = nullptr; // address space only, nothing touched
    } else {
        p = std::malloc(n);
    }
    if (!p) throw std::bad_alloc();
    p_.reset(static_cast<char*>(p));
}

void file_bytes::free_deleter::operator()(char* p) const noexcept { std::free(p); }

std::string format_ranges(const std::vector<byte_range>& r, std::size_t max_items) {
    std::string s;
    for (std::size_t i = 0; i < r.size() && i < max_items; ++i) {
        if (i) s += ", ";
        s += std::to_string(r[i].begin) + "-" + std::to_string(r[i].end - 1);
    }
    if (r.size() > max_items) s += ", ... (" + std::to_string(r.size() - max_items) + " more)";
    return s;
}

struct reassembler::hasher {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    hasher() {
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr)) throw std::runtime_error("SHA-256 init failed");
    }
    ~hasher() { EVP_MD_CTX_free(ctx); }
};

void reassembler::hasher_deleter::operator()(hasher* h) const noexcept { delete h; }

std::uint64_t reassembler::hash_some(std::uint64_t max_bytes) {
    std::uint64_t n = meta_.packet_count(), end = hashed_seq_, bytes = 0;
    while (end < n && has(end) && (bytes == 0 || bytes < max_bytes)) bytes += meta_.payload_size(end++);
    if (end == hashed_seq_) return 0;
    EVP_DigestUpdate(hash_->ctx, data_.data() + meta_.offset_of(hashed_seq_), bytes);
    hashed_seq_ = end;
    return bytes;
}

// A fresh page taken by a fault costs a trap for every 4 KiB (every third
// packet of 1,340 bytes); madvise(MADV_POPULATE_WRITE) takes 32 pages in
// one call without the traps. Only a run of packets arriving in order is
// served, and never further ahead than the run has brought: memory still
// follows the data received (a forger scattering packets gets nothing
// faulted for it), and each step is short (populating a whole 32 MiB file
// at once stalled the receiver long enough to lose datagrams). A run that
// has brought about 2 MiB takes its next 2 MiB as one huge page (options::
// huge_pages): a forger would have to send as much in order to get it.
void reassembler::prefault(std::uint64_t seq, std::uint64_t begin, std::uint64_t end) noexcept {
    if (seq != run_next_) { // a jump (a late join, a gap filled): a new run
        run_bytes_ = 0;
        fault_end_ = end;
    }
    run_next_ = seq + 1;
    run_bytes_ += end - begin;
    fault_end_ = std::max(fault_end_, end);
    // Ahead of the data by at most what the run brought, and 32 pages;
    // topped up when half of that is left.
    std::uint64_t ahead = std::min(prefault_step, run_bytes_);
    if (run_bytes_ < prefault_min_run || end + ahead / 2 <= fault_end_) return;
    std::uint64_t to = std::min(meta_.total_size, end + ahead);
    // A run that has brought (all but a small step of) 2 MiB, standing at a
    // 2 MiB boundary of the buffer (file_bytes aligns it): the next 2 MiB
    // as one huge page, so no further ahead than the run has brought, and
    // one small step.
    constexpr std::uint64_t huge = file_bytes::huge_page;
    bool may_huge = opt_.huge_pages && reinterpret_cast<std::uintptr_t>(data_.data()) % huge == 0 && thp_available();
    bool as_huge = may_huge && run_bytes_ + prefault_step >= huge && fault_end_ % huge == 0 &&
                   fault_end_ + huge <= meta_.total_size;
    if (as_huge) {
        to = fault_end_ + huge;
    } else if (may_huge) {
        to = std::min(to, (fault_end_ / huge + 1) * huge); // small steps stop at a boundary: the next may be huge
    }
    if (to <= fault_end_) return;
    // Whole pages inside the buffer only.
    static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    auto lo = (reinterpret_cast<std::uintptr_t>(data_.data() + fault_end_) + page - 1) & ~(page - 1);
    auto hi = reinterpret_cast<std::uintptr_t>(data_.data() + to) & ~(page - 1);
    if (as_huge && ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0) huge_ += hi - lo;
    if (hi > lo && populate_works.load(std::memory_order_relaxed) &&
        ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        populate_works.store(false, std::memory_order_relaxed); // the pages are then taken by faults, as before
    prefaulted_ += to - fault_end_;
    fault_end_ = to;
}

void reassembler::set(std::uint64_t seq) {
    auto& b = bits_[seq >> block_shift];
    if (!b) {
        b.reset(new std::uint64_t[block_words]()); // zeroed
        ++blocks_in_use_;
    }
    b[(seq & ((std::uint64_t(1) << block_shift) - 1)) >> 6] |= std::uint64_t(1) << (seq & 63);
}

reassembler::verdict reassembler::add(const packet_view& p) {
    if (!locked_) {
        if (opt_.file_id != 0 && p.meta.file_id != opt_.file_id) {
            ++ignored_;
            return verdict::other_file;
        }
        // Checked before anything is allocated; decode() already bounded
        // the chunk size by the datagram limit and the count by 2^32.
        if (p.meta.total_size > opt_.max_size || p.meta.total_size > std::numeric_limits<std::size_t>::max() ||
            p.meta.chunk_size == 0 || p.meta.packet_count() > (std::uint64_t(1) << 32)) {
            ++ignored_;
            return verdict::too_large;
        }
        try {
            data_ = file_bytes(static_cast<std::size_t>(p.meta.total_size)); // reserved, not touched
            bits_.clear();
            bits_.resize(static_cast<std::size_t>((p.meta.packet_count() >> block_shift) + 1));
        } catch (const std::bad_alloc&) {
            data_ = file_bytes();
            bits_.clear();
            ++ignored_;
            return verdict::too_large;
        }
        meta_ = p.meta;
        locked_ = true;
        blocks_in_use_ = 0;
        saw_last_ = pass_seen_ = false;
        hash_.reset(new hasher);
        hashed_seq_ = 0;
        run_next_ = run_bytes_ = fault_end_ = prefaulted_ = huge_ = 0;
    } else if (p.meta.file_id != meta_.file_id) {
        ++ignored_;
        return verdict::other_file;
    } else if (!p.meta.same_file(meta_)) {
        ++ignored_;
        return verdict::conflict;
    }
    // decode() checked seq and the payload length against the meta.
    if (p.seq >= meta_.packet_count() || p.payload.size() != meta_.payload_size(p.seq)) {
        ++ignored_;
        return verdict::conflict;
    }
    if (saw_last_) pass_seen_ = true;
    if (p.seq + 1 == meta_.packet_count()) saw_last_ = true;
    if (has(p.seq)) {
        ++duplicates_;
        return verdict::duplicate;
    }
    set(p.seq);
    if (!p.payload.empty()) {
        std::uint64_t at = meta_.offset_of(p.seq);
        prefault(p.seq, at, at + p.payload.size());
        std::memcpy(data_.data() + at, p.payload.data(), p.payload.size());
    }
    ++have_;
    ++added_;
    // The digest grows by stretches of hash_batch packets, not by every
    // packet (a call per 1,340 bytes cost more than the bytes); a packet
    // that fills the gap at the front of a run already there releases it.
    if (opt_.hash_as_added && (p.seq >= hashed_seq_ + hash_batch - 1 || (p.seq == hashed_seq_ && has(p.seq + 1))))
        hash_prefix();
    return verdict::added;
}

bool reassembler::verified() {
    if (!complete()) return false;
    if (verified_ < 0) {
        hash_prefix();
        digest d{};
        unsigned int len = 0;
        EVP_DigestFinal_ex(hash_->ctx, d.data(), &len);
        verified_ = d == meta_.sha256 ? 1 : 0;
    }
    return verified_ == 1;
}

std::vector<byte_range> reassembler::missing() const {
    std::vector<byte_range> out;
    if (!locked_) return out;
    const std::uint64_t n = meta_.packet_count();
    const std::uint64_t block = std::uint64_t(1) << block_shift;
    for (std::uint64_t seq = 0; seq < n;) {
        // Skip whole words of received packets.
        if ((seq & 63) == 0 && word(seq) == ~std::uint64_t(0)) {
            seq += 64;
            continue;
        }
        if (has(seq)) {
            ++seq;
            continue;
        }
        // A run of missing packets: absent blocks and empty words at a stride.
        std::uint64_t first = seq;
        while (seq < n && !has(seq)) {
            if ((seq & (block - 1)) == 0 && !bits_[seq >> block_shift]) {
                seq += block;
            } else if ((seq & 63) == 0 && word(seq) == 0) {
                seq += 64;
            } else {
                ++seq;
            }
        }
        if (seq > n) seq = n;
        std::uint64_t b = meta_.offset_of(first);
        std::uint64_t e = meta_.offset_of(seq - 1) + meta_.payload_size(seq - 1);
        if (e > b) out.push_back({b, e});
    }
    return out;
}

std::uint64_t reassembler::missing_bytes() const {
    std::uint64_t total = 0;
    for (const byte_range& r : missing()) total += r.end - r.begin;
    return total;
}

file_bytes reassembler::release() {
    file_bytes out = std::move(data_);
    reset();
    return out;
}

void reassembler::reset() {
    locked_ = false;
    verified_ = -1;
    meta_ = {};
    data_ = file_bytes();
    bits_.clear();
    blocks_in_use_ = 0;
    saw_last_ = pass_seen_ = false;
    hash_.reset();
    hashed_seq_ = 0;
    have_ = 0;
    run_next_ = run_bytes_ = fault_end_ = prefaulted_ = huge_ = 0;
}

} // namespace kamaelia::multicast
