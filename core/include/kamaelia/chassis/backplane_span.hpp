// backplane_span: one backplane across the schedulers of a group.
//
//   auto span = std::make_shared<backplane_span>("CHAT", group.size());
//   for (std::size_t i = 0; i < group.size(); ++i) {
//       group[i].spawn<backplane>("CHAT", delivery_policy::fail);
//       group[i].spawn(span->member(i));        // after that scheduler's backplane
//   }
//
// Every scheduler keeps its own backplane("CHAT"), so publish_to and
// subscribe_to stay local and lock-free; the span's member on each
// scheduler subscribes there and carries what is published locally to every
// other member, which publishes it into its own backplane. Each message
// crosses to each other scheduler once (one payload copy per scheduler,
// never per subscriber: a shared payload's count is not atomic), in the
// publisher's order. Members hand messages over in batches through a
// mailbox per scheduler (a mutex taken once per batch) and post one wake-up
// per batch, not per message.
//
// A scheduler that falls behind loses by the span's policy, bounded in
// bytes (max_bytes per mailbox, counted as backplane::message_bytes):
// drop_newest loses what no longer fits, drop_oldest (and fail, since a
// whole scheduler is never cut off) its oldest messages; the publisher and
// the other schedulers never wait. Messages injected from other schedulers
// are not carried on again (no echo). A member ends with its local backplane
// or on an end message on its control.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/message.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kamaelia {

class backplane_span : public std::enable_shared_from_this<backplane_span> {
public:
    struct options {
        std::size_t max_bytes = 1 << 20; // per scheduler's mailbox
        std::size_t batch = 256;         // messages carried per turn
        delivery_policy overflow = delivery_policy::drop_oldest;
    };
    backplane_span(std::string name, std::size_t members);
    backplane_span(std::string name, std::size_t members, options o);

    const std::string& backplane_name() const noexcept { return name_; }
    std::size_t size() const noexcept { return boxes_.size(); }
    // The member for scheduler i; activate it on that scheduler, after that
    // scheduler's backplane. The span must be owned by a shared_ptr.
    std::unique_ptr<component> member(std::size_t i);

    // Thread-safe: whether member i runs (what others publish reaches it).
    bool attached(std::size_t i) const;
    // Thread-safe counters.
    std::uint64_t carried() const noexcept { return carried_.load(std::memory_order_relaxed); } // copies handed over
    std::uint64_t dropped() const noexcept {
        return dropped_.load(std::memory_order_relaxed);
    } // lost to a full mailbox
    std::uint64_t wakeups() const noexcept { return wakeups_.load(std::memory_order_relaxed); } // cross-thread posts

private:
    class member_component;
    struct mailbox {
        std::mutex m;
        std::deque<message> q;       // guarded by m
        std::size_t bytes = 0;       // guarded by m
        bool wake_pending = false;   // guarded by m: a wake-up is posted and not yet taken
        scheduler* sched = nullptr;  // guarded by m: set while the member runs
        component* member = nullptr; // touched only on that scheduler's thread
    };
    // Hands `batch` (taken on scheduler `from`) to every other mailbox.
    void carry(std::size_t from, std::vector<message>& batch);
    std::deque<message> take(std::size_t i);
    void attach(std::size_t i, scheduler& s, component& m);
    void detach(std::size_t i) noexcept;

    std::string name_;
    options opts_;
    std::vector<std::unique_ptr<mailbox>> boxes_;
    std::atomic<std::uint64_t> carried_{0}, dropped_{0}, wakeups_{0};
};

} // namespace kamaelia
