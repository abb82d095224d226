#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/multicast/depacketiser.hpp>
#include <kamaelia/net/datagram.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kamaelia::multicast {

namespace {
constexpr std::uint64_t hash_slice = 64 * 1024;
}

std::uint64_t depacketiser::rejected_total() const noexcept {
    std::uint64_t n = 0;
    for (auto v : rejected_) n += v;
    return n;
}

const reassembler& depacketiser::assembly() const noexcept {
    const reassembler* best = cands_.empty() && delivered_ ? delivered_.get() : &empty_;
    for (const auto& c : cands_)
        if (best == &empty_ || c->packets_have() > best->packets_have()) best = c.get();
    return *best;
}

reassembler* depacketiser::feed(std::string_view d) {
    packet_view p;
    decode_error e = decode(d, p);
    if (e != decode_error::none) {
        ++rejected_[static_cast<std::size_t>(e)];
        return nullptr;
    }
    if (!seen_) {
        seen_ = true;
        first_ = sched()->now();
    }
    // The carousel repeats a file already delivered: skip it cheaply.
    if (files_ > 0 && p.meta.same_file(last_)) return nullptr;
    if (opt_.assembly.file_id != 0 && p.meta.file_id != opt_.assembly.file_id) return nullptr;
    reassembler* r = nullptr;
    for (auto& c : cands_)
        if (c->meta().same_file(p.meta)) r = c.get();
    if (!r) {
        if (following_) return nullptr;
        if (p.meta.total_size > opt_.assembly.max_size) return nullptr; // before any allocation
        if (cands_.size() >= std::max<std::size_t>(1, opt_.max_candidates)) {
            auto least = std::min_element(cands_.begin(), cands_.end(), [](const auto& a, const auto& b) {
                return a->packets_have() < b->packets_have();
            });
            cands_.erase(least);
        }
        cands_.push_back(std::make_unique<reassembler>(opt_.assembly));
        r = cands_.back().get();
    }
    if (r->add(p) == reassembler::verdict::too_large) {
        std::erase_if(cands_, [r](const auto& c) { return c.get() == r; });
        return nullptr;
    }
    if (!following_ && r->pass_seen()) {
        // This sender has completed a pass: follow it, drop the others.
        following_ = true;
        std::erase_if(cands_, [r](const auto& c) { return c.get() != r; });
    }
    return r;
}

reassembler* depacketiser::behind() const noexcept {
    if (!opt_.hash_when_idle) return nullptr;
    for (const auto& c : cands_)
        if (c->hash_behind()) return c.get();
    return nullptr;
}

task depacketiser::main() {
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            reassembler* done = nullptr;
            auto take = [&](std::string_view d) {
                reassembler* r = feed(d);
                if (r && !done && r->complete()) done = r;
            };
            if (const auto* b = m->peek<datagram_batch>()) {
                for (std::size_t i = 0; i < b->size() && !done; ++i) take((*b)[i]);
            } else if (const auto* s = m->peek<std::string>()) {
                take(*s);
            } else {
                spdlog::warn("{}: ignored a {} (want datagram_batch or std::string)", name(), m->type_name());
            }
            if (!done) continue;
            if (!done->verified()) {
                ++mismatches_;
                spdlog::warn("{}: file {:08x} complete but its SHA-256 does not match: assembling it again", name(),
                             done->meta().file_id);
                done->reset();
                std::erase_if(cands_, [done](const auto& c) { return c.get() == done; });
                if (cands_.empty()) following_ = false;
                continue;
            }
            done_ = sched()->now();
            ++files_;
            last_ = done->meta();
            received_file f{done->meta(), done->release()};
            for (auto& c : cands_)
                if (c.get() == done) delivered_ = std::move(c);
            cands_.clear();
            following_ = false;
            co_await send(std::move(f));
            if (opt_.finish_on_complete) {
                cw.set_end(producer_finished("file complete"));
                break;
            }
        }
        if (cw.ended()) break;
        // Nothing queued: a slice of the digest (~45 us), then back to the
        // inbox. The scheduler polls the socket between cycles.
        if (reassembler* r = behind()) {
            r->hash_some(hash_slice);
            co_await yield();
            continue;
        }
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia::multicast
