#include <kamaelia/bbs/board.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <kamaelia/util/log_limiter.hpp>

#include <spdlog/spdlog.h>

namespace kamaelia::bbs {

board::board(scheduler& s, std::unique_ptr<store> db, settings cfg, bool threaded)
    : sched_(s), cfg_(cfg), db_(std::move(db)) {
    if (threaded) {
        kdf_thread_ = std::make_unique<work_queue>("bbs-kdf");
        db_thread_ = std::make_unique<work_queue>("bbs-db", [this](std::vector<work_queue::job>& jobs) { run_batch(jobs); });
    }
}

board::~board() {
    // The threads first: queued jobs still use the store.
    db_thread_.reset();
    kdf_thread_.reset();
}

std::shared_ptr<board> board::open(scheduler& s, const std::string& path, settings cfg) {
    return std::shared_ptr<board>(new board(s, std::make_unique<store>(path), cfg, true));
}

std::shared_ptr<board> board::inline_board(scheduler& s, std::unique_ptr<store> db, settings cfg) {
    return std::shared_ptr<board>(new board(s, std::move(db), cfg, false));
}

void board::on_db(std::function<void(store&)> job) {
    if (!db_thread_) {
        job(*db_);
        return;
    }
    db_thread_->submit([this, job = std::move(job)] { job(*db_); });
}

void board::on_kdf(std::function<void()> job) {
    if (!kdf_thread_) {
        job();
        return;
    }
    kdf_thread_->submit(std::move(job));
}

namespace {
// The replies of the batch the database thread is running (only ever set
// on that thread).
thread_local std::vector<std::function<void(bool)>>* batch_replies = nullptr;
} // namespace

void board::reply(std::function<void(bool committed)> fn) {
    if (batch_replies) {
        batch_replies->push_back(std::move(fn));
    } else if (!db_thread_) {
        fn(true);
    } else {
        sched_.post([fn = std::move(fn)] { fn(true); });
    }
}

namespace {
log_limiter& worker_log() {
    thread_local log_limiter l("bbs: database unusable, sessions told to try again later", std::chrono::seconds(10));
    return l;
}
} // namespace

void note_worker_failure(const std::string& what) { worker_log().fail(what); }
void note_worker_success() { worker_log().ok(); }

void board::run_batch(std::vector<work_queue::job>& jobs) {
    std::vector<std::function<void(bool)>> replies;
    std::size_t i = 0;
    bool committed = false;
    try {
        db_->begin();
        batch_replies = &replies;
        for (; i < jobs.size(); ++i) {
            jobs[i](); // never throws: a job reports its own failure in its reply
            if (!db_->in_transaction()) { // SQLite rolled back (an I/O error): the batch is lost
                ++i;
                break;
            }
        }
        batch_replies = nullptr;
        if (db_->in_transaction()) {
            db_->commit();
            committed = true;
        }
    } catch (const std::exception& e) {
        batch_replies = nullptr;
        note_worker_failure(std::string("a batch of ") + std::to_string(i) + " jobs failed: " + e.what());
        db_->rollback();
    }
    if (committed) note_worker_success();
    else if (!replies.empty()) note_worker_failure(std::to_string(replies.size()) + " jobs not committed; their sessions are told");
    if (!replies.empty())
        sched_.post([replies = std::move(replies), committed] {
            for (auto& r : replies) r(committed);
        });
    // What the batch did not reach runs alone, each in its own transaction.
    for (; i < jobs.size(); ++i) jobs[i]();
}

namespace {
std::string throttle_key(const std::string& name, const std::string& address) {
    return user_key(name) + '\n' + address;
}
} // namespace

void board::prune(time_point now) {
    // Bounded memory: forget windows that have passed once the map grows.
    if (failures_.size() < 4096) return;
    for (auto it = failures_.begin(); it != failures_.end();) {
        if (now - it->second.first >= cfg_.failure_window) {
            it = failures_.erase(it);
        } else {
            ++it;
        }
    }
}

duration board::locked_for(const std::string& name, const std::string& address) {
    auto it = failures_.find(throttle_key(name, address));
    if (it == failures_.end() || it->second.count < cfg_.max_failures) return duration::zero();
    duration left = it->second.first + cfg_.failure_window - sched_.now();
    if (left <= duration::zero()) {
        failures_.erase(it);
        return duration::zero();
    }
    return left;
}

void board::note_failure(const std::string& name, const std::string& address) {
    time_point now = sched_.now();
    prune(now);
    auto& f = failures_[throttle_key(name, address)];
    if (f.count == 0 || now - f.first >= cfg_.failure_window) {
        f.count = 0;
        f.first = now;
    }
    if (++f.count == cfg_.max_failures)
        spdlog::warn("bbs: {} failed logins for '{}' from {}: locked for a while", f.count, name, address);
}

void board::note_success(const std::string& name, const std::string& address) {
    failures_.erase(throttle_key(name, address));
}

} // namespace kamaelia::bbs
