// The greylist engine: whitelists on the caller's thread, everything that
// touches the store on one database thread that answers in batches.
//
// decide() queues the request; the database thread takes every request
// queued so far, runs them in ONE transaction, commits, and only then posts
// the answers to the scheduler in one go (group commit: at 8 connections
// eight decisions share one commit). A failed batch is rolled back and
// every request in it is answered tempfail. When idle the thread expires
// old rows in small transactions, so expiry never blocks a decision for long.
#include <kamaelia/greylist/settings.hpp>
#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/sqlite_store.hpp>
#include <kamaelia/greylist/whitelist.hpp>

#include <kamaelia/core/scheduler.hpp>

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace kamaelia::greylist {

namespace {

using done_fn = std::function<void(decision)>;

struct pending {
    triplet key;
    std::string client; // canonical address, for the client auto-whitelist
    std::int64_t test_time = 0;
    done_fn done;
};

struct answered {
    done_fn done;
    decision d;
};

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

class sqlite_engine final : public engine {
public:
    sqlite_engine(scheduler& s, const settings& cfg, std::unique_ptr<store> st)
        : sched_(s), cfg_(cfg), store_(std::move(st)), lists_(build_whitelist(cfg, true)) {
        t_.delay = cfg.delay.count();
        t_.retry_window = cfg.retry_window.count();
        t_.max_age = cfg.max_age.count();
        if (cfg_.expire_interval < std::chrono::milliseconds(100)) cfg_.expire_interval = std::chrono::milliseconds(100);
        if (cfg_.expire_batch == 0) cfg_.expire_batch = 1;
        thread_ = std::thread([this] { run(); });
    }

    ~sqlite_engine() override {
        {
            std::lock_guard lk(mutex_);
            stopping_ = true;
        }
        cv_.notify_one();
        thread_.join();
        if (decisions_)
            spdlog::info("greylist: {} decisions in {} transactions ({:.1f} a commit)", decisions_, batches_,
                         static_cast<double>(decisions_) / static_cast<double>(batches_ ? batches_ : 1));
    }

    void decide(const request& r, done_fn done) override {
        if (auto why = lists_->match(r)) {
            decision d;
            d.what = verdict::whitelisted;
            d.reason = std::move(*why);
            sched_.post([done = std::move(done), d = std::move(d)]() mutable { done(std::move(d)); });
            return;
        }
        pending p{make_triplet(r.client_address, r.sender, r.recipient, cfg_.ipv4_prefix, cfg_.ipv6_prefix),
                  canonical_address(r.client_address), r.test_time, std::move(done)};
        bool wake = false, refused = false;
        {
            std::lock_guard lk(mutex_);
            if (stopping_) {
                refused = true;
            } else {
                wake = queue_.empty();
                queue_.push_back(std::move(p));
            }
        }
        if (refused) {
            decision d;
            d.reason = "greylist shutting down";
            sched_.post([done = std::move(p.done), d = std::move(d)]() mutable { done(std::move(d)); });
            return;
        }
        if (wake) cv_.notify_one();
    }

    void reload() override {
        try {
            lists_ = build_whitelist(cfg_, false);
            spdlog::info("greylist: whitelists reloaded ({} entries)", lists_->size());
        } catch (const std::exception& e) {
            spdlog::error("greylist: whitelists not reloaded, keeping the old ones: {}", e.what());
        }
    }

private:
    std::int64_t now() const {
        auto tp = cfg_.clock ? cfg_.clock() : std::chrono::system_clock::now();
        return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
    }

    decision judge(const pending& p, std::int64_t at) {
        if (cfg_.auto_whitelist_clients > 0) {
            auto c = store_->find_client(p.client);
            if (client_whitelisted(c, at, cfg_.auto_whitelist_clients, t_)) {
                if (auto b = bump_client(c, at, t_)) store_->save_client(p.client, *b);
                decision d;
                d.what = verdict::whitelisted;
                d.reason = "client auto-whitelisted";
                return d;
            }
            auto row = store_->find(p.key);
            auto o = judge_triplet(row, at, t_);
            if (o.store) store_->save(p.key, o.write, row.has_value());
            if (o.first_pass)
                if (auto b = bump_client(c, at, t_)) store_->save_client(p.client, *b);
            return o.answer;
        }
        auto row = store_->find(p.key);
        auto o = judge_triplet(row, at, t_);
        if (o.store) store_->save(p.key, o.write, row.has_value());
        return o.answer;
    }

    void run() {
        std::vector<pending> batch;
        std::vector<answered> out;
        auto next_expiry = std::chrono::steady_clock::now() + cfg_.expire_interval;
        for (;;) {
            {
                std::unique_lock lk(mutex_);
                cv_.wait_until(lk, next_expiry, [&] { return stopping_ || !queue_.empty(); });
                if (stopping_ && queue_.empty()) break;
                if (!queue_.empty() && !stopping_) {
                    // Woken by the first request of a burst: let the scheduler
                    // thread (which the wake-up may have preempted on a shared
                    // core) queue the rest of its cycle, so they share a commit.
                    lk.unlock();
                    std::this_thread::yield();
                    lk.lock();
                }
                for (auto& p : queue_) batch.push_back(std::move(p));
                queue_.clear();
            }
            if (!batch.empty()) {
                run_batch(batch, out);
                batch.clear();
                sched_.post([out = std::move(out)]() mutable {
                    for (auto& a : out) a.done(std::move(a.d));
                });
                out = {};
            }
            // Expiry also runs under constant load: one small transaction
            // between batches when it is due (again at once while rows remain).
            auto now_steady = std::chrono::steady_clock::now();
            if (now_steady >= next_expiry)
                next_expiry = expire_some() ? now_steady : now_steady + cfg_.expire_interval;
        }
    }

    void run_batch(std::vector<pending>& batch, std::vector<answered>& out) {
        out.reserve(batch.size());
        std::int64_t at = now();
        try {
            store_->begin();
            for (auto& p : batch) out.push_back({std::move(p.done), judge(p, p.test_time ? p.test_time : at)});
            store_->commit();
            failing_ = false;
            ++batches_;
            decisions_ += batch.size();
        } catch (const std::exception& e) {
            store_->rollback();
            // One line per outage, not one per batch.
            if (!failing_) spdlog::error("greylist: {}; answering tempfail", e.what());
            failing_ = true;
            std::string reason = e.what();
            for (std::size_t i = out.size(); i < batch.size(); ++i) out.push_back({std::move(batch[i].done), {}});
            for (auto& a : out) {
                a.d = decision{};
                a.d.what = verdict::tempfail;
                a.d.reason = reason;
            }
        }
    }

    // One expiry transaction; true if it was full (more may be waiting).
    bool expire_some() {
        try {
            store_->begin();
            std::size_t n = store_->expire(now(), t_, cfg_.expire_batch);
            store_->commit();
            if (n) spdlog::debug("greylist: expired {} rows", n);
            return n >= cfg_.expire_batch;
        } catch (const std::exception& e) {
            store_->rollback();
            spdlog::warn("greylist: expiry postponed: {}", e.what());
            return false;
        }
    }

    scheduler& sched_;
    settings cfg_;
    timing t_;
    std::unique_ptr<store> store_;
    std::shared_ptr<const whitelist> lists_; // swapped on the scheduler thread only

    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<pending> queue_;
    bool stopping_ = false;
    bool failing_ = false; // database thread only
    std::uint64_t batches_ = 0, decisions_ = 0; // database thread only (read after join)
    std::thread thread_;
};

} // namespace

std::shared_ptr<engine> open_engine(scheduler& s, const settings& cfg) {
    if (cfg.database.empty()) throw store_error("greylist: no database file given");
    if (pg_store::is_url(cfg.database)) {
        // Several MX hosts on one PostgreSQL database.
        pg_store::options po;
        po.conninfo = cfg.database;
        po.max_rows = cfg.max_rows;
        return std::make_shared<sqlite_engine>(s, cfg, std::make_unique<pg_store>(po));
    }
    sqlite_store::options o;
    o.path = cfg.database;
    o.sync_full = cfg.sync_full;
    o.max_rows = cfg.max_rows;
    o.busy_timeout = cfg.busy_timeout;
    auto st = std::make_unique<sqlite_store>(o);
    return std::make_shared<sqlite_engine>(s, cfg, std::move(st));
}

} // namespace kamaelia::greylist
