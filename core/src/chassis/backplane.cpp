#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace kamaelia {

namespace {
// A turn fans out at most this many messages or bytes: a subscriber that
// runs every turn then never holds more than about fan_out_batch_bytes, far
// below its byte bound, however big the publisher's burst.
constexpr std::size_t fan_out_batch = 64;
constexpr std::size_t fan_out_batch_bytes = 64 * 1024;
} // namespace

// The frames of backplane and subscribe_to hold one of these: whatever ends
// the body (its last line, stop(), the component's destruction), the
// subscriptions are undone. The object's destructor disarms it first,
// because a frame destroyed from ~component outlives the derived members.
struct backplane::exit_guard {
    backplane* owner;
    explicit exit_guard(backplane* b) noexcept : owner(b) { b->guard_ = this; }
    exit_guard(const exit_guard&) = delete;
    ~exit_guard() {
        if (!owner) return;
        owner->guard_ = nullptr;
        owner->close(shutdown_microprocess("backplane " + owner->name_ + " stopped"));
    }
};

struct subscribe_to::exit_guard {
    subscribe_to* owner;
    explicit exit_guard(subscribe_to* s) noexcept : owner(s) { s->guard_ = this; }
    exit_guard(const exit_guard&) = delete;
    ~exit_guard() {
        if (!owner) return;
        owner->guard_ = nullptr;
        owner->leave();
    }
};

// ---- backplane ----------------------------------------------------------------

backplane::backplane(std::string name, delivery_policy overflow) : name_(std::move(name)), overflow_(overflow) {
    if (overflow == delivery_policy::suspend)
        throw bad_state("backplane \"" + name_ +
                        "\": policy suspend would let one subscriber stall the others; "
                        "use drop_oldest, drop_newest or fail");
}

backplane::~backplane() {
    if (guard_) guard_->owner = nullptr;
    close(shutdown_microprocess("backplane " + name_ + " destroyed"));
}

std::string backplane::service_name(std::string_view name) { return "backplane:" + std::string(name); }

backplane& backplane::find(scheduler& s, std::string_view name) {
    std::string sn = service_name(name);
    if (s.services().has(sn)) {
        if (auto* bp = dynamic_cast<backplane*>(s.services().retrieve(sn).comp); bp && !bp->closed_) return *bp;
    }
    throw unknown_service("no backplane \"" + std::string(name) +
                          "\" on this scheduler (construct and activate the backplane first)");
}

// Not a coroutine: registering here makes activate() itself fail on a
// duplicate name, before anything runs.
task backplane::main() {
    sched()->services().register_service(service_name(name_), *this, "inbox");
    registered_ = true;
    return body();
}

task backplane::body() {
    exit_guard guard(this);
    control_watch cw;
    for (;;) {
        // A bounded batch per turn, then the subscribers it woke run before
        // the next one: a burst from a publisher then overflows only
        // subscribers that really fall behind, not every one whose inbox is
        // smaller than the burst.
        std::size_t n = 0, bytes = 0;
        bool more = false;
        for (;;) {
            more = n == fan_out_batch || bytes >= fan_out_batch_bytes;
            if (more) break;
            std::optional<message> m = recv_message("inbox");
            if (!m) break;
            bytes += message_bytes(*m);
            fan_out(std::move(*m));
            ++n;
        }
        cw.poll(*this);
        if (cw.stopping() || (cw.finishing() && in("inbox").empty())) break;
        if (more) {
            co_await yield();
        } else {
            co_await wait_any();
        }
    }
    close(cw.end_message(*this));
    cw.forward_end(*this);
}

void backplane::attach(subscribe_to& s) {
    if (s.bp_ == this) return;
    if (s.bp_) s.bp_->detach(s);
    subs_.push_back({&s, &s.in("inbox"), s.overflow_.value_or(overflow_)});
    s.bp_ = this;
    s.index_ = subs_.size() - 1;
}

void backplane::detach(subscribe_to& s) noexcept {
    if (s.bp_ != this) return;
    remove_at(s.index_);
}

void backplane::remove_at(std::size_t i) noexcept {
    subs_[i].sub->bp_ = nullptr;
    if (i + 1 != subs_.size()) {
        subs_[i] = subs_.back();
        subs_[i].sub->index_ = i;
    }
    subs_.pop_back();
}

std::size_t backplane::message_bytes(const message& m) noexcept {
    // A queued message also costs its slot and shared node: counting them
    // bounds a flood of tiny lines too.
    constexpr std::size_t overhead = 64;
    if (const std::string* s = m.peek<std::string>()) return s->size() + overhead;
    return overhead;
}

std::size_t backplane::queued_bytes() const noexcept {
    std::size_t n = 0;
    for (const subscriber& r : subs_) n += r.sub->queued_bytes_;
    return n;
}

void backplane::fan_out(message m) {
    ++published_;
    const std::size_t bytes = message_bytes(m);
    // Every subscriber but the last gets a share of one immutable node; the
    // last gets the message itself (a lone subscriber costs no allocation).
    for (std::size_t i = 0; i < subs_.size();) {
        subscriber& r = subs_[i];
        subscribe_to* s = r.sub;
        if (s->finished()) { // stopped without running its end (stop()): just forget it
            remove_at(i);
            continue;
        }
        if (s->skip_ && s->skip_(m)) {
            ++i;
            continue;
        }
        inbox* t = r.target->final_inbox();
        bool last = i + 1 == subs_.size();
        // Over the byte bound only when something is queued already: a lone
        // big message still gets through to an empty queue.
        auto over = [&] { return t->full() || (s->queued_bytes_ != 0 && s->queued_bytes_ + bytes > s->max_bytes_); };
        auto deliver = [&] {
            detail::inbox_access::push_forced(*t, last ? std::move(m) : m.share());
            s->queued_bytes_ += bytes;
            ++delivered_;
        };
        if (!over()) {
            deliver();
            ++i;
            continue;
        }
        switch (r.policy) {
        case delivery_policy::drop_oldest:
            while (over() && !t->empty()) {
                std::size_t front = message_bytes(t->front());
                s->queued_bytes_ -= std::min(front, s->queued_bytes_);
                t->drop_front();
                ++dropped_;
                ++s->dropped_;
            }
            if (t->empty()) s->queued_bytes_ = 0;
            deliver();
            ++i;
            break;
        case delivery_policy::fail: {
            std::string what = s->name() + " cut off from backplane " + name_ + ": queue full (" +
                               std::to_string(t->size()) + " messages, " + std::to_string(s->queued_bytes_) + " bytes)";
            spdlog::warn("{}", what);
            ++cut_;
            ++dropped_;
            ++s->dropped_;
            s->cut_ = true;
            remove_at(i);
            // Free what it held now: it is not going to read it.
            while (!t->empty()) t->drop_front();
            s->queued_bytes_ = 0;
            // A stop, so that it ends even while parked on a full consumer.
            ipc stop = shutdown_microprocess(std::move(what));
            stop.from = id();
            kamaelia::deliver(*s, "control", message(std::move(stop)));
            break; // the record at i is now another subscriber
        }
        case delivery_policy::drop_newest:
        case delivery_policy::suspend: // refused by the constructors; treated as drop_newest
            ++dropped_;
            ++s->dropped_;
            ++i;
            break;
        }
    }
}

void backplane::close(const ipc& end) noexcept {
    if (closed_) return;
    closed_ = true;
    if (registered_ && sched()) {
        service_registry& reg = sched()->services();
        std::string sn = service_name(name_);
        if (reg.has(sn) && reg.retrieve(sn).comp == this) reg.deregister(sn);
        registered_ = false;
    }
    // Each subscriber hears the backplane's end on its control and ends.
    std::vector<subscriber> subs = std::move(subs_);
    subs_.clear();
    for (auto& r : subs) {
        r.sub->bp_ = nullptr;
        ipc e = end;
        e.from = id();
        kamaelia::deliver(*r.sub, "control", message(std::move(e)));
    }
}

// ---- publish_to -------------------------------------------------------------

publish_to::publish_to(std::string name, bool forwarder) : name_(std::move(name)), forwarder_(forwarder) {
    if (forwarder_) declare_outbox("to_backplane", "a copy of every message, to the backplane");
}

task publish_to::main() {
    control_watch cw;
    backplane& bp = backplane::find(*sched(), name_);
    // Plain publishing is a passthrough link: senders into our inbox land
    // in the backplane's inbox directly. The backplane removes the link when
    // it ends, after which our inbox fills and we discard.
    if (forwarder_) {
        link({*this, "to_backplane"}, {bp, "inbox"});
    } else {
        link({*this, "inbox"}, {bp, "inbox"});
    }
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            if (!forwarder_) {
                ++discarded_;
                continue;
            }
            message copy = m->share();
            co_await send_message(std::move(copy), "to_backplane");
            co_await send_message(std::move(*m), "outbox");
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

// ---- subscribe_to -------------------------------------------------------------

subscribe_to::subscribe_to(std::string name) : name_(std::move(name)) {}

subscribe_to::subscribe_to(std::string name, skip_function skip) : name_(std::move(name)), skip_(std::move(skip)) {}

subscribe_to::subscribe_to(std::string name, delivery_policy overflow)
    : subscribe_to(std::move(name), nullptr, overflow) {}

subscribe_to::subscribe_to(std::string name, skip_function skip, delivery_policy overflow)
    : name_(std::move(name)),
      overflow_(overflow),
      skip_(std::move(skip)) {
    if (overflow == delivery_policy::suspend)
        throw bad_state("subscribe_to(\"" + name_ +
                        "\"): a backplane never waits for a subscriber; "
                        "use drop_oldest, drop_newest or fail");
}

subscribe_to::~subscribe_to() {
    if (guard_) guard_->owner = nullptr;
    leave();
}

void subscribe_to::leave() noexcept {
    if (bp_) bp_->detach(*this);
}

void subscribe_to::taken(const message& m) noexcept {
    std::size_t n = backplane::message_bytes(m);
    queued_bytes_ -= std::min(n, queued_bytes_); // upstream messages were never counted
}

task subscribe_to::main() {
    exit_guard guard(this);
    control_watch cw;
    backplane::find(*sched(), name_).attach(*this);
    if (consumer_limit_ != 0) {
        if (inbox* c = out("outbox").final_inbox(); c && !c->remote()) c->set_limit(consumer_limit_);
    }
    inbox& queue = in("inbox"); // resolved once, not by name per message
    for (;;) {
        cw.poll(*this, [this](message&& m) { send_forced(std::move(m), "signal"); });
        // Once ending, stop listening at once, then pass on what is here.
        if (cw.ended()) leave();
        if (cw.stopping()) break;
        while (!queue.empty()) {
            message m = queue.pop();
            taken(m); // before the map: the bytes the backplane counted
            if (map_) map_(m);
            bool sent = co_await send_message(std::move(m), "outbox");
            if (!sent) break; // a stop arrived while it waited: look at control first
        }
        if (cw.finishing() && queue.empty()) break;
        co_await wait_any();
    }
    leave();
    if (farewell_ && cw.finishing()) {
        // Forced: one short message, and the consumer may have stopped reading.
        if (message last = farewell_(*cw.end())) send_forced(std::move(last), "outbox");
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
