// Inbox storage: the bounded ring, growth, and the senders parked on a full box.
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/slab.hpp>

#include <new>

namespace kamaelia {

namespace {

constexpr std::uint32_t first_ring_capacity = 4;

// The first ring and its slots are one slab chunk (≈ 216 B): a one-shot
// component's first message costs one slab allocation, not two mallocs.
constexpr std::size_t inline_slots_offset =
    (sizeof(detail::ring) + alignof(message) - 1) / alignof(message) * alignof(message);
constexpr std::size_t first_ring_bytes = inline_slots_offset + sizeof(message) * first_ring_capacity;
// What shrink() leaves: the header and one slot (≈ 96 B instead of ≈ 216).
constexpr std::size_t small_ring_bytes = inline_slots_offset + sizeof(message);

message* inline_slots(detail::ring* r) noexcept {
    return reinterpret_cast<message*>(reinterpret_cast<unsigned char*>(r) + inline_slots_offset);
}

// Only a shrunk ring has a capacity of one (a first ring has four, and
// rings only grow from there).
std::size_t chunk_bytes(const detail::ring* r) noexcept { return r->mask == 0 ? small_ring_bytes : first_ring_bytes; }

// A ring in a fresh chunk of `cap` inline slots (first_ring_capacity or 1),
// keeping `from`'s count, bound and parked senders.
detail::ring* new_ring(std::uint32_t cap, const detail::ring* from) {
    void* mem = detail::slab_allocate(cap == 1 ? small_ring_bytes : first_ring_bytes);
    auto* r = new (mem) detail::ring{};
    r->limit = from ? from->limit : default_inbox_limit;
    if (from) {
        r->delivered = from->delivered;
        r->waiters_head = from->waiters_head;
        r->waiters_tail = from->waiters_tail;
        r->parked = from->parked;
    }
    r->mask = cap - 1;
    r->slots = inline_slots(r);
    for (std::uint32_t i = 0; i < cap; ++i) new (&r->slots[i]) message();
    return r;
}

// Slot arrays past the first come from the slab too (it hands anything
// above its largest class to operator new).
message* allocate_slots(std::uint32_t cap) {
    auto* s = static_cast<message*>(detail::slab_allocate(sizeof(message) * cap));
    for (std::uint32_t i = 0; i < cap; ++i) new (&s[i]) message();
    return s;
}

void free_slots(detail::ring* r, message* s, std::uint32_t cap) noexcept {
    for (std::uint32_t i = 0; i < cap; ++i) s[i].~message();
    if (s != inline_slots(r)) detail::slab_free(s, sizeof(message) * cap);
}

} // namespace

// ---- inbox ----------------------------------------------------------------

inbox::~inbox() {
    if (!ring_) return;
    release_waiters();
    for (std::uint32_t i = 0; i < ring_->size; ++i) ring_->slots[(ring_->head + i) & ring_->mask].reset();
    std::size_t bytes = chunk_bytes(ring_);
    free_slots(ring_, ring_->slots, ring_->mask + 1);
    detail::slab_free(ring_, bytes);
}

void inbox::release_waiters() noexcept {
    if (!ring_) return;
    while (detail::send_waiter* w = ring_->waiters_head) {
        ring_->waiters_head = w->next;
        w->next = nullptr;
        w->target = nullptr;
        w->delivered = false;
        w->msg.reset();
        if (w->sender && w->sender->state() == component_state::active) w->sender->wake();
    }
    ring_->waiters_tail = nullptr;
    ring_->parked = 0;
}

void inbox::absorb_waiters() {
    if (!ring_) return;
    while (detail::send_waiter* w = ring_->waiters_head) {
        ring_->waiters_head = w->next;
        if (!ring_->waiters_head) ring_->waiters_tail = nullptr;
        --ring_->parked;
        w->next = nullptr;
        w->delivered = true;
        push_raw(std::move(w->msg));
        w->target = nullptr;
        if (w->sender && w->sender->state() == component_state::active) w->sender->wake();
    }
}

void inbox::grow() {
    if (!ring_) {
        ring_ = new_ring(first_ring_capacity, nullptr);
        return;
    }
    if (ring_->mask == 0) {
        // A shrunk ring, full with its one message: back to a first ring.
        detail::ring* small = ring_;
        detail::ring* r = new_ring(first_ring_capacity, small);
        r->slots[0] = std::move(small->slots[0]);
        r->size = 1;
        small->slots[0].~message();
        detail::slab_free(small, small_ring_bytes);
        ring_ = r;
        return;
    }
    detail::ring& r = *ring_;
    std::uint32_t cap = r.mask + 1;
    std::uint32_t ncap = cap * 2;
    message* slots = allocate_slots(ncap);
    for (std::uint32_t i = 0; i < r.size; ++i) slots[i] = std::move(r.slots[(r.head + i) & r.mask]);
    free_slots(ring_, r.slots, cap);
    r.slots = slots;
    r.head = 0;
    r.mask = ncap - 1;
}

void inbox::set_limit(std::uint32_t n) {
    if (n == 0) throw bad_state("an inbox limit must be at least 1");
    if (!ring_) grow();
    ring_->limit = n;
    // Room may have appeared: hand it to parked senders.
    while (ring_->waiters_head && ring_->size < ring_->limit) {
        detail::send_waiter* w = ring_->waiters_head;
        ring_->waiters_head = w->next;
        if (!ring_->waiters_head) ring_->waiters_tail = nullptr;
        --ring_->parked;
        w->next = nullptr;
        w->delivered = true;
        push_raw(std::move(w->msg));
        w->target = nullptr;
        w->sender->wake();
    }
}

void inbox::shrink() noexcept {
    detail::ring* old = ring_;
    // A remote port's ring is not ours to free (its limit is 0).
    if (!old || old->size != 0 || old->waiters_head || old->mask == 0 || old->limit == 0) return;
    detail::ring* r;
    try {
        r = new_ring(1, old);
    } catch (...) {
        return; // out of memory: keep what it has
    }
    ring_ = r;
    free_slots(old, old->slots, old->mask + 1);
    detail::slab_free(old, first_ring_bytes);
}

// Both follow the box's own passthrough link: a message put into a parent's
// inbox reaches the child that the parent passed it on to.
void inbox::push_forced(message&& m) {
    inbox* fin = final_inbox();
    if (!fin) return;
    if (fin->remote()) {
        static_cast<detail::xlink_port*>(fin)->push(m, delivery_policy::suspend, true, owner_);
        return; // a receiver that has gone discards, as an unlinked box does
    }
    fin->push_raw(std::move(m));
}

bool inbox::try_push(message& m) {
    inbox* fin = final_inbox();
    if (!fin) return true; // a chain ending at an outbox discards
    if (fin->remote()) {
        auto r = static_cast<detail::xlink_port*>(fin)->push(m, delivery_policy::suspend, false, owner_);
        return r == detail::xlink_port::result::pushed || r == detail::xlink_port::result::gone;
    }
    if (fin->full()) return false;
    fin->push_raw(std::move(m));
    return true;
}

void inbox::refill() {
    detail::ring& r = *ring_;
    if (!r.waiters_head || r.size >= r.limit) return;
    detail::send_waiter* w = r.waiters_head;
    r.waiters_head = w->next;
    if (!r.waiters_head) r.waiters_tail = nullptr;
    --r.parked;
    w->next = nullptr;
    w->delivered = true;
    push_raw(std::move(w->msg));
    ++w->sender->sent_;
    w->sender->wake();
    w->target = nullptr; // no longer parked anywhere
}

void inbox::drop_front() noexcept {
    detail::ring& r = *ring_;
    r.slots[r.head].reset();
    r.head = (r.head + 1) & r.mask;
    --r.size;
}

void inbox::park(detail::send_waiter* w) noexcept {
    w->next = nullptr;
    if (ring_->waiters_tail) {
        ring_->waiters_tail->next = w;
    } else {
        ring_->waiters_head = w;
    }
    ring_->waiters_tail = w;
    ++ring_->parked;
}

void inbox::unpark(detail::send_waiter* w) noexcept {
    if (!ring_) return;
    detail::send_waiter* prev = nullptr;
    for (detail::send_waiter* p = ring_->waiters_head; p; prev = p, p = p->next) {
        if (p != w) continue;
        if (prev) {
            prev->next = p->next;
        } else {
            ring_->waiters_head = p->next;
        }
        if (ring_->waiters_tail == p) ring_->waiters_tail = prev;
        --ring_->parked;
        w->target = nullptr;
        return;
    }
}

std::string_view to_string(delivery_policy p) noexcept {
    switch (p) {
    case delivery_policy::suspend: return "suspend";
    case delivery_policy::drop_newest: return "drop_newest";
    case delivery_policy::drop_oldest: return "drop_oldest";
    case delivery_policy::fail: return "fail";
    }
    return "unknown";
}

void detail::box_deleter::operator()(box* b) const noexcept {
    if (b->is_inbox()) {
        delete static_cast<inbox*>(b);
    } else {
        delete static_cast<outbox*>(b);
    }
}

} // namespace kamaelia
