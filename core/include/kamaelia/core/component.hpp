// The component: a coroutine body with named inboxes and outboxes.
//
//   class upper : public kamaelia::component {
//       kamaelia::task main() override {
//           while (!shutdown_requested()) {
//               while (auto line = recv<std::string>())
//                   co_await send(to_upper(*line));
//               co_await wait_any();
//           }
//           forward_shutdown();
//       }
//   };
//
// A component only touches its own boxes; a parent (a chassis) links boxes
// together. Every box is bounded; `co_await send` suspends only while the
// receiver is full, `try_send` never suspends. A component that has nothing
// to do awaits, and is woken only by what it waits for: data arriving in an
// empty inbox, room in a full one, a timer, or a child finishing.
//
// A component never moves once activated (its frame holds `this`); moving
// before activation and before any link is allowed, which is how chassis
// take their children by value. Objects and frames come from the slab.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/clock.hpp>
#include <kamaelia/core/deliver.hpp>
#include <kamaelia/core/detail/component_state.hpp>
#include <kamaelia/core/errors.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/message.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/slab.hpp>
#include <kamaelia/core/task.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia {

// A (component, box) pair: one end of a link.
struct endpoint {
    component* comp;
    box_name name;
    endpoint(component& c, box_name n) noexcept : comp(&c), name(n) {}
};

// A live link between two boxes. Links are removed when either end's
// component is destroyed, so no link ever points at a dead box.
class linkage {
public:
    component* source() const noexcept { return src_owner_; }
    component* sink() const noexcept { return dst_owner_; }
    box* source_box() const noexcept { return src_; }
    box* sink_box() const noexcept { return dst_; }
    delivery_policy policy() const noexcept { return src_->policy(); }
    // 0 outbox→inbox, 1 inbox→inbox (passthrough in), 2 outbox→outbox (passthrough out)
    int passthrough() const noexcept;
    std::string_view source_box_name() const;
    std::string_view sink_box_name() const;

    // Its sink is on another scheduler (sink() is then the source: the
    // remote component is not to be touched from here).
    bool cross_scheduler() const noexcept { return port_ != nullptr; }
    // For a cross-scheduler link: the remote sink's id and box name, as
    // they were when linked (0 and "" for a local link).
    std::uint32_t remote_sink_id() const noexcept;
    std::string_view remote_sink_box_name() const noexcept;

private:
    friend class component;
    linkage(component* so, box* s, component* dob, box* d) noexcept
        : src_owner_(so),
          src_(s),
          dst_owner_(dob),
          dst_(d) {}
    component* src_owner_;
    box* src_;
    component* dst_owner_;
    box* dst_;
    detail::xlink_port* port_ = nullptr; // owned: the sender's end of a cross-scheduler link
};

enum class component_state : std::uint8_t { created, active, finished, reaped };

class component {
public:
    component() noexcept;
    component(component&& o); // before activation and wiring only (else bad_state)
    component& operator=(component&&) = delete;
    component(const component&) = delete;
    virtual ~component();

    static void* operator new(std::size_t n) { return detail::slab_allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { detail::slab_free(p, n); }

    // ---- identity ------------------------------------------------------
    std::uint32_t id() const noexcept { return id_; }
    // "<type>_<id>" plus the tag, e.g. "pipeline_20" (stable, unique, readable).
    std::string name() const;
    void set_tag(std::string tag);
    // The class name without namespaces, e.g. "pipeline".
    virtual std::string type_name() const;

    // ---- life cycle ----------------------------------------------------
    // Schedules the body on `s` (default: the default scheduler).
    component& activate();
    component& activate(scheduler& s);
    // activate() and run the scheduler until nothing is left to run.
    void run();
    // Asks the component to end now: it is not resumed again, its frame is
    // destroyed, its parent told. Safe on a suspended or queued component.
    void stop() noexcept;
    component_state state() const noexcept { return state_; }
    bool finished() const noexcept { return state_ >= component_state::finished; }
    bool failed() const noexcept { return (flags_ & detail::flag_failed) != 0; }
    // What the body threw (empty when it did not).
    std::string error_text() const;
    scheduler* sched() const noexcept { return sched_; }
    component* parent() const noexcept { return parent_; }

    // ---- boxes ---------------------------------------------------------
    inbox& in(box_name b = "inbox");
    outbox& out(box_name b = "outbox");
    box& find_box(box_name b);
    bool has_box(box_name b) const noexcept;
    // Boxes added at run time (Axon's AdaptiveCommsComponent). If the name is
    // taken a numeric suffix is appended: use the returned name.
    std::string add_inbox(std::string name, std::string description = {});
    std::string add_outbox(std::string name, std::string description = {});
    // Deletes a run-time box; its links are removed, its messages lost.
    void delete_box(std::string_view name);
    struct box_info {
        std::string_view name;
        std::string_view description;
        box* b;
    };
    std::vector<box_info> boxes() const;

    // ---- receiving -----------------------------------------------------
    // recv<T>() is recv<T>("inbox"), and send(v) / try_send(v) use
    // "outbox": overloads rather than default arguments, so the common call
    // builds no box_name (a co_await keeps its temporaries in the frame).
    template <class T>
    std::optional<T> recv();
    template <class T>
    std::optional<T> recv(box_name b);
    std::optional<message> recv_message(box_name b = "inbox");
    std::size_t data_ready(box_name b = "inbox");
    // The name of the first inbox holding data, or empty.
    std::string_view any_ready() const noexcept;

    // ---- sending -------------------------------------------------------
    struct send_awaiter;
    // Delivers at once while the receiver has room; otherwise acts by the
    // link's policy (default: suspend until there is room).
    template <class V>
    send_awaiter send(V&& v);
    template <class V>
    send_awaiter send(V&& v, box_name b);
    send_awaiter send_message(message m, box_name b = "outbox");
    // Never suspends: true if the message was delivered (or discarded by an
    // unlinked outbox, as Axon does), false if it was refused or dropped.
    template <class V>
    bool try_send(V&& v);
    template <class V>
    bool try_send(V&& v, box_name b);
    bool try_send_message(message& m, box_name b = "outbox");
    // Delivers ignoring the bound: for control notices that must not be lost.
    void send_forced(message m, box_name b = "signal");

    // ---- waiting -------------------------------------------------------
    // One general wait: for any of `events`, or until `timeout` passes (if
    // given). True when an awaited event is there, false on the timeout.
    //   co_await wait(ev_inbox | ev_external, 5s);
    enum event : std::uint8_t {
        ev_inbox = detail::wait_any_inbox, // any inbox has data (or an end message was seen)
        ev_control = detail::wait_one_box, // "control" has data
        // A child finished since the last wait that included ev_children
        // (an edge, not a scan: look at the children, e.g. children_done(),
        // after every wake-up, and before waiting when there may be none).
        ev_children = detail::wait_child,
        ev_external = detail::wait_external, // signal_external()
    };
    struct event_awaiter;
    event_awaiter wait(std::uint8_t events, std::optional<duration> timeout = std::nullopt) noexcept;

    // Shorthands for the common cases.
    struct wait_any_awaiter;
    struct wait_box_awaiter;
    struct timed_wait_awaiter;
    struct sleep_awaiter;
    struct done_awaiter;
    struct yield_awaiter;
    // Any inbox holds data (control included), or an end message was seen:
    // wait(ev_inbox), the await of the canonical loop.
    wait_any_awaiter wait_any() noexcept;
    // One named inbox holds data; with a timeout, true when data is there.
    wait_box_awaiter wait_for(box_name b);
    timed_wait_awaiter wait_for(box_name b, duration timeout);
    sleep_awaiter sleep_for(duration d) noexcept;
    sleep_awaiter sleep_until(time_point t) noexcept;
    // Until the next scheduler cycle (other ready components run first).
    yield_awaiter yield() noexcept;
    // This component finishing (awaited by its parent).
    done_awaiter done() noexcept;

    // ---- integration with Asio and other event sources ----------------
    // An I/O completion handler (running on the scheduler thread) calls
    // signal_external(); the body awaits ev_external. A signal that arrives
    // before the await is remembered, so none is lost. Handlers must not
    // outlive the component (see kamaelia/core/io_anchor.hpp).
    void signal_external() noexcept;

    // ---- control conventions ------------------------------------------
    // True once a shutdown_microprocess arrived, or a producer_finished
    // arrived and "inbox" has been drained. Takes every message waiting on
    // "control" (as util/control_watch.hpp does), so the loop never stalls
    // behind one it does not understand: an end message is kept (a later
    // shutdown_microprocess turns a finish into a stop), others are dropped.
    // A body that wants other control messages reads "control" first.
    bool shutdown_requested();
    // The end message seen (defaults to producer_finished).
    ipc_kind shutdown_kind() const noexcept;
    // The text that came with the end message (a reason, an error for the peer).
    std::string shutdown_text() const { return ext_ && ext_->rare ? ext_->rare->shutdown_text : std::string(); }
    bool shutdown_is_stop() const noexcept;
    // Sends the end message seen (or producer_finished) out of "signal".
    void forward_shutdown();

    // ---- children -----------------------------------------------------
    template <class C>
    C& add_child(std::unique_ptr<C> c);
    template <class C>
    requires std::is_base_of_v<component, std::remove_cvref_t<C>> std::remove_cvref_t<C>
    &add_child(C&& c) { return add_child(std::make_unique<std::remove_cvref_t<C>>(std::forward<C>(c))); }
    // Destroys a child (stopping it if it still runs) and its links.
    void remove_child(component& c);
    // Removes every finished child; true when no child is left.
    bool children_done();
    std::vector<component*> children() const;
    bool has_children() const noexcept { return ext_ && ext_->first_child; }
    // How many children have finished, ever: a parent with many children
    // compares it with its last look instead of scanning them all.
    std::uint64_t children_finished_count() const noexcept { return ext_ ? ext_->children_finished : 0; }

    // ---- links ---------------------------------------------------------
    // Links two boxes. Kinds follow the boxes: outbox→inbox, inbox→inbox
    // (a parent passing its inbox into a child), outbox→outbox (a child's
    // output surfacing as the parent's). A second link from one box is an
    // error (box_already_linked). Messages waiting in a source inbox move on.
    static linkage& link(endpoint src, endpoint dst, delivery_policy p = delivery_policy::suspend);
    static void unlink(linkage& l);
    // Removes every link touching `c`.
    static void unlink_all(component& c);
    std::vector<linkage*> links() const;

    // Per-component counters (for introspection).
    std::uint32_t wakeups() const noexcept { return wakeups_; }
    std::uint32_t sent() const noexcept { return sent_; }
    std::uint64_t cpu_ns() const noexcept { return ext_ && ext_->rare ? ext_->rare->cpu_ns : 0; }

protected:
    virtual task main() = 0;
    // Ends the body and unlinks now. A component owning I/O objects calls it
    // first in its destructor, so the frame goes before the members it uses.
    void teardown_now() noexcept { teardown(); }
    // Declares a box from the constructor (static names, descriptions as data).
    void declare_inbox(std::string name, std::string description = {});
    void declare_outbox(std::string name, std::string description = {});

private:
    friend class scheduler;
    friend class inbox;
    friend class linkage;
    friend struct detail::send_waiter;
    friend class detail::xlink_port;
    friend void detail::on_task_final(component*) noexcept;
    friend void detail::set_current(component*, std::coroutine_handle<>) noexcept;

    detail::component_ext& ext();
    detail::component_rare& rare();
    box* lookup(box_name b) const noexcept;
    box& lookup_or_throw(box_name b) const;
    inbox& inbox_or_throw(box_name b) const;
    // send/recv: an always-inline fast path for a fast_payload through
    // "outbox"/"inbox" with room, and the general path (out of line).
    template <class T, class V>
    bool send_fast(V& v) noexcept;
    template <class T>
    std::optional<T> recv_fast(bool& done) noexcept;
    template <class V>
    send_awaiter send_general(V&& v, box_name b);
    template <class V>
    bool try_send_general(V&& v, box_name b);
    template <class T>
    std::optional<T> recv_general(box_name b);
    void suspend_on(std::uint8_t flags, std::coroutine_handle<> h) noexcept;
    void notify_data(inbox* b) noexcept;
    // A sender parked on a full box still hears "stop now" on its control.
    void notify_parked_sender(inbox* b, const message& m) noexcept;
    void wake() noexcept;
    linkage* find_linkage(box* src) const noexcept;
    void finish_links_and_children() noexcept;
    void arm_timer(time_point t);
    void child_finished(component* c) noexcept;
    void destroy_frame() noexcept;
    void release_all_waiters() noexcept; // senders parked on our inboxes go free (not delivered)
    // At finish: parked messages enter the (finished) inboxes, so a parent
    // can still carry them over (seq); their senders go on as delivered.
    void absorb_all_waiters();
    void teardown() noexcept;
    void detach_from_parent() noexcept;
    void remove_links() noexcept;
    std::string_view box_name_of(const box* b) const noexcept;
    enum class send_result : std::uint8_t { delivered, discarded, dropped, full, failed };
    send_result deliver_by_policy(message& m, box& from, inbox* target, delivery_policy p);
    send_result deliver_remote(message& m, inbox* target, delivery_policy p);
    static std::uint32_t next_id() noexcept;

    scheduler* sched_ = nullptr;
    component* parent_ = nullptr;
    // Siblings (a parent's children, or a scheduler's top-level components)
    // form a doubly linked list: a server ends one of thousands of
    // connections, a scheduler reaps its oldest component, in O(1).
    component* next_sibling_ = nullptr;
    component* prev_sibling_ = nullptr;
    std::coroutine_handle<> root_;
    std::coroutine_handle<> current_; // innermost suspended coroutine
    inbox* wait_box_ = nullptr;
    detail::component_ext* ext_ = nullptr;
    std::uint32_t id_;
    std::uint32_t wakeups_ = 0;
    std::uint32_t sent_ = 0;
    component_state state_ = component_state::created;
    std::uint8_t wait_flags_ = 0;
    std::uint8_t flags_ = 0;
    ipc_kind shutdown_kind_ = ipc_kind::producer_finished;

    inbox inbox_{this};
    inbox control_{this};
    outbox outbox_;
    outbox signal_;
};

// Runs `root` on the default scheduler until everything has finished.
template <class C>
void run(C&& root) {
    root.run();
}

} // namespace kamaelia

// The inline bodies (awaiters, the send/recv hot paths).
#include <kamaelia/core/impl/component.hpp>
