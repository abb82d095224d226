// depacketiser: multicaster datagrams in, a verified file out.
//
//   inbox   datagram_batch (from multicast_receiver) or std::string (one datagram)
//   outbox  received_file, once every packet is in and the SHA-256 matches
//   signal  producer_finished after the file (with finish_on_complete), or
//           the end message it was told
//
// Datagrams that fail to decode (damaged, foreign) are counted by reason
// and dropped; packets of another file id are ignored; duplicates (the
// carousel's later passes) cost a bitmap test. A complete file whose digest
// does not match is dropped whole and assembled again from later passes.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/multicast/packet.hpp>
#include <kamaelia/multicast/reassembler.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace kamaelia::multicast {

struct received_file {
    file_meta meta;
    file_bytes data;
};

struct depacketiser_options {
    reassembler::options assembly;
    bool finish_on_complete = true; // end after the file (else: wait for the next one)
};

class depacketiser : public component {
public:
    explicit depacketiser(depacketiser_options o = {}) : opt_(o), asm_(o.assembly) {}
    depacketiser(depacketiser&&) = default;

    const reassembler& assembly() const noexcept { return asm_; }
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
    void feed(std::string_view datagram);

    depacketiser_options opt_;
    reassembler asm_;
    std::array<std::uint64_t, 7> rejected_{};
    std::uint64_t mismatches_ = 0, files_ = 0;
    file_meta last_; // the file delivered last
    time_point first_{}, done_{};
    bool seen_ = false;
};

} // namespace kamaelia::multicast
