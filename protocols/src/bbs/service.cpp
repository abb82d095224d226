// The board's store and KDF services. The batch logic lives in
// detail::store_batch so the threaded service (the daemon) and the inline
// one (deterministic tests) run the same code.
#include <kamaelia/bbs/service.hpp>

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

void answer_kdf(kamaelia::request<kdf_request, kdf_answer>& r, log_limiter& log) {
    kdf_answer a;
    try {
        if (r.body.rehash_at) {
            a.fresh = hash_password(r.body.password, r.body.rehash_at);
        } else {
            a.match = verify_password(r.body.password, r.body.stored);
        }
        log.ok();
    } catch (const std::exception& e) {
        log.fail(e.what());
        r.fail("password hashing failed");
        return;
    }
    r.reply(std::move(a));
}

} // namespace detail

// ---- the threaded services ---------------------------------------------------------

store_service::store_service(std::unique_ptr<store> db) : db_(std::move(db)) {}

store_service::~store_service() {
    stop_thread(); // the thread uses db_ and batch_
}

void store_service::interrupt() noexcept { db_->interrupt(); }

void store_service::thread_main() {
    std::vector<detail::store_batch::request_type> batch;
    auto take = [&] {
        while (batch.size() < detail::store_batch::max_batch)
            if (auto r = recv<detail::store_batch::request_type>()) {
                batch.push_back(std::move(*r));
            } else {
                break;
            }
        busy_.store(batch.size(), std::memory_order_relaxed);
        batch_.run(*db_, batch);
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
}

kdf_service::kdf_service() = default;

kdf_service::~kdf_service() { stop_thread(); }

void kdf_service::thread_main() {
    using request_type = kamaelia::request<kdf_request, kdf_answer>;
    while (!shutdown_requested()) {
        while (auto r = recv<request_type>()) {
            busy_.store(1, std::memory_order_relaxed);
            detail::answer_kdf(*r, log_);
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
        while (auto r = recv<request_type>()) detail::answer_kdf(*r, log_);
        co_await wait_any();
    }
}

} // namespace kamaelia::bbs
