// depacketiser: multicaster datagrams in, a verified file out.
//
//   inbox   datagram_batch (from multicast_receiver) or std::string (one datagram)
//   outbox  received_file, once every packet is in and the SHA-256 matches
//   signal  producer_finished after the file (with finish_on_complete), or
//           the end message it was told
//
// Datagrams that fail to decode (damaged, foreign) are counted by reason
// and dropped; duplicates (the carousel's later passes) cost a bitmap test.
// A complete file whose digest does not match is dropped whole and
// assembled again from later passes.
//
// Which file: with assembly.file_id set, only that one. Otherwise every file
// seen is assembled side by side (at most max_candidates of them; a new
// one evicts the one with the fewest packets) until one of them is seen to
// complete a carousel pass (its last packet, then another): that one is
// followed and the others are dropped. So a stray datagram of another file,
// sent before the real sender starts, never makes it ignore the real
// transfer. Each file is told apart by its whole header (id, size, chunk
// size, digest), so a forged packet reusing a real id cannot lock it out
// either. On a network where others can send to the group, --file-id says
// which file is wanted; the digest then decides whether it arrived.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/multicast/packet.hpp>
#include <kamaelia/multicast/reassembler.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia::multicast {

struct received_file {
    file_meta meta;
    file_bytes data;
};

struct depacketiser_options {
    reassembler::options assembly;
    bool finish_on_complete = true; // end after the file (else: wait for the next one)
    std::size_t max_candidates = 4; // files assembled side by side before one is followed
    // SHA-256 only when the inbox is empty (in slices, yielding between
    // them), not as each datagram is placed: when the receiver falls behind
    // the stream (its core shared, a burst), it spends its time draining
    // the socket, and the digest catches up when the datagrams pause or
    // at the end. What is checked is the same. Off by default: on a core
    // of its own the receiver was slower with it (a 32 MiB pass verified
    // 71-73 ms after its first packet, against 64-65 ms hashing as placed:
    // the slices, the yields and a colder cache cost more than they save).
    bool hash_when_idle = false;
};

class depacketiser : public component {
public:
    explicit depacketiser(depacketiser_options o = {}) : opt_(o), empty_(o.assembly) {
        if (opt_.hash_when_idle) opt_.assembly.hash_as_added = false;
    }
    depacketiser(depacketiser&&) = default;

    // The file followed, or else the candidate with the most packets; after
    // a file was delivered and before the next one starts, that file's (its
    // counters); an empty assembly before any packet.
    const reassembler& assembly() const noexcept;
    std::size_t candidates() const noexcept { return cands_.size(); }
    bool following() const noexcept { return following_; }
    // Datagrams dropped, by decode_error (index 0 unused).
    const std::array<std::uint64_t, 7>& rejected() const noexcept { return rejected_; }
    std::uint64_t rejected_total() const noexcept;
    std::uint64_t digest_mismatches() const noexcept { return mismatches_; }
    std::uint64_t files_done() const noexcept { return files_; }
    // Scheduler times of the first packet and of completion (for rates).
    time_point first_packet() const noexcept { return first_; }
    time_point completed_at() const noexcept { return done_; }
    std::string type_name() const override { return "depacketiser"; }

protected:
    task main() override;

private:
    // The candidate the datagram went to (nullptr if none).
    reassembler* feed(std::string_view datagram);
    // A candidate whose digest is behind its data (hash_when_idle).
    reassembler* behind() const noexcept;

    depacketiser_options opt_;
    std::vector<std::unique_ptr<reassembler>> cands_; // one while following_
    bool following_ = false;
    std::unique_ptr<reassembler> delivered_; // the last file's (its counters)
    reassembler empty_;
    std::array<std::uint64_t, 7> rejected_{};
    std::uint64_t mismatches_ = 0, files_ = 0;
    file_meta last_; // the file delivered last
    time_point first_{}, done_{};
    bool seen_ = false;
};

} // namespace kamaelia::multicast
