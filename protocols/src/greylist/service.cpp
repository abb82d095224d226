// The greylist service: a database thread per store connection, each
// answering in batches. One for SQLite: the service's own thread. The pool's
// size for PostgreSQL: each connection is a threaded_component of its own
// (a `connection_worker`, a child of the service), and thread_main() only
// routes each request to one by client address (service::impl::route),
// sending it out of that worker's outbox, and takes the workers' findings
// for /healthz and the outage log. A remote store (PostgreSQL) always has
// workers, even a pool of one: a stalled server then stalls a worker, never
// the routing, which answers "greylist store busy" at once for a connection
// that already holds settings::connection_queue requests. A request the
// whitelists decide never reaches a connection: it is answered at once
// (by the routing, or before the single connection's transaction), so a
// stalled or full store never delays it.
//
// A connection takes every request queued for it so far, runs them in ONE
// transaction, commits, and only then replies (group commit). A failed batch
// is rolled back and every request in it answered tempfail; the outage is
// logged when it starts, rate-limited while it lasts and when it ends. When
// idle the first connection expires old rows in small transactions, so
// expiry never blocks a decision for long, and every connection probes its
// session (a restarted server is reconnected before mail needs it).
#include <kamaelia/greylist/service.hpp>

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/sqlite_store.hpp>
#include <kamaelia/greylist/whitelist.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace kamaelia::greylist {

namespace {

std::shared_ptr<const whitelist> build_whitelist(const settings& cfg, bool files_must_load) {
    auto w = std::make_shared<whitelist>();
    if (cfg.default_whitelists) {
        w->add_recipient("postmaster@");
        w->add_recipient("abuse@");
    }
    for (const auto& e : cfg.whitelist_clients)
        if (!w->add_client(e)) throw store_error("bad client whitelist entry: " + e);
    for (const auto& e : cfg.whitelist_sender_domains)
        if (!w->add_sender_domain(e)) throw store_error("bad sender domain whitelist entry: " + e);
    for (const auto& e : cfg.whitelist_recipients)
        if (!w->add_recipient(e)) throw store_error("bad recipient whitelist entry: " + e);
    auto report = [](const std::vector<std::string>& bad) {
        for (const auto& b : bad) spdlog::warn("greylist: skipping a malformed whitelist line {}", b);
    };
    try {
        if (!cfg.whitelist_clients_file.empty()) report(w->load_clients(cfg.whitelist_clients_file));
        if (!cfg.whitelist_recipients_file.empty()) report(w->load_recipients(cfg.whitelist_recipients_file));
    } catch (const std::runtime_error& e) {
        if (files_must_load) throw store_error(e.what());
        throw;
    }
    return w;
}

// The store's connections: one for SQLite; for PostgreSQL the URL's pool
// (pg::split_pool), each connection a store of its own.
std::vector<std::unique_ptr<store>> open_stores(const settings& cfg) {
    if (cfg.database.empty()) throw store_error("greylist: no database file given");
    std::vector<std::unique_ptr<store>> out;
    if (pg_store::is_url(cfg.database)) {
        // Several MX hosts on one PostgreSQL database.
        pg::pool_url pool;
        try {
            pool = pg::split_pool(cfg.database);
        } catch (const std::invalid_argument& e) {
            throw store_error(std::string("greylist: ") + e.what());
        }
        pg_store::options po;
        po.conninfo = pool.conninfo;
        po.max_rows = cfg.max_rows;
        po.rows = std::make_shared<std::atomic<std::int64_t>>(0); // one cap for the pool
        for (std::size_t i = 0; i < pool.size; ++i) out.push_back(std::make_unique<pg_store>(po));
        return out;
    }
    sqlite_store::options o;
    o.path = cfg.database;
    o.sync_full = cfg.sync_full;
    o.max_rows = cfg.max_rows;
    o.busy_timeout = cfg.busy_timeout;
    out.push_back(std::make_unique<sqlite_store>(o));
    return out;
}

std::vector<std::unique_ptr<store>> one(std::unique_ptr<store> st) {
    std::vector<std::unique_ptr<store>> v;
    v.push_back(std::move(st));
    return v;
}

decision tempfail(std::string reason) {
    decision d;
    d.what = verdict::tempfail;
    d.reason = std::move(reason);
    return d;
}

// The thread queues of the service and its workers hold a whole
// connection_queue, so that routing an admitted request never blocks.
std::size_t queue_limit_for(const settings& cfg) {
    return std::max(threaded_component::default_queue_limit, cfg.connection_queue);
}

} // namespace

namespace {

// What a request needs from the store, worked out before the batch's
// transaction so that the store can read it all at once.
struct plan {
    std::optional<std::string> listed; // whitelisted by the lists: the store is not asked
    triplet key;
    std::string client; // canonical address, when the client auto-whitelist is on
};

struct job {
    kamaelia::request<check> rq;
    plan p;
};

// What a connection found since it last told: its store's latest state
// (empty: fine) and, for the outage log, its failed request batches and
// whether one succeeded. Coalesced while it cannot be sent.
struct finding {
    std::size_t index = 0;
    std::string error;
    std::string failed_with; // the last failed batch's error
    std::uint32_t failed_batches = 0;
    bool ok_batch = false;
};

// What every connection shares: settings and counters (atomics). The health
// and the outage log are the service's thread's alone: with a pool the
// workers send it their findings, it applies them (apply()).
struct shared_state {
    settings cfg;
    timing t;
    std::atomic<std::uint64_t> decisions{0}, commits{0};
    // A pool: each connection's requests routed and not yet answered (the
    // routing adds, the worker takes off once it replied), and the bound.
    std::unique_ptr<std::atomic<std::size_t>[]> held;
    std::size_t bound = default_connection_queue;
    std::atomic<std::uint64_t> refused_busy{0};
    // The routing's refusals (the service's thread only).
    log_limiter busy{"greylist: store busy, answering tempfail", std::chrono::seconds(10)};
    // An outage is being logged: a worker then reports a successful batch
    // even if its own finding did not change, so that the outage can end.
    std::atomic<bool> outage_active{false};
    log_limiter outage{"greylist: database unusable, answering tempfail", std::chrono::seconds(10)};
    std::shared_ptr<store_health> health = std::make_shared<store_health>();
    std::vector<std::string> errors; // each connection's last finding (empty: fine)
    std::shared_ptr<pass_memory> memory; // filled by the connections after their commits

    std::int64_t now() const {
        auto tp = cfg.clock ? cfg.clock() : std::chrono::system_clock::now();
        return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
    }

    // Connection `f.index` found its store fine (empty) or failing. The
    // health is the first failing connection's error; the outage (requests
    // only) ends when no connection fails. The service's thread only.
    void apply(const finding& f) {
        errors[f.index] = f.error;
        const std::string* first = nullptr;
        for (const auto& x : errors)
            if (!x.empty()) {
                first = &x;
                break;
            }
        health->set(first ? *first : std::string());
        for (std::uint32_t k = 0; k < f.failed_batches; ++k) outage.fail(f.failed_with);
        if (f.ok_batch && !first) outage.ok();
        outage_active.store(outage.active(), std::memory_order_relaxed);
    }
};

// One connection to the store and the batches it runs: the whole service
// with SQLite (run by the service's own thread), one pool worker's with
// PostgreSQL.
struct connection {
    shared_state& m;
    std::size_t index;
    std::unique_ptr<store> db;
    // A batch's lookups, kept between batches for their capacity.
    std::vector<triplet> keys;
    std::vector<std::string> clients;
    std::vector<decision> out;
    // What a batch tells the pass memory, in the order it was judged; told
    // only once the batch committed.
    struct memo {
        const triplet* key = nullptr; // a pass (remember), else the client's row changed (forget)
        const std::string* client = nullptr;
        std::int64_t stored_last = 0, at = 0;
    };
    std::vector<memo> memos;
    // What it found since its owner last took it (take_finding()).
    finding found;
    bool dirty = false;
    std::string told; // the error last taken

    connection(shared_state& s, std::size_t i, std::unique_ptr<store> st) : m(s), index(i), db(std::move(st)) {
        found.index = i;
    }

    void report(const std::string& e, bool request) {
        found.error = e;
        if (request && !e.empty()) {
            found.failed_with = e;
            ++found.failed_batches;
        } else if (request) {
            found.ok_batch = true;
        }
        if (e != told || found.failed_batches || (found.ok_batch && m.outage_active.load(std::memory_order_relaxed)))
            dirty = true;
    }
    // The finding to tell, if there is news; then it starts afresh.
    std::optional<finding> take_finding() {
        if (!dirty) return std::nullopt;
        finding f = std::move(found);
        told = f.error;
        found = finding{};
        found.index = index;
        found.error = told;
        dirty = false;
        return f;
    }

    decision judge(plan& p, std::int64_t at) {
        // A listed request never gets here: answer_listed() took it first.
        const timing& t = m.t;
        const triplet& key = p.key;
        if (m.cfg.auto_whitelist_clients > 0) {
            const std::string& client = p.client;
            auto c = db->find_client(client);
            if (client_whitelisted(c, at, m.cfg.auto_whitelist_clients, t)) {
                if (auto b = bump_client(c, at, t)) db->save_client(client, *b);
                // Passes remembered before it was whitelisted (another host's doing) are stale.
                memos.push_back({nullptr, &client, 0, at});
                decision d;
                d.what = verdict::whitelisted;
                d.reason = "client auto-whitelisted";
                return d;
            }
            auto row = db->find(key);
            auto o = judge_triplet(row, at, t);
            if (o.store) db->save(key, o.write, row.has_value());
            note_pass(p, o, row, at);
            if (o.first_pass)
                if (auto b = bump_client(c, at, t)) {
                    db->save_client(client, *b);
                    // Auto-whitelisted now: its answers are "whitelisted", not the passes remembered.
                    if (client_whitelisted(b, at, m.cfg.auto_whitelist_clients, t))
                        memos.push_back({nullptr, &client, 0, at});
                }
            return o.answer;
        }
        auto row = db->find(key);
        auto o = judge_triplet(row, at, t);
        if (o.store) db->save(key, o.write, row.has_value());
        note_pass(p, o, row, at);
        return o.answer;
    }

    // A pass: the row as it now stands in the store (written, or left with
    // its fresh stamp) is what the pass memory may answer from.
    void note_pass(const plan& p, const triplet_outcome& o, const std::optional<triplet_row>& row, std::int64_t at) {
        if (!m.memory || o.answer.what != verdict::pass) return;
        std::int64_t stored_last = o.store || !row ? o.write.last : row->last;
        memos.push_back({&p.key, &p.client, stored_last, at});
    }

    // After COMMIT, in the order judged.
    void tell_memory() {
        if (!m.memory) return;
        for (const memo& x : memos) {
            if (x.key)
                m.memory->remember(*x.key, *x.client, x.stored_last, x.at, m.t.refresh);
            else
                m.memory->forget_client(*x.client);
        }
    }

    // One transaction for the batch; the answers go out after COMMIT. Any
    // error (a store_error, bad_alloc, anything) answers the whole batch
    // tempfail: nothing was committed.
    void run_batch(std::vector<job>& batch) {
        out.clear();
        out.reserve(batch.size());
        std::int64_t at = m.now();
        std::string error;
        try {
            keys.clear();
            clients.clear();
            for (auto& j : batch) {
                keys.push_back(j.p.key);
                if (!j.p.client.empty()) clients.push_back(j.p.client);
            }
            memos.clear();
            db->begin();
            db->prefetch(keys, clients);
            for (auto& j : batch) {
                const auto& r = j.rq.body.r;
                out.push_back(judge(j.p, r.test_time ? r.test_time : at));
            }
            db->commit();
            tell_memory();
        } catch (const std::exception& e) {
            db->rollback();
            error = e.what();
            out.assign(batch.size(), tempfail(e.what()));
        } catch (...) {
            db->rollback();
            error = "unknown error";
            out.assign(batch.size(), tempfail("greylist store failed"));
        }
        // A failing store: nothing is answered from memory until a batch
        // commits again (what it remembered may be what failed).
        if (!error.empty() && m.memory) m.memory->clear();
        report(error, true);
        // Committed (or rolled back): the connection has room again before
        // the answers go out, so an asker answered may ask again at once.
        if (m.held) m.held[index].fetch_sub(batch.size(), std::memory_order_acq_rel);
        {
            reply_batch replies; // one wake-up for the askers' scheduler, not one an answer
            for (std::size_t i = 0; i < batch.size(); ++i) batch[i].rq.reply(std::move(out[i]));
        }
        m.decisions.fetch_add(batch.size(), std::memory_order_relaxed);
        m.commits.fetch_add(1, std::memory_order_relaxed);
    }

    // One expiry transaction; true if it was full (more may be waiting).
    bool expire_some() {
        try {
            db->begin();
            std::size_t n = db->expire(m.now(), m.t, m.cfg.expire_batch);
            db->commit();
            if (n) spdlog::debug("greylist: expired {} rows", n);
            report({}, false);
            return n >= m.cfg.expire_batch;
        } catch (const std::exception& e) {
            db->rollback();
            report(e.what(), false);
            spdlog::debug("greylist: expiry postponed: {}", e.what()); // the outage itself is logged by requests
            return false;
        }
    }

    // An empty transaction when idle, so that /healthz sees a store that went
    // away (or came back) while no mail came: PostgreSQL reconnects in begin().
    void probe() {
        try {
            db->begin();
            db->commit();
            report({}, false);
        } catch (const std::exception& e) {
            db->rollback();
            report(e.what(), false);
        }
    }

    // When idle: expiry (the first connection only: one expiry at a time) and
    // the probe, each when due; the times of the next ones.
    struct timers {
        std::chrono::steady_clock::time_point expiry, probe;
    };
    // A batch, which also serves as the connection's probe; `batch` is
    // left empty for the next one (its capacity kept).
    void run_batch(std::vector<job>& batch, timers& due) {
        run_batch(batch);
        batch.clear();
        due.probe = std::chrono::steady_clock::now() + m.cfg.health_interval;
    }
    void idle_work(timers& due) {
        auto now = std::chrono::steady_clock::now();
        if (index == 0 && now >= due.expiry) {
            // Expiry also runs under constant load: one small transaction
            // between batches when it is due (again at once while rows remain).
            due.expiry = expire_some() ? now : now + m.cfg.expire_interval;
            due.probe = now + m.cfg.health_interval;
        }
        if (now >= due.probe) {
            probe();
            due.probe = now + m.cfg.health_interval;
        }
    }
    timers first_timers() const {
        auto now = std::chrono::steady_clock::now();
        return {index == 0 ? now + m.cfg.expire_interval : std::chrono::steady_clock::time_point::max(),
                now + m.cfg.health_interval};
    }

    std::chrono::steady_clock::time_point next_due(const timers& due) const { return std::min(due.expiry, due.probe); }
};

// A pooled connection as a component of its own (PostgreSQL, pool > 1): a
// child of the service, its "inbox" fed from one of the service's outboxes
// (jobs routed to it), its "outbox" linked to the service's "findings". It
// takes every job queued for it as one batch, as the single connection does.
class connection_worker final : public threaded_component {
public:
    connection_worker(std::shared_ptr<shared_state> s, std::size_t i, std::unique_ptr<store> st,
                      std::size_t queue_limit)
        : threaded_component(queue_limit),
          shared_(std::move(s)),
          c_(*shared_, i, std::move(st)) {}
    ~connection_worker() override { stop_thread(); } // the thread uses c_
    std::string type_name() const override { return "greylist_connection"; }

protected:
    void thread_main() override {
        std::vector<job> batch;
        auto due = c_.first_timers();
        std::optional<finding> untold;
        while (!shutdown_requested()) {
            if (data_ready("inbox")) {
                while (auto j = recv<job>()) batch.push_back(std::move(*j));
                c_.run_batch(batch, due);
            }
            c_.idle_work(due);
            tell(untold);
            if (!data_ready("inbox")) {
                // A finding the service could not take yet is retried soon.
                auto until = c_.next_due(due);
                if (untold) until = std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
                wait(until - std::chrono::steady_clock::now());
            }
        }
    }
    void interrupt() noexcept override { c_.db->interrupt(); }

private:
    // Never blocks (the service may itself be blocked sending to this
    // worker): a finding the service's queue has no room for is kept and
    // merged with the next.
    void tell(std::optional<finding>& untold) {
        if (auto f = c_.take_finding()) {
            if (untold) {
                untold->error = std::move(f->error);
                if (f->failed_batches) untold->failed_with = std::move(f->failed_with);
                untold->failed_batches += f->failed_batches;
                untold->ok_batch = untold->ok_batch || f->ok_batch;
            } else {
                untold = std::move(f);
            }
        }
        if (untold && try_send(*untold)) untold.reset();
    }

    std::shared_ptr<shared_state> shared_;
    connection c_;
};

} // namespace

// Everything the service's thread owns.
struct service::impl {
    using request_type = kamaelia::request<check>;

    std::shared_ptr<shared_state> state = std::make_shared<shared_state>();
    shared_state& shared = *state;
    std::shared_ptr<const whitelist> lists;
    std::unique_ptr<connection> single;    // SQLite: run by the service's thread
    std::vector<std::string> worker_boxes; // a pool: the outbox to each worker
    std::size_t size = 0;

    impl(const settings& c, std::vector<std::unique_ptr<store>>& stores) : lists(build_whitelist(c, true)) {
        shared.cfg = c;
        settings& cfg = shared.cfg;
        shared.t.delay = cfg.delay.count();
        shared.t.retry_window = cfg.retry_window.count();
        shared.t.max_age = cfg.max_age.count();
        if (cfg.expire_interval < std::chrono::milliseconds(100)) cfg.expire_interval = std::chrono::milliseconds(100);
        if (cfg.expire_batch == 0) cfg.expire_batch = 1;
        if (cfg.health_interval < std::chrono::milliseconds(100)) cfg.health_interval = std::chrono::milliseconds(100);
        if (cfg.connection_queue == 0) cfg.connection_queue = 1;
        if (stores.empty()) throw store_error("greylist: no store");
        pass_memory::options mo;
        mo.ttl = cfg.pass_memory_ttl.count() > 0 ? cfg.pass_memory_ttl : std::chrono::seconds(0);
        mo.capacity = std::max<std::size_t>(cfg.pass_memory_entries, 1);
        mo.ipv4_prefix = cfg.ipv4_prefix;
        mo.ipv6_prefix = cfg.ipv6_prefix;
        mo.per_client = cfg.auto_whitelist_clients > 0;
        mo.clock = cfg.clock;
        shared.memory = std::make_shared<pass_memory>(std::move(mo));
        shared.errors.resize(stores.size());
        size = stores.size();
        // A local store's waits are bounded by its busy timeout: no hop. A
        // remote one may stall for as long as its server does.
        if (size == 1 && !stores.front()->remote()) {
            single = std::make_unique<connection>(shared, 0, std::move(stores.front()));
            return;
        }
        shared.bound = cfg.connection_queue;
        shared.held = std::make_unique<std::atomic<std::size_t>[]>(size);
        for (std::size_t i = 0; i < size; ++i) shared.held[i].store(0, std::memory_order_relaxed);
    }

    plan make_plan(const request& r) const {
        const settings& cfg = shared.cfg;
        plan p;
        p.listed = lists->match(r);
        if (p.listed) return p;
        p.key = make_triplet(r.client_address, r.sender, r.recipient, cfg.ipv4_prefix, cfg.ipv6_prefix);
        if (cfg.auto_whitelist_clients > 0) p.client = canonical_address(r.client_address);
        return p;
    }

    // A request the whitelists decide (client, sender domain, recipient:
    // the store is not asked) is answered here, at once: it never waits in
    // a connection's queue behind a slow or stalled store, nor is it
    // refused "busy" because that queue is full. True if it was answered.
    bool answer_listed(request_type& r, plan& p) {
        if (!p.listed) return false;
        decision d;
        d.what = verdict::whitelisted;
        d.reason = std::move(*p.listed);
        r.reply(std::move(d));
        shared.decisions.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    // The connection a request goes to: by its client's address, so that
    // one client's requests (its triplets and its auto-whitelist row) are
    // decided on one connection, in the order they came, and never wait on
    // each other's row locks. The same triplet from two addresses of one
    // network may meet on two connections: SELECT ... FOR UPDATE makes the
    // second wait for the first's COMMIT and read its row, as two hosts do.
    std::size_t route(const request& r) const {
        std::size_t h = std::hash<std::string>{}(canonical_address(r.client_address));
        return h % worker_boxes.size();
    }

    // Room on connection `i` for one more request: taken (true), or the
    // refusal counted and logged (false). Only this thread adds to held[i],
    // so the check and the add cannot race; the worker only takes off. The
    // outage log ends once the connection has drained to half the bound, so
    // a connection hovering at its bound logs one line per interval, not
    // one per batch.
    bool admit(std::size_t i) {
        std::size_t n = shared.held[i].load(std::memory_order_acquire);
        if (n >= shared.bound) {
            shared.refused_busy.fetch_add(1, std::memory_order_relaxed);
            shared.busy.fail("connection " + std::to_string(i) + " holds " + std::to_string(n) + " requests");
            return false;
        }
        shared.held[i].fetch_add(1, std::memory_order_acq_rel);
        if (shared.busy.active() && n < shared.bound / 2) shared.busy.ok();
        return true;
    }

    void reload() {
        try {
            lists = build_whitelist(shared.cfg, false);
            // A request judged a pass may be listed now (another answer).
            if (shared.memory) shared.memory->clear();
            spdlog::info("greylist: whitelists reloaded ({} entries)", lists->size());
        } catch (const std::exception& e) {
            spdlog::error("greylist: whitelists not reloaded, keeping the old ones: {}", e.what());
        }
    }
};

service::service(const settings& cfg) : service(cfg, open_stores(cfg)) {}

service::service(const settings& cfg, std::unique_ptr<store> st) : service(cfg, one(std::move(st))) {}

service::service(const settings& cfg, std::vector<std::unique_ptr<store>> stores)
    : threaded_component(queue_limit_for(cfg)),
      impl_(std::make_unique<impl>(cfg, stores)) {
    declare_inbox("reload", "reload_whitelists: re-read the whitelist files (SIGHUP)");
    if (impl_->single) return;
    // A pool: a worker a connection, activated with the service.
    declare_inbox("findings", "the pool's workers: what each found of its store");
    for (std::size_t i = 0; i < stores.size(); ++i) {
        auto& name = impl_->worker_boxes.emplace_back(
            add_outbox("connection" + std::to_string(i), "requests routed to connection " + std::to_string(i)));
        auto& w =
            add_child(std::make_unique<connection_worker>(impl_->state, i, std::move(stores[i]), queue_limit_for(cfg)));
        link({*this, std::string_view(name)}, {w, "inbox"});
        link({w, "outbox"}, {*this, "findings"});
    }
}

service::~service() {
    stop_thread(); // the thread uses impl_
    auto d = decisions(), c = commits();
    if (d)
        spdlog::info("greylist: {} decisions in {} transactions ({:.1f} a commit)", d, c,
                     static_cast<double>(d) / static_cast<double>(c ? c : 1));
}

std::uint64_t service::decisions() const noexcept { return impl_->shared.decisions.load(std::memory_order_relaxed); }
std::shared_ptr<pass_memory> service::memory() const noexcept { return impl_->shared.memory; }
std::uint64_t service::commits() const noexcept { return impl_->shared.commits.load(std::memory_order_relaxed); }
std::size_t service::connections() const noexcept { return impl_->size; }
std::uint64_t service::refused_busy() const noexcept {
    return impl_->shared.refused_busy.load(std::memory_order_relaxed);
}

void service::interrupt() noexcept {
    if (impl_->single) impl_->single->db->interrupt(); // a pool's workers are interrupted as they stop
}

std::shared_ptr<const store_health> service::health() const noexcept { return impl_->shared.health; }

void service::thread_main() {
    impl& m = *impl_;
    // Takes every waiting request. A listed one is answered here, before any
    // transaction rather than after its COMMIT; the others go to
    // `each(request, plan)`. Every answer given meanwhile wakes its asker's
    // scheduler once, at the end (reply_batch).
    auto take_requests = [&](auto&& each) {
        reply_batch replies;
        while (auto r = recv<impl::request_type>()) {
            plan p = m.make_plan(r->body.r);
            if (m.answer_listed(*r, p)) continue;
            each(std::move(*r), std::move(p));
        }
    };
    if (m.single) {
        // One connection: this thread is its database thread (no hop).
        connection& c = *m.single;
        std::vector<job> batch;
        auto due = c.first_timers();
        auto tell = [&] {
            if (auto f = c.take_finding()) m.shared.apply(*f);
        };
        while (!shutdown_requested()) {
            while (recv_message("reload")) m.reload();
            if (data_ready("inbox")) {
                // Woken by the first request of a burst: let the scheduler thread
                // (which the wake-up may have preempted on a shared core) queue
                // the rest of its cycle, so they share a commit.
                std::this_thread::yield();
                take_requests([&](impl::request_type r, plan p) { batch.push_back(job{std::move(r), std::move(p)}); });
                if (!batch.empty()) c.run_batch(batch, due);
            }
            c.idle_work(due);
            tell();
            if (!data_ready("inbox") && !data_ready("reload")) wait(c.next_due(due) - std::chrono::steady_clock::now());
        }
        return;
    }
    // A pool: this thread routes, each worker runs its batches (group
    // commit per connection; several commits in flight at once). A
    // connection holding connection_queue requests gets no more: they are
    // answered tempfail at once, so a stalled server holds a bounded number
    // of askers and the routing never waits (the queues take a whole
    // connection_queue). The workers end with the service (its children).
    while (!shutdown_requested()) {
        while (recv_message("reload")) m.reload();
        while (auto f = recv<finding>("findings")) m.shared.apply(*f);
        take_requests([&](impl::request_type r, plan p) {
            std::size_t to = m.route(r.body.r);
            if (!m.admit(to)) {
                r.reply(tempfail("greylist store busy")); // answered at once: the routing never waits
                return;
            }
            send(job{std::move(r), std::move(p)}, std::string_view(m.worker_boxes[to]));
        });
        if (!data_ready("inbox") && !data_ready("reload") && !data_ready("findings")) wait();
    }
}

service& start_service(scheduler& s, const settings& cfg, const std::string& name) {
    auto svc = std::make_unique<service>(cfg);
    service& ref = *svc;
    s.spawn(std::move(svc));
    s.services().register_service(name, ref, "inbox");
    return ref;
}

} // namespace kamaelia::greylist
