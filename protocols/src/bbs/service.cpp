// The board's store and KDF services. The batch logic lives in
// detail::store_batch so the threaded service (the daemon) and the inline
// one (deterministic tests) run the same code.
#include <kamaelia/bbs/service.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <spdlog/spdlog.h>

#include <deque>
#include <exception>
#include <string>
#include <utility>

namespace kamaelia::bbs {

namespace detail {

namespace {
const char* const not_committed = "the board's database did not commit";
}

void store_batch::run_alone(store& db, request_type& r) {
    try {
        db.begin();
        r.body.run(db);
        db.commit();
        outage_.ok();
        r.reply(job_done{});
    } catch (const std::exception& e) {
        db.rollback();
        outage_.fail(e.what());
        r.fail(not_committed);
    }
}

void store_batch::run(store& db, std::vector<request_type>& batch) {
    const std::size_t n = batch.size();
    failed_.assign(n, 0);
    std::size_t i = 0;
    bool committed = false;
    try {
        db.begin();
        for (; i < n; ++i) {
            try {
                batch[i].body.run(db);
            } catch (const std::exception& e) {
                // This job is answered with an error; the others go on (its
                // statement failed whole: SQLite undoes a failed statement).
                failed_[i] = 1;
                outage_.fail(e.what());
            }
            if (!db.in_transaction()) { // SQLite rolled back by itself (an I/O error): the batch is lost
                ++i;
                break;
            }
        }
        if (db.in_transaction()) {
            db.commit();
            committed = true;
        }
    } catch (const std::exception& e) {
        outage_.fail(std::string("a batch of ") + std::to_string(i) + " jobs failed: " + e.what());
        db.rollback();
    }
    // Answers only now, after COMMIT: an acknowledged write is on disk.
    bool all_ok = committed;
    for (std::size_t k = 0; k < i; ++k) {
        if (committed && !failed_[k]) {
            batch[k].reply(job_done{});
        } else {
            all_ok = false;
            batch[k].fail(not_committed);
        }
    }
    if (all_ok && i > 0) outage_.ok();
    // What the batch did not reach runs alone, one transaction each.
    for (std::size_t k = i; k < n; ++k) run_alone(db, batch[k]);
}

time_point scheduler_clock::now() const noexcept { return s_->now(); }

void kdf_work::answer(kamaelia::request<kdf_request, kdf_answer>& r) {
    kdf_answer a;
    std::string key;
    if (r.body.login) {
        key = login_throttle::key(r.body.login->name, r.body.login->address);
        a.locked = throttle_.locked_for(key);
        if (a.locked > duration::zero()) { // refused without a KDF run: a locked name costs nothing
            r.reply(std::move(a));
            return;
        }
    }
    try {
        if (r.body.rehash_at) {
            a.fresh = hash_password(r.body.password, r.body.rehash_at);
        } else {
            a.match = verify_password(r.body.password, r.body.stored);
        }
        log_.ok();
    } catch (const std::exception& e) {
        log_.fail(e.what());
        r.fail("password hashing failed");
        return;
    }
    if (const auto& login = r.body.login) {
        if (a.match && login->known) {
            throttle_.note_success(key);
        } else if (throttle_.note_failure(key)) {
            spdlog::warn("bbs: {} failed logins for '{}' from {}: locked for a while", throttle_.config().max_failures,
                         login->name, login->address);
        }
    }
    r.reply(std::move(a));
}

} // namespace detail

// ---- the threaded services ---------------------------------------------------------

struct store_service::connection {
    std::unique_ptr<store> db;
    detail::store_batch batch;
};

struct store_service::pool_load {
    std::atomic<std::size_t> busy{0}; // jobs handed to the workers and not yet answered
};

namespace {

std::vector<std::unique_ptr<store>> one(std::unique_ptr<store> db) {
    std::vector<std::unique_ptr<store>> v;
    v.push_back(std::move(db));
    return v;
}

using request_type = detail::store_batch::request_type;
// What the service hands an idle worker: what it had queued, up to max_batch.
// (Move-only, as its requests are: a vector would claim to copy.)
struct job_batch {
    std::vector<request_type> jobs;
    job_batch() = default;
    job_batch(job_batch&&) = default;
    job_batch& operator=(job_batch&&) = default;
    job_batch(const job_batch&) = delete;
};
// A worker's batch is answered: it takes the next (its index).
struct worker_ready {
    std::size_t index;
};
// After the last batch the service sends a worker when it is shut down:
// the worker says it is done and ends.
struct end_of_jobs {};
struct worker_done {};

// A pooled connection as a component of its own: a child of the store
// service, its "inbox" fed from one of the service's outboxes, its
// "outbox" linked to the service's "workers". It runs one batch at a time
// and asks for the next when it has answered it.
class store_worker final : public threaded_component {
public:
    store_worker(std::unique_ptr<store> db, std::shared_ptr<store_service::pool_load> load, std::size_t index)
        : db_(std::move(db)),
          load_(std::move(load)),
          index_(index) {}
    ~store_worker() override { stop_thread(); } // the thread uses db_
    std::string type_name() const override { return "bbs_store_connection"; }

protected:
    void thread_main() override {
        while (!shutdown_requested()) {
            if (auto m = recv_message()) {
                if (m->holds<end_of_jobs>()) break;
                auto batch = m->take<job_batch>().jobs;
                const std::size_t n = batch.size();
                batch_.run(*db_, batch);
                batch.clear(); // the requests (and what their jobs captured) go here, on this thread
                load_->busy.fetch_sub(n, std::memory_order_relaxed);
                send(worker_ready{index_}, "outbox");
                continue;
            }
            // Idle for a while: an empty transaction, so that a connection
            // the server dropped (a restart) is made again before a session
            // needs it, not only by the next batch that happens to come its way.
            if (!wait(store_service::probe_interval)) {
                try {
                    db_->begin();
                    db_->commit();
                } catch (const std::exception&) {
                    db_->rollback(); // the outage is logged by the jobs that meet it
                }
            }
        }
        send_forced(message(worker_done{}), "outbox");
    }
    void interrupt() noexcept override { db_->interrupt(); }

private:
    std::unique_ptr<store> db_;
    detail::store_batch batch_;
    std::shared_ptr<store_service::pool_load> load_;
    std::size_t index_;
};

} // namespace

store_service::store_service(std::unique_ptr<store> db, std::size_t connection_queue)
    : store_service(one(std::move(db)), connection_queue) {}

store_service::store_service(std::vector<std::unique_ptr<store>> pool, std::size_t connection_queue)
    : bound_(connection_queue ? connection_queue : 1) {
    if (pool.empty()) throw store_error("bbs: no store");
    size_ = pool.size();
    // One local store (SQLite: its waits end at its busy timeout) is run by
    // this thread; a remote one may stall as long as its server does.
    if (size_ == 1 && !pool.front()->remote()) {
        single_ = std::make_unique<connection>();
        single_->db = std::move(pool.front());
        return;
    }
    // A pool: a worker a connection, activated with the service.
    load_ = std::make_shared<pool_load>();
    declare_inbox("workers", "the pool's workers: ready for a batch, or done");
    for (std::size_t i = 0; i < size_; ++i) {
        auto& name = worker_boxes_.emplace_back(
            add_outbox("connection" + std::to_string(i), "batches for connection " + std::to_string(i)));
        auto& w = add_child(std::make_unique<store_worker>(std::move(pool[i]), load_, i));
        link({*this, std::string_view(name)}, {w, "inbox"});
        link({w, "outbox"}, {*this, "workers"});
    }
}

store_service::~store_service() {
    stop_thread(); // the thread uses single_
}

std::size_t store_service::pending() {
    std::size_t handed = load_ ? load_->busy.load(std::memory_order_relaxed) : 0;
    return data_ready("inbox") + waiting_.load(std::memory_order_relaxed) + handed +
           busy_.load(std::memory_order_relaxed);
}

void store_service::interrupt() noexcept {
    if (single_) single_->db->interrupt(); // a pool's workers are interrupted as they stop
}

void store_service::thread_main() {
    using request_type = detail::store_batch::request_type;
    if (single_) {
        connection& c = *single_;
        std::vector<request_type> batch;
        auto take = [&] {
            while (batch.size() < detail::store_batch::max_batch)
                if (auto r = recv<request_type>()) {
                    batch.push_back(std::move(*r));
                } else {
                    break;
                }
            busy_.store(batch.size(), std::memory_order_relaxed);
            c.batch.run(*c.db, batch);
            batch.clear(); // the requests (and what their jobs captured) go here, on this thread
            busy_.store(0, std::memory_order_relaxed);
        };
        while (!shutdown_requested()) {
            if (data_ready("inbox")) {
                take();
            } else {
                wait();
            }
        }
        // Stopped (the daemon stopping): what was queued still runs and is answered.
        while (!stop_requested() && data_ready("inbox")) take();
        return;
    }
    // A pool: an idle worker (one that has answered its batch) is handed
    // what is queued, up to max_batch, as its batch - as a shared queue
    // would: a connection held by a slow batch gets no more while another
    // is free. This thread always takes what comes: what no idle worker
    // takes waits here, at most bound_ jobs; beyond that a job is refused
    // at once, so a stalled database holds a bounded number of sessions
    // while the rest are told to try later. The workers run the batches.
    std::vector<std::size_t> idle;
    std::deque<request_type> waiting;
    for (std::size_t i = 0; i < size_; ++i) idle.push_back(size_ - 1 - i);
    std::size_t done = 0;
    auto take_reports = [&](bool block) {
        while (auto m = block ? recv_message_wait("workers") : recv_message("workers")) {
            if (auto* r = m->peek<worker_ready>()) idle.push_back(r->index);
            if (m->holds<worker_done>()) ++done;
            block = false;
        }
    };
    // What comes in waits, up to what the idle workers are about to take
    // plus bound_; the rest is refused "store busy".
    auto take_in = [&] {
        const std::size_t room = bound_ + idle.size() * detail::store_batch::max_batch;
        while (auto r = recv<request_type>()) {
            if (waiting.size() < room) {
                waiting.push_back(std::move(*r));
                continue;
            }
            refused_.fetch_add(1, std::memory_order_relaxed);
            busy_log_.fail(std::to_string(waiting.size()) + " jobs wait for a connection");
            r->fail(service_error{service_errc::full, "the board's store is busy"});
        }
    };
    auto hand_out = [&] {
        while (!idle.empty() && !waiting.empty()) {
            job_batch batch;
            while (batch.jobs.size() < detail::store_batch::max_batch && !waiting.empty()) {
                batch.jobs.push_back(std::move(waiting.front()));
                waiting.pop_front();
            }
            load_->busy.fetch_add(batch.jobs.size(), std::memory_order_relaxed);
            send(std::move(batch), std::string_view(worker_boxes_[idle.back()]));
            idle.pop_back();
        }
        // Drained to half the bound: the busy spell is over (one line per
        // interval while it hovers at the bound, not one per batch).
        if (busy_log_.active() && waiting.size() < bound_ / 2) busy_log_.ok();
        waiting_.store(waiting.size(), std::memory_order_relaxed);
    };
    while (!shutdown_requested()) {
        take_reports(false);
        take_in();
        hand_out();
        if (!data_ready("workers") && !data_ready("inbox")) wait();
    }
    // Shut down (the daemon stopping): what was queued still runs and is
    // answered; the workers end after it. Stopped outright: this thread
    // unwinds at its next blocking call and the workers end with the
    // service (their askers hear the service ended).
    for (;;) {
        take_in();
        hand_out();
        if (waiting.empty()) {
            if (!data_ready("inbox")) break;
            continue;
        }
        take_reports(true); // every worker busy: wait for one
    }
    for (const auto& b : worker_boxes_) send(end_of_jobs{}, std::string_view(b));
    while (done < size_) take_reports(true);
}

kdf_service::kdf_service(const scheduler& s, login_throttle::limits l) : work_(s, l) {}

kdf_service::~kdf_service() { stop_thread(); }

void kdf_service::thread_main() {
    using request_type = kamaelia::request<kdf_request, kdf_answer>;
    while (!shutdown_requested()) {
        while (auto r = recv<request_type>()) {
            busy_.store(1, std::memory_order_relaxed);
            work_.answer(*r);
            busy_.store(0, std::memory_order_relaxed);
        }
        if (!data_ready("inbox")) wait();
    }
}

// ---- the inline services (tests) -------------------------------------------------

task inline_store_service::main() {
    std::vector<detail::store_batch::request_type> batch;
    while (!shutdown_requested()) {
        while (auto r = recv<detail::store_batch::request_type>()) {
            batch.push_back(std::move(*r));
            if (batch.size() == detail::store_batch::max_batch) break;
        }
        if (!batch.empty()) {
            batch_.run(*db_, batch);
            batch.clear();
            continue;
        }
        co_await wait_any();
    }
}

task inline_kdf_service::main() {
    using request_type = kamaelia::request<kdf_request, kdf_answer>;
    while (!shutdown_requested()) {
        while (auto r = recv<request_type>()) work_.answer(*r);
        co_await wait_any();
    }
}

} // namespace kamaelia::bbs
