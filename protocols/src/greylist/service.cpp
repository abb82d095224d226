// The greylist service: one database thread that answers in batches.
//
// thread_main() takes every request queued so far, runs them in ONE
// transaction, commits, and only then replies (group commit). A failed batch
// is rolled back and every request in it answered tempfail; the outage is
// logged when it starts, rate-limited while it lasts and when it ends. When
// idle the thread expires old rows in small transactions, so expiry never
// blocks a decision for long.
#include <kamaelia/greylist/service.hpp>

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/sqlite_store.hpp>
#include <kamaelia/greylist/whitelist.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include <spdlog/spdlog.h>

#include <optional>
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

std::unique_ptr<store> open_store(const settings& cfg) {
    if (cfg.database.empty()) throw store_error("greylist: no database file given");
    if (pg_store::is_url(cfg.database)) {
        // Several MX hosts on one PostgreSQL database.
        pg_store::options po;
        po.conninfo = cfg.database;
        po.max_rows = cfg.max_rows;
        return std::make_unique<pg_store>(po);
    }
    sqlite_store::options o;
    o.path = cfg.database;
    o.sync_full = cfg.sync_full;
    o.max_rows = cfg.max_rows;
    o.busy_timeout = cfg.busy_timeout;
    return std::make_unique<sqlite_store>(o);
}

decision tempfail(std::string reason) {
    decision d;
    d.what = verdict::tempfail;
    d.reason = std::move(reason);
    return d;
}

} // namespace

// Everything the database thread owns.
struct service::impl {
    using request_type = kamaelia::request<check>;

    settings cfg;
    timing t;
    std::unique_ptr<store> db;
    std::shared_ptr<const whitelist> lists;
    log_limiter outage{"greylist: database unusable, answering tempfail", std::chrono::seconds(10)};
    std::shared_ptr<store_health> health = std::make_shared<store_health>();

    impl(const settings& c, std::unique_ptr<store> st) : cfg(c), db(std::move(st)), lists(build_whitelist(c, true)) {
        t.delay = cfg.delay.count();
        t.retry_window = cfg.retry_window.count();
        t.max_age = cfg.max_age.count();
        if (cfg.expire_interval < std::chrono::milliseconds(100)) cfg.expire_interval = std::chrono::milliseconds(100);
        if (cfg.expire_batch == 0) cfg.expire_batch = 1;
        if (cfg.health_interval < std::chrono::milliseconds(100)) cfg.health_interval = std::chrono::milliseconds(100);
    }

    std::int64_t now() const {
        auto tp = cfg.clock ? cfg.clock() : std::chrono::system_clock::now();
        return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
    }

    // What a request needs from the store, worked out before the batch's
    // transaction so that the store can read it all at once.
    struct plan {
        std::optional<std::string> listed; // whitelisted by the lists: the store is not asked
        triplet key;
        std::string client; // canonical address, when the client auto-whitelist is on
    };
    // A batch's plans, kept between batches for their capacity.
    std::vector<plan> plans;
    std::vector<triplet> keys;
    std::vector<std::string> clients;

    plan make_plan(const request& r) const {
        plan p;
        p.listed = lists->match(r);
        if (p.listed) return p;
        p.key = make_triplet(r.client_address, r.sender, r.recipient, cfg.ipv4_prefix, cfg.ipv6_prefix);
        if (cfg.auto_whitelist_clients > 0) p.client = canonical_address(r.client_address);
        return p;
    }

    decision judge(plan& p, std::int64_t at) {
        if (p.listed) {
            decision d;
            d.what = verdict::whitelisted;
            d.reason = std::move(*p.listed);
            return d;
        }
        const triplet& key = p.key;
        if (cfg.auto_whitelist_clients > 0) {
            const std::string& client = p.client;
            auto c = db->find_client(client);
            if (client_whitelisted(c, at, cfg.auto_whitelist_clients, t)) {
                if (auto b = bump_client(c, at, t)) db->save_client(client, *b);
                decision d;
                d.what = verdict::whitelisted;
                d.reason = "client auto-whitelisted";
                return d;
            }
            auto row = db->find(key);
            auto o = judge_triplet(row, at, t);
            if (o.store) db->save(key, o.write, row.has_value());
            if (o.first_pass)
                if (auto b = bump_client(c, at, t)) db->save_client(client, *b);
            return o.answer;
        }
        auto row = db->find(key);
        auto o = judge_triplet(row, at, t);
        if (o.store) db->save(key, o.write, row.has_value());
        return o.answer;
    }

    // One transaction for the batch; the answers go out after COMMIT. Any
    // error (a store_error, bad_alloc, anything) answers the whole batch
    // tempfail: nothing was committed.
    void run_batch(std::vector<request_type>& batch, std::vector<decision>& out) {
        out.clear();
        out.reserve(batch.size());
        std::int64_t at = now();
        try {
            plans.clear();
            keys.clear();
            clients.clear();
            for (auto& rq : batch) {
                plans.push_back(make_plan(rq.body.r));
                if (plans.back().listed) continue;
                keys.push_back(plans.back().key);
                if (!plans.back().client.empty()) clients.push_back(plans.back().client);
            }
            db->begin();
            db->prefetch(keys, clients);
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const auto& r = batch[i].body.r;
                out.push_back(judge(plans[i], r.test_time ? r.test_time : at));
            }
            db->commit();
            outage.ok();
            health->set({});
        } catch (const std::exception& e) {
            db->rollback();
            outage.fail(e.what());
            health->set(e.what());
            out.assign(batch.size(), tempfail(e.what()));
        } catch (...) {
            db->rollback();
            outage.fail("unknown error");
            health->set("unknown error");
            out.assign(batch.size(), tempfail("greylist store failed"));
        }
        for (std::size_t i = 0; i < batch.size(); ++i) batch[i].reply(std::move(out[i]));
    }

    // One expiry transaction; true if it was full (more may be waiting).
    bool expire_some() {
        try {
            db->begin();
            std::size_t n = db->expire(now(), t, cfg.expire_batch);
            db->commit();
            if (n) spdlog::debug("greylist: expired {} rows", n);
            health->set({});
            return n >= cfg.expire_batch;
        } catch (const std::exception& e) {
            db->rollback();
            health->set(e.what());
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
            health->set({});
        } catch (const std::exception& e) {
            db->rollback();
            health->set(e.what());
        }
    }

    void reload() {
        try {
            lists = build_whitelist(cfg, false);
            spdlog::info("greylist: whitelists reloaded ({} entries)", lists->size());
        } catch (const std::exception& e) {
            spdlog::error("greylist: whitelists not reloaded, keeping the old ones: {}", e.what());
        }
    }
};

service::service(const settings& cfg) : service(cfg, open_store(cfg)) {}

service::service(const settings& cfg, std::unique_ptr<store> st) : impl_(std::make_unique<impl>(cfg, std::move(st))) {
    declare_inbox("reload", "reload_whitelists: re-read the whitelist files (SIGHUP)");
}

service::~service() {
    stop_thread(); // the thread uses impl_
    if (decisions_)
        spdlog::info("greylist: {} decisions in {} transactions ({:.1f} a commit)", decisions_, commits_,
                     static_cast<double>(decisions_) / static_cast<double>(commits_ ? commits_ : 1));
}

void service::interrupt() noexcept { impl_->db->interrupt(); }

std::shared_ptr<const store_health> service::health() const noexcept { return impl_->health; }

void service::thread_main() {
    impl& m = *impl_;
    std::vector<impl::request_type> batch;
    std::vector<decision> out;
    auto next_expiry = std::chrono::steady_clock::now() + m.cfg.expire_interval;
    auto next_probe = std::chrono::steady_clock::now() + m.cfg.health_interval;
    while (!shutdown_requested()) {
        while (recv_message("reload")) m.reload();
        if (data_ready("inbox")) {
            // Woken by the first request of a burst: let the scheduler thread
            // (which the wake-up may have preempted on a shared core) queue
            // the rest of its cycle, so they share a commit.
            std::this_thread::yield();
            while (auto r = recv<impl::request_type>()) batch.push_back(std::move(*r));
            m.run_batch(batch, out);
            decisions_ += batch.size();
            ++commits_;
            batch.clear();
            next_probe = std::chrono::steady_clock::now() + m.cfg.health_interval; // the batch was the probe
        }
        // Expiry also runs under constant load: one small transaction
        // between batches when it is due (again at once while rows remain).
        auto now = std::chrono::steady_clock::now();
        if (now >= next_expiry) {
            next_expiry = m.expire_some() ? now : now + m.cfg.expire_interval;
            next_probe = now + m.cfg.health_interval;
        }
        if (now >= next_probe) {
            m.probe();
            next_probe = now + m.cfg.health_interval;
        }
        if (!data_ready("inbox") && !data_ready("reload"))
            wait(std::min(next_expiry, next_probe) - std::chrono::steady_clock::now());
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
