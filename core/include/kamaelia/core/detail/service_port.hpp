// Private: the door of a service for askers on other schedulers (see
// kamaelia/core/service.hpp and service_directory in services.hpp).
//
// Remote askers push their requests into a bounded transit queue under one
// mutex; the service's own scheduler is posted to once per batch (empty →
// non-empty, or the first push after the pump last looked), and a pump
// component there moves the batch into the service's inbox with ordinary
// sends, so the inbox's bound and its parked-sender wake-ups hold as for a
// local asker. An asker that finds the transit full leaves its reply ticket
// as a waiter; when the pump takes a batch it pokes the waiters through
// their reply tables (one post per asker scheduler per batch). Nothing here
// points into an asker's frame: a ticket of an asker that has gone is stale
// and its poke or reply is dropped.
#pragma once

#include <kamaelia/core/detail/reply_table.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/message.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace kamaelia::detail {

class service_port : public std::enable_shared_from_this<service_port> {
public:
    service_port(scheduler& home, std::size_t limit) : home_(&home), limit_(limit ? limit : 1) {}

    enum class push_result { pushed, full, closed };

    // Any thread. On `full` with a waiter, the waiter is poked when room
    // appears (once; push again then).
    push_result push(message& m, const reply_ticket* waiter);
    // Any thread: the waiter gave up (timed out, cancelled, or its frame went).
    void forget(const reply_ticket& waiter) noexcept;
    bool closed() const;
    std::size_t limit() const noexcept { return limit_; }

    // Home thread. Moves up to `max` queued requests into `out` (empty on
    // entry) and pokes the waiters if room appeared. False once closed.
    bool take(std::vector<message>& out, std::size_t max);
    // Home thread: the service has gone. Queued requests are answered
    // service_ended (their destructors do it), waiters poked (they find it
    // closed), the pump told to end.
    void close() noexcept;

    component* pump = nullptr; // home thread only: set and cleared by the pump

    // Pending requests in transit (for tests).
    std::size_t queued() const;

private:
    void poke_all(std::vector<reply_ticket>& w) noexcept;

    mutable std::mutex m_;
    scheduler* home_;        // null once closed
    std::size_t limit_;      // transit bound
    std::vector<message> q_; // oldest first
    std::vector<reply_ticket> waiters_;
    bool wake_pending_ = false;
};

} // namespace kamaelia::detail
