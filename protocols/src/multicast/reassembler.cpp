#include <kamaelia/multicast/reassembler.hpp>

#include <cstring>

namespace kamaelia::multicast {

std::string format_ranges(const std::vector<byte_range>& r, std::size_t max_items) {
    std::string s;
    for (std::size_t i = 0; i < r.size() && i < max_items; ++i) {
        if (i) s += ", ";
        s += std::to_string(r[i].begin) + "-" + std::to_string(r[i].end - 1);
    }
    if (r.size() > max_items) s += ", ... (" + std::to_string(r.size() - max_items) + " more)";
    return s;
}

reassembler::verdict reassembler::add(const packet_view& p) {
    if (!locked_) {
        if (opt_.file_id != 0 && p.meta.file_id != opt_.file_id) {
            ++ignored_;
            return verdict::other_file;
        }
        if (p.meta.total_size > opt_.max_size) {
            ++ignored_;
            return verdict::too_large;
        }
        meta_ = p.meta;
        locked_ = true;
        data_.assign(meta_.total_size, '\0');
        bits_.assign((meta_.packet_count() + 63) / 64, 0);
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
    if (has(p.seq)) {
        ++duplicates_;
        return verdict::duplicate;
    }
    bits_[p.seq >> 6] |= std::uint64_t(1) << (p.seq & 63);
    if (!p.payload.empty()) std::memcpy(data_.data() + meta_.offset_of(p.seq), p.payload.data(), p.payload.size());
    ++have_;
    ++added_;
    return verdict::added;
}

bool reassembler::verified() {
    if (!complete()) return false;
    if (verified_ < 0) verified_ = sha256(data_) == meta_.sha256 ? 1 : 0;
    return verified_ == 1;
}

std::vector<byte_range> reassembler::missing() const {
    std::vector<byte_range> out;
    if (!locked_) return out;
    std::uint64_t n = meta_.packet_count();
    for (std::uint64_t seq = 0; seq < n;) {
        // Skip whole words of received packets.
        if ((seq & 63) == 0 && bits_[seq >> 6] == ~std::uint64_t(0)) {
            seq += 64;
            continue;
        }
        if (has(seq)) {
            ++seq;
            continue;
        }
        std::uint64_t first = seq;
        while (seq < n && !has(seq)) ++seq;
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

std::string reassembler::release() {
    std::string out = std::move(data_);
    reset();
    return out;
}

void reassembler::reset() {
    locked_ = false;
    verified_ = -1;
    meta_ = {};
    data_.clear();
    data_.shrink_to_fit();
    bits_.clear();
    have_ = 0;
}

} // namespace kamaelia::multicast
