#include "console.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/greylist/service.hpp>
#include <kamaelia/redis/bridge.hpp>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <chrono>

namespace kamaelia::console {

using nlohmann::json;

// How long /metrics waits for the shards' threads to answer.
constexpr duration shard_answer_bound = std::chrono::seconds(1);

namespace {

std::string type_of(const introspection::component_snapshot& c) {
    // name() is type_id[_tag]
    std::string suffix = "_" + std::to_string(c.id);
    auto at = c.name.rfind(suffix);
    return at == std::string::npos ? c.name : c.name.substr(0, at);
}

json node_json(const introspection::component_snapshot& c, bool server) {
    json boxes = json::array();
    for (const auto& b : c.boxes) {
        json jb = {{"name", b.name}, {"kind", introspection::to_string(b.kind)}};
        if (b.kind == introspection::box_kind::inbox) {
            jb["depth"] = b.depth;
            jb["limit"] = b.limit;
            jb["delivered"] = b.delivered;
            jb["parked"] = b.parked;
        }
        boxes.push_back(std::move(jb));
    }
    json j = {{"id", c.id},
              {"name", c.name},
              {"type", type_of(c)},
              {"parent", c.parent},
              {"state", introspection::to_string(c.state)},
              {"failed", c.failed},
              {"wakeups", c.wakeups},
              {"sent", c.sent},
              {"cpu_ns", c.cpu_ns},
              {"scheduler", c.scheduler},
              {"boxes", std::move(boxes)}};
    if (server) j["server"] = true;
    return j;
}

std::string link_key(const introspection::link_snapshot& l) {
    return std::to_string(l.source) + ":" + l.source_box + ">" + std::to_string(l.sink) + ":" + l.sink_box;
}

json link_json(const introspection::link_snapshot& l) {
    return {{"key", link_key(l)},     {"source", l.source},           {"source_box", l.source_box},   {"sink", l.sink},
            {"sink_box", l.sink_box}, {"passthrough", l.passthrough}, {"policy", to_string(l.policy)}};
}

std::string sse(std::string_view event, const std::string& data) {
    std::string s = "event: ";
    s += event;
    s += "\ndata: ";
    s += data; // JSON from nlohmann has no raw newlines
    s += "\n\n";
    return s;
}

} // namespace

std::string graph_json(const introspection::graph& g, const std::set<std::uint32_t>& servers) {
    json nodes = json::array(), links = json::array();
    for (const auto& c : g.components) nodes.push_back(node_json(c, servers.count(c.id) != 0));
    for (const auto& l : g.links) links.push_back(link_json(l));
    return json{{"nodes", std::move(nodes)}, {"links", std::move(links)}}.dump();
}

// ---- json_differ --------------------------------------------------------------------

std::string json_differ::update(const introspection::graph& g, const std::set<std::uint32_t>& servers) {
    std::map<std::uint32_t, std::string> nodes;
    std::map<std::string, std::string> links;
    for (const auto& c : g.components) nodes.emplace(c.id, node_json(c, servers.count(c.id) != 0).dump());
    for (const auto& l : g.links) links.emplace(link_key(l), link_json(l).dump());
    std::string changed, gone, added, unlinked;
    auto append = [](std::string& list, const std::string& item) {
        if (!list.empty()) list += ',';
        list += item;
    };
    for (const auto& [id, j] : nodes) {
        auto it = nodes_.find(id);
        if (it == nodes_.end() || it->second != j) append(changed, j);
    }
    for (const auto& [id, j] : nodes_)
        if (!nodes.count(id)) append(gone, std::to_string(id));
    for (const auto& [k, j] : links)
        if (!links_.count(k)) append(added, j);
    for (const auto& [k, j] : links_)
        if (!links.count(k)) append(unlinked, json(k).dump());
    nodes_ = std::move(nodes);
    links_ = std::move(links);
    ++frame_;
    return "{\"frame\":" + std::to_string(frame_) + ",\"nodes\":[" + changed + "],\"gone\":[" + gone + "],\"links\":[" +
           added + "],\"unlinked\":[" + unlinked + "]}";
}

std::string json_differ::full() const {
    std::string nodes, links;
    for (const auto& [id, j] : nodes_) {
        if (!nodes.empty()) nodes += ',';
        nodes += j;
    }
    for (const auto& [k, j] : links_) {
        if (!links.empty()) links += ',';
        links += j;
    }
    return "{\"frame\":" + std::to_string(frame_) + ",\"nodes\":[" + nodes + "],\"links\":[" + links + "]}";
}

// ---- the model ------------------------------------------------------------------------

console_model::console_model(daemon::runtime& rt, std::shared_ptr<greylist_counters> g)
    : rt_(rt),
      view_(rt.schedulers()),
      greylist_(std::move(g)) {
    rt.metrics().add([this](metrics::exposition& x) {
        const auto& refs = rt_.shard_refs();
        for (server_core* s : rt_.servers()) {
            // The whole server: with --threads N its shards' counters added.
            metrics::labels l = {{"server", s->server_name}};
            server_totals w = whole(*s);
            const auto& t = w.traffic;
            x.gauge("kamaelia_connections_open", "connections open now", l, static_cast<double>(w.connections));
            x.counter("kamaelia_connections_total", "connections accepted", l, static_cast<double>(w.accepted));
            x.counter("kamaelia_bytes_received_total", "bytes read from clients", l, static_cast<double>(t.bytes_in));
            x.counter("kamaelia_bytes_sent_total", "bytes written to clients", l, static_cast<double>(t.bytes_out));
            x.counter("kamaelia_messages_received_total", "chunks read from clients and passed to the protocol", l,
                      static_cast<double>(t.messages_in));
            x.counter("kamaelia_messages_sent_total", "chunks the protocol queued to clients", l,
                      static_cast<double>(t.messages_out));
            x.counter("kamaelia_socket_writes_total", "write system calls to clients (chunks are coalesced)", l,
                      static_cast<double>(t.write_calls));
            x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                      {{"server", s->server_name}, {"reason", "refused"}}, static_cast<double>(w.refused));
            x.gauge("kamaelia_listening", "1 while the server accepts connections", l, s->listening() ? 1 : 0);
            // Each scheduler's share, for a server with shards (a family of
            // its own: summing the whole-server series never counts twice).
            bool sharded = false;
            for (const auto& r : refs) sharded = sharded || r.of == s;
            if (!sharded) continue;
            auto share = [&](std::size_t sched, std::size_t open, std::uint64_t accepted) {
                metrics::labels ls = {{"server", s->server_name}, {"scheduler", std::to_string(sched)}};
                x.gauge("kamaelia_shard_connections_open", "connections open now on each scheduler (--threads > 1)", ls,
                        static_cast<double>(open));
                x.counter("kamaelia_shard_connections_total", "connections accepted on each scheduler (--threads > 1)",
                          ls, static_cast<double>(accepted));
            };
            share(0, s->connections(), s->accepted_total());
            for (std::size_t i = 0; i < refs.size() && i < shard_seen_->size(); ++i) {
                const shard_counters& c = (*shard_seen_)[i];
                if (refs[i].of == s && c.seen) share(refs[i].scheduler, c.connections, c.accepted);
            }
        }
        for (component* c : rt_.services()) {
            if (auto* gs = dynamic_cast<greylist::service*>(c))
                x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                          {{"service", "greylist"}, {"reason", "busy"}}, static_cast<double>(gs->refused_busy()));
            if (auto* rb = dynamic_cast<redis_bridge*>(c)) {
                metrics::labels l = {{"backplane", rb->backplane_name()}};
                x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                          {{"backplane", rb->backplane_name()}, {"reason", "redis"}},
                          static_cast<double>(rb->not_forwarded()));
                x.counter("kamaelia_backplane_redis_forwarded_total", "messages published to Redis (answered)", l,
                          static_cast<double>(rb->forwarded()));
                x.counter("kamaelia_backplane_redis_received_total", "messages from Redis to local subscribers", l,
                          static_cast<double>(rb->received()));
                x.gauge("kamaelia_backplane_redis_pending_bytes", "PUBLISH bytes Redis has not answered yet", l,
                        static_cast<double>(rb->pending_bytes()));
                x.gauge("kamaelia_backplane_redis_linked", "1 while bridged to Redis", l, rb->linked() ? 1 : 0);
                continue;
            }
            auto* bp = dynamic_cast<backplane*>(c);
            if (!bp) continue;
            x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                      {{"backplane", bp->backplane_name()}, {"reason", "overflow"}},
                      static_cast<double>(bp->dropped()));
            x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                      {{"backplane", bp->backplane_name()}, {"reason", "cut"}}, static_cast<double>(bp->cut_off()));
            x.counter("kamaelia_backplane_published_total", "messages published", {{"backplane", bp->backplane_name()}},
                      static_cast<double>(bp->published()));
            x.gauge("kamaelia_backplane_subscribers", "subscribers now", {{"backplane", bp->backplane_name()}},
                    static_cast<double>(bp->subscribers()));
        }
        const greylist_counters& g = *greylist_;
        const char* outcome[] = {"pass", "whitelisted", "greylisted", "tempfail"};
        const std::uint64_t values[] = {g.pass(), g.whitelisted(), g.greylisted(), g.tempfail()};
        for (int i = 0; i < 4; ++i)
            x.counter("kamaelia_greylist_decisions_total", "greylist decisions by outcome", {{"outcome", outcome[i]}},
                      static_cast<double>(values[i]));
        x.histogram("kamaelia_greylist_store_seconds",
                    "time from asking the greylist to its durable answer (the store's round trip)", {},
                    g.ask_seconds());
        scheduler& s = rt_.sched();
        x.gauge("kamaelia_scheduler_run_queue_depth", "components queued to run", {},
                static_cast<double>(s.run_queue_depth()));
        x.gauge("kamaelia_scheduler_components", "live components", {}, static_cast<double>(s.live()));
        x.counter("kamaelia_scheduler_wakeups_total", "component resumes", {}, static_cast<double>(s.stats().resumes));
        x.counter("kamaelia_scheduler_cycles_total", "scheduler loop cycles", {},
                  static_cast<double>(s.stats().cycles));
        x.counter("kamaelia_scheduler_blocks_total", "times the scheduler slept in the kernel", {},
                  static_cast<double>(s.stats().blocks));
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        x.counter("kamaelia_process_cpu_seconds_total", "user and system CPU time of the daemon", {}, cpu);
    });
}

std::set<std::uint32_t> console_model::server_ids() const {
    std::set<std::uint32_t> ids;
    for (server_core* s : rt_.servers()) ids.insert(s->id());
    for (server_core* s : rt_.shards()) ids.insert(s->id());
    return ids;
}

namespace {
void add_traffic(server_core::traffic& to, const server_core::traffic& t) noexcept {
    to.bytes_in += t.bytes_in;
    to.bytes_out += t.bytes_out;
    to.messages_in += t.messages_in;
    to.messages_out += t.messages_out;
    to.write_calls += t.write_calls;
}
} // namespace

console_model::server_totals console_model::whole(const server_core& s) const {
    server_totals w;
    w.connections = s.connections();
    w.accepted = s.accepted_total();
    w.refused = s.refused_total();
    w.traffic = s.traffic_total();
    const auto& refs = rt_.shard_refs();
    for (std::size_t i = 0; i < refs.size() && i < shard_seen_->size(); ++i) {
        if (refs[i].of != &s) continue;
        const shard_counters& c = (*shard_seen_)[i];
        w.connections += c.connections;
        w.accepted += c.accepted;
        w.refused += c.refused;
        add_traffic(w.traffic, c.traffic);
    }
    return w;
}

std::shared_ptr<shard_refresh> console_model::refresh_shards(component* waiter) {
    auto st = std::make_shared<shard_refresh>();
    st->waiter = waiter;
    const auto& refs = rt_.shard_refs();
    if (shard_seen_->size() < refs.size()) shard_seen_->resize(refs.size());
    auto scheds = rt_.schedulers();
    scheduler* home = waiter && waiter->sched() ? waiter->sched() : &rt_.sched();
    for (std::size_t i = 0; i < refs.size(); ++i) {
        if (refs[i].scheduler >= scheds.size()) continue;
        ++st->left;
        // The shard's counters are its thread's alone: read there, and the
        // copy posted back here. Shards live until the schedulers have
        // stopped (main owns them), so the pointer outlives the post.
        server_core* shard = refs[i].shard;
        scheds[refs[i].scheduler]->post([shard, i, st, home, seen = shard_seen_] {
            shard_counters c;
            c.seen = true;
            c.connections = shard->connections();
            c.accepted = shard->accepted_total();
            c.refused = shard->refused_total();
            c.traffic = shard->traffic_total();
            home->post([c, i, st, seen] {
                (*seen)[i] = c;
                if (--st->left == 0 && st->waiter) st->waiter->signal_external();
            });
        });
    }
    return st;
}

console_model::totals console_model::now_totals() const {
    totals t;
    t.t = std::chrono::duration<double>(rt_.sched().now().time_since_epoch()).count();
    for (server_core* s : rt_.servers()) {
        server_totals w = whole(*s); // shards: as of the last refresh (the hub asks each tick)
        t.messages += w.traffic.messages_in + w.traffic.messages_out;
        t.drops += w.refused;
    }
    for (component* c : rt_.services()) {
        if (auto* bp = dynamic_cast<backplane*>(c)) {
            t.drops += bp->dropped() + bp->cut_off();
            t.messages += bp->delivered();
        }
        if (auto* gs = dynamic_cast<greylist::service*>(c)) t.drops += gs->refused_busy();
    }
    t.gl[0] = greylist_->pass();
    t.gl[1] = greylist_->whitelisted();
    t.gl[2] = greylist_->greylisted();
    t.gl[3] = greylist_->tempfail();
    auto store = greylist_->ask_seconds();
    t.store_count = store.count();
    t.store_sum = store.sum();
    return t;
}

console_model::tick_events console_model::tick(bool with_graph) {
    tick_events ev;
    if (with_graph) {
        ev.diff = sse("diff", differ_.update(view_.take(rt_.sched()), server_ids()));
        differ_current_ = true;
    } else {
        differ_current_ = false; // nobody watches: the next watcher gets a fresh picture
    }
    totals t = now_totals();
    double dt = have_last_ ? std::max(1e-3, t.t - last_.t) : 1;
    json conns = json::object();
    for (server_core* s : rt_.servers()) conns[s->server_name] = whole(*s).connections;
    auto rate = [&](std::uint64_t now, std::uint64_t before) {
        return have_last_ && now >= before ? static_cast<double>(now - before) / dt : 0.0;
    };
    json gl = {{"pass", rate(t.gl[0], last_.gl[0])},
               {"whitelisted", rate(t.gl[1], last_.gl[1])},
               {"greylisted", rate(t.gl[2], last_.gl[2])},
               {"tempfail", rate(t.gl[3], last_.gl[3])}};
    double store = 0;
    if (have_last_ && t.store_count > last_.store_count)
        store = (t.store_sum - last_.store_sum) / static_cast<double>(t.store_count - last_.store_count);
    auto wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    json sample = {{"t", wall},
                   {"connections", std::move(conns)},
                   {"messages_per_s", rate(t.messages, last_.messages)},
                   {"greylist_per_s", std::move(gl)},
                   {"drops_per_s", rate(t.drops, last_.drops)},
                   {"store_latency_s", store}};
    std::string s = sample.dump();
    history_.push_back(s);
    while (history_.size() > 300) history_.pop_front(); // five minutes at one a second
    ev.stats = sse("stats", s);
    last_ = t;
    have_last_ = true;
    return ev;
}

std::string console_model::hello() {
    if (!differ_current_) {
        // Nobody was watching: bring the picture up to date first (a diff
        // nobody receives; the next tick diffs against this).
        differ_.update(view_.take(rt_.sched()), server_ids());
        differ_current_ = true;
    }
    std::string hist = "[";
    for (const auto& h : history_) {
        if (hist.size() > 1) hist += ',';
        hist += h;
    }
    hist += "]";
    return sse("hello", "{\"graph\":" + differ_.full() + ",\"history\":" + hist + "}");
}

std::string console_model::graph_now() const { return graph_json(view_.take(rt_.sched()), server_ids()); }

std::string console_model::metrics_text() const { return rt_.metrics().scrape(); }

std::string console_model::health() const {
    std::string why;
    auto add = [&](const std::string& r) {
        if (!why.empty()) why += "; ";
        why += r;
    };
    for (server_core* s : rt_.servers())
        if (!s->listening() || s->finished()) add(s->server_name + " is not listening");
    for (component* c : rt_.services())
        if (c->finished()) add(c->name() + " has stopped" + (c->failed() ? " (failed: " + c->error_text() + ")" : ""));
    for (const auto& f : rt_.health_checks())
        if (auto r = f(); !r.empty()) add(r);
    return why;
}

std::string console_model::respond(const http::request& r, bool metrics_only) const {
    const bool head = r.method == "HEAD";
    auto reply = [&](int status, std::string_view type, const std::string& body) {
        return http::format_response(status, type, head ? std::string_view() : std::string_view(body), r.keep_alive, {},
                                     body.size());
    };
    std::string_view p = r.path();
    if (p == "/metrics") return reply(200, "text/plain; version=0.0.4; charset=utf-8", metrics_text());
    if (p == "/healthz") {
        std::string why = health();
        return why.empty() ? reply(200, "text/plain; charset=utf-8", "ok\n")
                           : reply(503, "text/plain; charset=utf-8", why + "\n");
    }
    if (!metrics_only) {
        if (p == "/api/graph") return reply(200, "application/json", graph_now());
        if (const asset* a = find_asset(p)) {
            return http::format_response(200, a->content_type, head ? std::string_view() : a->body, r.keep_alive, {},
                                         a->body.size());
        }
    }
    return reply(404, "text/plain; charset=utf-8", "not found\n");
}

// ---- the session ----------------------------------------------------------------------

http_session::http_session(std::shared_ptr<console_model> m, bool metrics_only, http::parser_limits limits,
                           duration idle)
    : model_(std::move(m)),
      metrics_only_(metrics_only),
      limits_(limits),
      idle_(idle) {
    add_inbox("events", "the console's events, while streaming");
}

task http_session::main() {
    http::request_parser parser(limits_);
    subscribe_to* sub = nullptr;
    bool closing = false;
    // A request must be complete within idle_ of the last answer (or the
    // connection's start): slow or silent clients do not hold a slot.
    time_point deadline = sched()->now() + idle_;
    while (!closing) {
        if (shutdown_requested()) break;
        while (auto chunk = recv<std::string>()) {
            if (sub) continue; // a streaming client has nothing more to say
            if (parser.feed(*chunk) == http::parse_result::error) break;
        }
        if (parser.failed()) {
            std::string why = parser.reason() + "\n";
            co_await send(http::format_response(parser.status(), "text/plain; charset=utf-8", why, false));
            break;
        }
        while (!sub && !closing) {
            auto req = parser.next();
            if (!req) break;
            deadline = sched()->now() + idle_;
            if (req->path() == "/events" && !metrics_only_ && req->method == "GET") {
                co_await send(std::string("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                          "Cache-Control: no-store\r\nConnection: close\r\n"
                                          "X-Content-Type-Options: nosniff\r\n\r\n") +
                              model_->hello());
                auto& s = add_child(std::make_unique<subscribe_to>(backplane_name, delivery_policy::fail));
                s.in("inbox").set_limit(8);
                in("events").set_limit(2);
                link({s, "outbox"}, {*this, "events"});
                s.activate(*sched());
                sub = &s;
            } else {
                if (req->path() == "/metrics" && model_->has_shards()) {
                    // Every shard's counters, read on its own thread, before
                    // the answer; a scheduler that does not answer within
                    // the bound leaves its last figures.
                    auto st = model_->refresh_shards(this);
                    struct stop_waiting {
                        shard_refresh& r;
                        ~stop_waiting() { r.waiter = nullptr; }
                    } guard{*st};
                    time_point until = sched()->now() + shard_answer_bound;
                    while (!st->complete() && sched()->now() < until)
                        co_await wait(ev_external, until - sched()->now());
                }
                std::string out = model_->respond(*req, metrics_only_);
                co_await send(std::move(out));
                closing = !req->keep_alive;
            }
        }
        if (closing) break;
        if (sub) {
            while (auto ev = recv<std::string>("events")) co_await send(std::move(*ev));
            if (sub->finished()) break; // cut off (did not read) or the console stopped
            co_await wait(ev_inbox | ev_children);
            continue;
        }
        if (sched()->now() >= deadline) break;
        co_await wait(ev_inbox, deadline - sched()->now());
    }
    if (sub && !sub->finished()) sub->stop();
    send_forced(message(producer_finished()), "signal");
}

// ---- the hub ----------------------------------------------------------------------------

task console_hub::main() {
    while (!shutdown_requested()) {
        std::size_t watchers = 0;
        try {
            watchers = backplane::find(*sched(), backplane_name).subscribers();
        } catch (const std::exception&) {
            // stopping: the backplane has gone first
        }
        if (model_->has_shards()) model_->refresh_shards(nullptr); // for the next tick's figures
        auto ev = model_->tick(watchers > 0);
        // Never wait for watchers: the backplane takes what it is given.
        if (!ev.diff.empty()) try_send(std::move(ev.diff));
        try_send(std::move(ev.stats));
        co_await wait(ev_inbox, interval_);
        while (recv_message("inbox")) {}
    }
    forward_shutdown();
}

// ---- the server -------------------------------------------------------------------------

console_server::console_server(std::shared_ptr<console_model> m, bool metrics_only_port)
    : model(std::move(m)),
      metrics_only(metrics_only_port) {
    server_name = metrics_only ? "metrics" : "console";
    bind_address = "127.0.0.1"; // it shows the daemon's insides: local by default
    port = metrics_only ? 9100 : 8080;
    max_connections = 64;
    max_per_address = 0;
    limits = http::parser_limits{};
    protocol = [this](const connection_info&) { return std::make_unique<http_session>(model, metrics_only, limits); };
}

std::shared_ptr<greylist_counters> greylist_counters_of(daemon::runtime& rt) {
    return rt.shared<greylist_counters>("console.greylist", [] { return std::make_shared<greylist_counters>(); });
}

void start(daemon::runtime& rt, const std::string& bind, std::optional<std::uint16_t> port,
           std::optional<std::uint16_t> metrics_port) {
    // The greylist wiring and the console share one counters struct.
    auto model = rt.shared<console_model>(
        "console.model", [&] { return std::make_shared<console_model>(rt, greylist_counters_of(rt)); });
    if (port) {
        rt.add_service(std::make_unique<backplane>(backplane_name, delivery_policy::fail));
        rt.add_service(std::make_unique<pipeline>(console_hub(model), publish_to(backplane_name)));
    }
    auto add = [&](std::uint16_t p, bool metrics_only) {
        auto s = std::make_unique<console_server>(model, metrics_only);
        s->port = p;
        s->bind_address = bind;
        std::string what = metrics_only ? "metrics" : "console";
        s->on_listening = [what](const listen_address& a) { spdlog::info("{}: open http://{}/", what, a.text()); };
        rt.add_server(std::move(s));
    };
    if (port) add(*port, false);
    if (metrics_port) add(*metrics_port, true);
}

} // namespace kamaelia::console
