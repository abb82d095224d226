#include <kamaelia/net/tcp_client.hpp>
#include <kamaelia/redis/bridge.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <kamaelia/redis/detail/resp.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kamaelia {

using redis::detail::reply_ptr;
using redis::detail::reply_reader;
using redis::detail::text_of;

namespace {
// Work done per turn on each side before yielding (fairness between the two
// directions and with the rest of the scheduler).
constexpr int chunks_per_turn = 64;
constexpr std::size_t reply_slack = 4096; // RESP framing around the largest payload

bool is_ok(const redisReply* r) { return r->type == REDIS_REPLY_STATUS && text_of(r) == "OK"; }
} // namespace

redis_bridge::redis_bridge(std::string backplane_name, redis::url where)
    : redis_bridge(std::move(backplane_name), std::move(where), options{}) {}

redis_bridge::redis_bridge(std::string backplane_name, redis::url where, options o)
    : bp_name_(std::move(backplane_name)),
      url_(std::move(where)),
      opts_(o),
      channel_(url_.channel.empty() ? bp_name_ : url_.channel),
      origin_(redis::new_origin()),
      window_(opts_.max_pending_bytes),
      stall_log_("backplane " + bp_name_ + ": Redis " + url_.display() + " does not answer PUBLISH",
                 std::chrono::seconds(10), nullptr, spdlog::level::warn) {
    if (opts_.backoff_min <= duration::zero() || opts_.backoff_max < opts_.backoff_min)
        throw bad_state("redis_bridge: back-off must be positive and backoff_min <= backoff_max");
    if (opts_.max_pending_bytes == 0 || opts_.batch_bytes == 0)
        throw bad_state("redis_bridge: max_pending_bytes and batch_bytes must be positive");
    // A pack gives each message's length in 4 bytes.
    if (opts_.max_payload > 0xffffffffu) throw bad_state("redis_bridge: max_payload must be below 4 GiB");
    // A pack is one message to every bridge on the channel: within what they read.
    opts_.pack_bytes = std::min(opts_.pack_bytes, opts_.max_payload);
    declare_inbox("local", "what was published on the local backplane");
    declare_inbox("pub_in", "the publishing connection's replies and end");
    declare_inbox("sub_in", "the subscribed connection's messages and end");
    declare_outbox("to_backplane", "what Redis delivered, to the local backplane");
    declare_outbox("pub_out", "PUBLISH commands");
    declare_outbox("sub_out", "AUTH, SELECT, SUBSCRIBE");
}

redis_bridge::~redis_bridge() = default;

std::uint64_t redis_bridge::not_forwarded() const noexcept { return not_forwarded_ + (local_ ? local_->dropped() : 0); }

bool redis_bridge::is_injected(const message& m) {
    // Called by the backplane for every message it fans out: what we put on
    // it ourselves must not go back to Redis. Our payloads are shared nodes,
    // so their address is stable from our send to the fan-out.
    if (injected_.empty()) return false;
    const std::string* p = m.peek<std::string>();
    return p && injected_.erase(p) != 0;
}

void redis_bridge::open_link() {
    attempt_started_ = sched()->now();
    pub_reader_ = std::make_unique<reply_reader>(opts_.max_payload + reply_slack);
    sub_reader_ = std::make_unique<reply_reader>(opts_.max_payload + reply_slack);
    auto connect = [this](box_name out, box_name in) -> component& {
        auto& c = add_child(std::make_unique<tcp_client>(url_.host, url_.port, opts_.connect_timeout));
        link({*this, out}, {c, "inbox"});
        link({c, "outbox"}, {*this, in});
        link({c, "signal"}, {*this, in});
        c.activate(*sched());
        return c;
    };
    pub_ = &connect("pub_out", "pub_in");
    sub_ = &connect("sub_out", "sub_in");

    std::string hello;
    std::size_t expected = 0;
    if (!url_.password.empty()) {
        if (url_.user.empty())
            redis::detail::format_command(hello, {"AUTH", url_.password});
        else
            redis::detail::format_command(hello, {"AUTH", url_.user, url_.password});
        ++expected;
    }
    if (url_.db != 0) {
        redis::detail::format_command(hello, {"SELECT", std::to_string(url_.db)});
        ++expected;
    }
    std::string sub_hello = hello;
    redis::detail::format_command(sub_hello, {"SUBSCRIBE", channel_});
    pub_handshake_ = expected;
    sub_handshake_ = expected;
    subscribed_ = false;
    // Queued in the clients' inboxes: they go first once connected.
    if (!hello.empty()) (void)try_send(std::move(hello), "pub_out");
    (void)try_send(std::move(sub_hello), "sub_out");
}

void redis_bridge::drop_link(std::string why) {
    if (!pub_ && !sub_) return;
    bool was_linked = linked();
    // Removing a client closes its socket; what it still held is lost (at
    // most once) and whatever it had already sent us is discarded below.
    if (pub_) remove_child(*pub_);
    if (sub_) remove_child(*sub_);
    pub_ = sub_ = nullptr;
    pub_reader_.reset();
    sub_reader_.reset();
    subscribed_ = false;
    linked_->store(false, std::memory_order_relaxed);
    pub_handshake_ = sub_handshake_ = 0;
    // What Redis never answered is counted lost (whether it was published
    // is unknown: at most once).
    (void)window_.clear();
    not_forwarded_ += in_flight_msgs_;
    in_flight_.clear();
    in_flight_msgs_ = 0;
    held_.clear();
    while (recv_message("pub_in")) {}
    while (recv_message("sub_in")) {}
    time_point now = sched()->now();
    if (!in_outage_) {
        in_outage_ = true;
        ++outages_;
        outage_since_ = now;
        lost_at_outage_start_ = not_forwarded();
        spdlog::warn("backplane {}: Redis {} {}: {}; local delivery goes on, reconnecting", bp_name_, url_.display(),
                     was_linked ? "lost" : "unreachable", why);
    } else {
        spdlog::debug("backplane {}: Redis {} still unreachable: {}", bp_name_, url_.display(), why);
    }
    next_attempt_ = now + backoff_;
    backoff_ = std::min<duration>(backoff_ * 2, opts_.backoff_max);
}

bool redis_bridge::offer_held() {
    if (held_.empty()) return true;
    message m(std::move(held_));
    if (try_send_message(m, "pub_out")) return true;
    held_ = m.take<std::string>(); // refused: the message still holds it
    return false;
}

void redis_bridge::forward_local() {
    // A batch refused earlier goes first (order per publisher); while it is
    // still refused, new commands join it, as far as the window allows:
    // "local" is drained either way, so nothing piles up before the bridge.
    bool appending = !held_.empty() && !offer_held();
    std::string batch = appending ? std::move(held_) : std::string();
    const bool packing = opts_.pack_bytes != 0;
    std::uint32_t count = 0;  // commands formatted into `batch`
    std::size_t added = 0;    // bytes they and the open pack take in the window
    std::uint32_t packed = 0; // messages in the open command (envelope_)
    std::size_t open_cmd = 0; // its command size
    auto close = [&] {
        if (packed == 0) return;
        redis::detail::format_command(batch, {"PUBLISH", channel_, envelope_});
        in_flight_.push_back(packed);
        in_flight_msgs_ += packed;
        ++count;
        packed = 0;
        open_cmd = 0;
    };
    while (appending || batch.size() + (packed ? envelope_.size() : 0) < opts_.batch_bytes) {
        std::optional<message> m = recv_message("local");
        if (!m) break;
        const std::string* p = m->peek<std::string>();
        if (!p || p->size() > opts_.max_payload) {
            ++not_forwarded_;
            continue;
        }
        // Into the open pack, or a command of its own.
        bool join =
            packing && packed != 0 && envelope_.size() + redis::pack_frame_header + p->size() <= opts_.pack_bytes;
        std::size_t body = join      ? envelope_.size() + redis::pack_frame_header + p->size()
                           : packing ? redis::envelope_header + redis::pack_frame_header + p->size()
                                     : redis::envelope_header + p->size();
        std::size_t cmd =
            redis::detail::command_size({std::size_t(7), channel_.size(), body}); // PUBLISH channel envelope
        std::size_t need = join ? cmd - open_cmd : cmd;
        if (!window_.fits(need, added)) {
            // Redis has not answered max_pending_bytes: it does not read.
            // Dropped, not queued; the scheduler never waits for it.
            ++not_forwarded_;
            ++dropped_pending_;
            stall_log_.fail("local messages dropped, not queued; local delivery goes on", sched()->now());
            continue;
        }
        if (!join) {
            close();
            if (packing) {
                redis::begin_pack(envelope_, origin_);
            } else {
                envelope_.clear();
                redis::wrap_into(envelope_, origin_, *p);
            }
        }
        if (packing) redis::add_to_pack(envelope_, *p);
        ++packed;
        open_cmd = cmd;
        added += need;
        if (!packing) close();
    }
    close();
    if (count == 0) {
        if (appending) held_ = std::move(batch);
        return;
    }
    if (appending) {
        window_.grow(count, added);
        held_ = std::move(batch);
        return;
    }
    window_.add(count, added);
    held_ = std::move(batch);
    (void)offer_held();
}

void redis_bridge::check_linked() {
    if (linked() || !pub_ || pub_handshake_ != 0 || !subscribed_) return;
    linked_->store(true, std::memory_order_relaxed);
    ++connects_;
    backoff_ = opts_.backoff_min;
    if (in_outage_) {
        in_outage_ = false;
        auto secs =
            std::chrono::duration_cast<std::chrono::milliseconds>(sched()->now() - outage_since_).count() / 1000.0;
        spdlog::info("backplane {}: Redis {} linked again after {:.1f} s; {} messages not forwarded meanwhile",
                     bp_name_, url_.display(), secs, not_forwarded() - lost_at_outage_start_);
    } else {
        spdlog::info("backplane {}: bridged to Redis {} channel {}", bp_name_, url_.display(), channel_);
    }
}

bool redis_bridge::take_pub_input() {
    for (int n = 0; pub_ && n < chunks_per_turn; ++n) {
        std::optional<message> m = recv_message("pub_in");
        if (!m) break;
        const std::string* chunk = m->peek<std::string>();
        if (!chunk) {
            const ipc* i = m->peek<ipc>();
            drop_link(i && !i->text.empty() ? i->text : "connection closed");
            return false;
        }
        if (!pub_reader_->feed(*chunk)) {
            drop_link(pub_reader_->error());
            return false;
        }
        for (;;) {
            reply_ptr r = pub_reader_->next();
            if (!r) {
                if (pub_reader_->broken()) {
                    drop_link(pub_reader_->error());
                    return false;
                }
                break;
            }
            if (pub_handshake_ > 0) {
                if (!is_ok(r.get())) {
                    drop_link("refused: " + std::string(text_of(r.get())));
                    return false;
                }
                --pub_handshake_;
                check_linked();
                continue;
            }
            // A PUBLISH answered: an integer (receivers), or an error.
            // (The window and in_flight_ hold the same commands.)
            std::uint32_t msgs = 0;
            if (window_.answered() && !in_flight_.empty()) {
                msgs = in_flight_.front();
                in_flight_.pop_front();
                in_flight_msgs_ -= msgs;
            }
            ++publishes_;
            if (r->type != REDIS_REPLY_ERROR) {
                forwarded_ += msgs;
            } else {
                not_forwarded_ += msgs;
                if (publish_errors_++ == 0)
                    spdlog::warn("backplane {}: Redis refused PUBLISH: {} (further refusals not logged)", bp_name_,
                                 text_of(r.get()));
            }
        }
    }
    return pub_ != nullptr;
}

task redis_bridge::main() {
    backplane& bp = backplane::find(*sched(), bp_name_);
    // Our own subscriber: never cut off (the backplane's policy may be
    // `fail`), it loses its oldest messages instead, counted.
    local_ = &add_child(subscribe_to(
        bp_name_, [this](const message& m) { return is_injected(m); }, delivery_policy::drop_oldest));
    local_->in("inbox").set_limit(opts_.queue_limit);
    link({*local_, "outbox"}, {*this, "local"});
    link({*this, "to_backplane"}, {bp, "inbox"});
    local_->activate(*sched());

    control_watch cw;
    backoff_ = opts_.backoff_min;
    next_attempt_ = sched()->now();
    std::string envelope;
    for (;;) {
        cw.poll(*this);
        if (cw.ended() || local_->finished()) break;
        time_point now = sched()->now();
        if (!pub_ && now >= next_attempt_) open_link();
        if (pub_ && !linked() && now - attempt_started_ > opts_.connect_timeout + opts_.connect_timeout)
            drop_link("no answer in time");

        // Redis -> local subscribers.
        for (int n = 0; sub_ && n < chunks_per_turn; ++n) {
            std::optional<message> m = recv_message("sub_in");
            if (!m) break;
            const std::string* chunk = m->peek<std::string>();
            if (!chunk) {
                const ipc* i = m->peek<ipc>();
                drop_link(i && !i->text.empty() ? i->text : "connection closed");
                break;
            }
            if (!sub_reader_->feed(*chunk)) {
                drop_link(sub_reader_->error());
                break;
            }
            while (sub_) {
                reply_ptr r = sub_reader_->next();
                if (!r) {
                    if (sub_reader_->broken()) drop_link(sub_reader_->error());
                    break;
                }
                if (sub_handshake_ > 0) {
                    if (!is_ok(r.get())) {
                        drop_link("refused: " + std::string(text_of(r.get())));
                        break;
                    }
                    --sub_handshake_;
                    continue;
                }
                if (r->type == REDIS_REPLY_ERROR) {
                    drop_link("refused: " + std::string(text_of(r.get())));
                    break;
                }
                if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) continue;
                std::string_view kind = text_of(r->element[0]);
                if (kind == "subscribe") {
                    subscribed_ = true;
                    check_linked();
                    continue;
                }
                if (kind != "message") continue;
                redis::unwrapped u = redis::unwrap(text_of(r->element[2]));
                redis::payloads each(u);
                if (!each.count()) {
                    if (bad_packs_++ == 0)
                        spdlog::warn("backplane {}: a malformed pack from Redis dropped (further ones not logged)",
                                     bp_name_);
                    continue;
                }
                if (u.origin && *u.origin == origin_) {
                    echoes_ += *each.count();
                    continue;
                }
                std::string_view payload;
                while (each.next(payload)) {
                    message out(make_shared_message(std::string(payload)));
                    const void* addr = out.peek<std::string>();
                    injected_.insert(addr);
                    bool sent = co_await send_message(std::move(out), "to_backplane");
                    if (sent) {
                        ++received_;
                    } else {
                        injected_.erase(addr);
                    }
                }
            }
        }

        // Replies on the publishing connection.
        if (pub_) (void)take_pub_input();

        // Local publishers -> Redis: many PUBLISH commands per write,
        // never waiting for the connection.
        if (linked()) {
            forward_local();
        } else {
            while (recv_message("local")) ++not_forwarded_;
        }
        // The stall ends once Redis has answered half the window.
        if (linked() && stall_log_.active() && window_.bytes() <= window_.max_bytes() / 2)
            stall_log_.ok(sched()->now());

        if (!in("local").empty() || (sub_ && !in("sub_in").empty()) || (pub_ && !in("pub_in").empty()) ||
            !in("control").empty()) {
            co_await yield();
            continue;
        }
        now = sched()->now();
        if (!pub_) {
            duration left = next_attempt_ - now;
            if (left > duration::zero()) co_await wait(ev_inbox, left);
        } else if (!linked()) {
            duration left = attempt_started_ + 2 * opts_.connect_timeout - now;
            if (left > duration::zero()) co_await wait(ev_inbox, left);
        } else {
            co_await wait_any();
        }
    }
    if (pub_) remove_child(*pub_);
    if (sub_) remove_child(*sub_);
    pub_ = sub_ = nullptr;
    // Our subscriber's count of drops stays in not_forwarded_.
    not_forwarded_ += local_->dropped();
    remove_child(*local_);
    local_ = nullptr;
    cw.forward_end(*this);
}

} // namespace kamaelia
