#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/backplane_span.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <algorithm>
#include <unordered_set>
#include <utility>

namespace kamaelia {

class backplane_span::member_component : public component {
public:
    member_component(std::shared_ptr<backplane_span> span, std::size_t index) : span_(std::move(span)), index_(index) {
        declare_inbox("local", "what is published on this scheduler, to carry to the others");
        declare_outbox("to_backplane", "what the other schedulers published, into the local backplane");
    }
    std::string type_name() const override { return "backplane_span"; }

protected:
    task main() override {
        leave_guard guard{span_, index_};
        backplane_span& sp = *span_;
        backplane& bp = backplane::find(*sched(), sp.name_);
        // Our subscriber is never cut off: a scheduler loses by the mailbox
        // bound instead. It skips what we injected (no echo to the others).
        auto& sub = add_child(subscribe_to(
            sp.name_,
            [this](const message& m) { return !injected_.empty() && injected_.erase(m.payload_address()) != 0; },
            delivery_policy::drop_oldest));
        // What waits here is what this scheduler has not carried yet: it
        // only backs up when this scheduler itself is behind, and then loses
        // its oldest. The byte bound governs (a message counts 64 at least).
        std::size_t own_bytes = std::max(sp.opts_.max_bytes, subscribe_to::default_max_bytes);
        sub.set_max_bytes(own_bytes);
        sub.in("inbox").set_limit(static_cast<std::uint32_t>(std::min<std::size_t>(own_bytes / 64 + 1, 1 << 20)));
        link({sub, "outbox"}, {*this, "local"});
        link({*this, "to_backplane"}, {bp, "inbox"});
        sub.activate(*sched());
        sp.attach(index_, *sched(), *this);

        control_watch cw;
        std::vector<message> batch;
        for (;;) {
            cw.poll(*this);
            if (cw.ended() || sub.finished()) break;
            batch.clear();
            while (batch.size() < sp.opts_.batch) {
                std::optional<message> m = recv_message("local");
                if (!m) break;
                batch.push_back(std::move(*m));
            }
            bool more = batch.size() == sp.opts_.batch;
            if (!batch.empty()) sp.carry(index_, batch);
            std::deque<message> in = sp.take(index_);
            for (message& m : in) {
                // Shared form: its address then stays put until the fan-out
                // asks our subscriber's skip about it.
                message extra = m.share();
                extra.reset();
                injected_.insert(m.payload_address());
                bool sent = co_await send_message(std::move(m), "to_backplane");
                if (!sent) break;
            }
            if (more) {
                co_await yield();
            } else {
                co_await wait(ev_inbox | ev_external | ev_children); // children: our subscriber ending
            }
        }
        cw.forward_end(*this);
    }

private:
    // Leaves the span however the body ends (its end, stop(), destruction):
    // it lives in the frame and holds the span itself.
    struct leave_guard {
        std::shared_ptr<backplane_span> span;
        std::size_t index;
        ~leave_guard() { span->detach(index); }
    };

    std::shared_ptr<backplane_span> span_;
    std::size_t index_;
    std::unordered_set<const void*> injected_;
};

backplane_span::backplane_span(std::string name, std::size_t members) : backplane_span(std::move(name), members, {}) {}

backplane_span::backplane_span(std::string name, std::size_t members, options o) : name_(std::move(name)), opts_(o) {
    if (members == 0) members = 1;
    if (opts_.batch == 0) opts_.batch = 1;
    boxes_.reserve(members);
    for (std::size_t i = 0; i < members; ++i) boxes_.push_back(std::make_unique<mailbox>());
}

std::unique_ptr<component> backplane_span::member(std::size_t i) {
    if (i >= boxes_.size()) throw bad_state("backplane_span " + name_ + ": no member " + std::to_string(i));
    return std::make_unique<member_component>(shared_from_this(), i);
}

void backplane_span::attach(std::size_t i, scheduler& s, component& m) {
    mailbox& b = *boxes_[i];
    b.member = &m;
    std::lock_guard lock(b.m);
    b.sched = &s;
    b.wake_pending = false; // whatever waits is taken on the member's first turn
}

bool backplane_span::attached(std::size_t i) const {
    mailbox& b = *boxes_.at(i);
    std::lock_guard lock(b.m);
    return b.sched != nullptr;
}

void backplane_span::detach(std::size_t i) noexcept {
    mailbox& b = *boxes_[i];
    b.member = nullptr;
    std::deque<message> gone;
    {
        std::lock_guard lock(b.m);
        b.sched = nullptr;
        gone.swap(b.q);
        b.bytes = 0;
    }
}

std::deque<message> backplane_span::take(std::size_t i) {
    mailbox& b = *boxes_[i];
    std::deque<message> out;
    std::lock_guard lock(b.m);
    out.swap(b.q);
    b.bytes = 0;
    b.wake_pending = false;
    return out;
}

void backplane_span::carry(std::size_t from, std::vector<message>& batch) {
    std::size_t last = from + 1 == boxes_.size() ? from - 1 : boxes_.size() - 1;
    for (std::size_t j = 0; j < boxes_.size(); ++j) {
        if (j == from) continue;
        // One copy of each payload per scheduler, made here on the
        // publisher's thread: afterwards the copy has no other owner.
        std::vector<message> copies;
        copies.reserve(batch.size());
        for (message& m : batch) {
            message c = j == last ? std::move(m) : m.share();
            c.detach();
            copies.push_back(std::move(c));
        }
        mailbox& b = *boxes_[j];
        std::uint64_t lost = 0, pushed = 0;
        {
            std::lock_guard lock(b.m);
            if (!b.sched) continue; // that scheduler's member is not running
            for (message& c : copies) {
                std::size_t n = backplane::message_bytes(c);
                if (!b.q.empty() && b.bytes + n > opts_.max_bytes) {
                    if (opts_.overflow == delivery_policy::drop_newest) {
                        ++lost;
                        continue;
                    }
                    while (!b.q.empty() && b.bytes + n > opts_.max_bytes) {
                        b.bytes -= std::min(b.bytes, backplane::message_bytes(b.q.front()));
                        b.q.pop_front();
                        ++lost;
                    }
                }
                b.bytes += n;
                b.q.push_back(std::move(c));
                ++pushed;
            }
            if (!b.wake_pending && !b.q.empty()) {
                b.wake_pending = true;
                wakeups_.fetch_add(1, std::memory_order_relaxed);
                // Runs on that scheduler's thread, where the member pointer lives.
                b.sched->post([self = shared_from_this(), j] {
                    if (component* c = self->boxes_[j]->member) c->signal_external();
                });
            }
        }
        carried_.fetch_add(pushed, std::memory_order_relaxed);
        if (lost) dropped_.fetch_add(lost, std::memory_order_relaxed);
    }
}

} // namespace kamaelia
