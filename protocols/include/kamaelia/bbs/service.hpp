// The board's blocking work as services, reached by request/reply
// (kamaelia/core/service.hpp), as the greylist is:
//
//   bbs::store_job j{[&](bbs::store& db) { n = db.unread_count(id); }};
//   auto r = co_await ask(board.store_service(), std::move(j));   // r: job_done, or an error
//   bbs::kdf_request k{password, stored};
//   auto v = co_await ask(board.kdf_service(), std::move(k));     // v: kdf_answer, or an error
//
// The store service owns the store (SQLite or PostgreSQL) and runs on one
// thread (PostgreSQL: a threaded worker component per pooled connection,
// below). It takes every
// job queued (up to 512), runs them in ONE transaction, commits, and only
// then answers (group commit: one fsync for many sessions' writes; an
// acknowledged post is on disk). A job that throws
// is answered with an error and the batch goes on; a batch SQLite rolled
// back by itself is answered with errors whole, and the jobs it did not
// reach run one transaction each. Failures are logged when an outage starts,
// then rate-limited with a count, and when it ends; sessions tell their
// clients to try again later. The process never dies of it.
//
// The KDF service computes PBKDF2 on a thread of its own, so a login never
// stalls a post. It also keeps the login throttle (login_throttle.hpp): every
// login's check passes through it one at a time, so the throttle needs no
// lock, and a locked name is refused without a KDF run. Both are bounded (their inboxes and the thread's queues);
// a stopped service answers what was queued (the store runs it first) and
// every later ask gets service_ended.
//
// For deterministic tests the same services run as ordinary components on
// the scheduler's thread (inline_store_service, inline_kdf_service): the same
// batch code, no threads.
#pragma once

#include <kamaelia/bbs/login_throttle.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/store.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/core/threaded_component.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia::bbs {

inline constexpr const char* store_service_name = "bbs.store";
inline constexpr const char* kdf_service_name = "bbs.kdf";

// The store's answer: the job ran and its transaction committed.
struct job_done {};

// Work on the store, run on its thread inside the batch's transaction. The
// job keeps its results in what it captures (shared with the asker, which
// reads them once answered).
struct store_job {
    std::function<void(store&)> run;
    using reply_type = job_done;
};

struct kdf_answer {
    bool match = false;  // verify: the password is right
    password_hash fresh; // rehash: the new hash
    duration locked{};   // a login refused unchecked: locked out this much longer
};
// A login's check: whose failures it counts (the name from the address), and
// whether the name is a user's (an unknown name is checked against a decoy
// and always counts as a failure).
struct login_attempt {
    std::string name;
    std::string address;
    bool known = false;
};
// Check `password` against `stored`, or (rehash_at > 0) make a fresh hash
// of it at that cost. With `login`, the throttle is consulted first (a
// locked key is answered with `locked` and not checked) and then told the
// outcome.
struct kdf_request {
    std::string password;
    password_hash stored;
    std::uint32_t rehash_at = 0;
    std::optional<login_attempt> login;
    using reply_type = kdf_answer;
};

namespace detail {
// The batch logic both store services share: answers every request.
class store_batch {
public:
    static constexpr std::size_t max_batch = 512;
    using request_type = kamaelia::request<store_job, job_done>;
    void run(store& db, std::vector<request_type>& batch);

private:
    void run_alone(store& db, request_type& r);
    std::vector<unsigned char> failed_;
    log_limiter outage_{"bbs: database unusable, sessions told to try again later", std::chrono::seconds(10)};
};
// The scheduler's clock as a clock_source (the manual one in tests). Safe
// from another thread: it only reads the clock the scheduler was made with.
class scheduler_clock final : public clock_source {
public:
    explicit scheduler_clock(const scheduler& s) noexcept : s_(&s) {}
    time_point now() const noexcept override;

private:
    const scheduler* s_;
};
// What both KDF services do with a request: the password check and the
// login throttle around it. Used by one thread at a time (the service's).
class kdf_work {
public:
    kdf_work(const scheduler& s, login_throttle::limits l) : clock_(s), throttle_(l, clock_) {}
    kdf_work(const kdf_work&) = delete; // the throttle holds a reference to clock_
    kdf_work& operator=(const kdf_work&) = delete;
    // Answers `r` (an error if OpenSSL fails).
    void answer(kamaelia::request<kdf_request, kdf_answer>& r);

private:
    scheduler_clock clock_;
    login_throttle throttle_;
    log_limiter log_{"bbs: password hashing failed, sessions told to try again later", std::chrono::seconds(10)};
};
} // namespace detail

// The store behind one database thread, or behind a pool of connections
// (PostgreSQL's `?pool=N`): then each connection is a threaded component of
// its own (a child of the service, activated with it), and the service's
// thread hands an idle one (it has answered its last batch) what is queued
// (up to max_batch) as its batch, out of that worker's outbox: a shared
// queue's behaviour, without one. With every worker busy the jobs wait on
// the service's thread, at most `connection_queue` of them; beyond that a
// job is answered at once with service_errc::full ("the board's store is
// busy": the session tells its user to try again later), counted by
// refused_busy() and logged rate-limited, so a stalled database holds a
// bounded number of sessions. A remote store (PostgreSQL) has a worker
// even alone, so that the bound holds while its connection stalls. A
// session asks one job at a time, so its jobs stay in order whatever
// connection runs them; what one committed, the next reads (READ
// COMMITTED) on any connection.
class store_service final : public threaded_component {
public:
    static constexpr std::size_t default_connection_queue = 1000;
    explicit store_service(std::unique_ptr<store> db, std::size_t connection_queue = default_connection_queue);
    // One connection a store (at least one).
    explicit store_service(std::vector<std::unique_ptr<store>> pool,
                           std::size_t connection_queue = default_connection_queue);
    ~store_service() override;
    std::string type_name() const override { return "bbs_store_service"; }
    // Jobs queued for the thread or running (thread-safe; a rough live figure).
    std::size_t pending();
    std::size_t connections() const noexcept { return size_; }
    // Jobs answered "store busy" (a pool's, or a remote store's).
    std::uint64_t refused_busy() const noexcept { return refused_.load(std::memory_order_relaxed); }
    // A pooled connection left idle this long checks its session (and makes
    // a new one if the server dropped it).
    static constexpr std::chrono::seconds probe_interval{2};

protected:
    void thread_main() override;
    void interrupt() noexcept override;

public:
    struct pool_load; // jobs handed to the workers, not yet answered (an atomic)

private:
    struct connection;
    std::unique_ptr<connection> single_; // one connection: run by this thread
    std::size_t size_ = 0;
    std::atomic<std::size_t> busy_{0};
    std::shared_ptr<pool_load> load_;       // a pool
    std::vector<std::string> worker_boxes_; // a pool: the outbox to each worker
    std::size_t bound_;                     // a pool: jobs that may wait for a worker
    std::atomic<std::uint64_t> refused_{0};
    std::atomic<std::size_t> waiting_{0}; // a pool: jobs waiting on this thread for a worker
    log_limiter busy_log_{"bbs: store busy, sessions told to try again later", std::chrono::seconds(10)};
};

// PBKDF2 and the login throttle on a thread of its own (the throttle's
// clock is `s`'s).
class kdf_service final : public threaded_component {
public:
    kdf_service(const scheduler& s, login_throttle::limits l);
    ~kdf_service() override;
    std::string type_name() const override { return "bbs_kdf_service"; }
    std::size_t pending() { return data_ready("inbox") + busy_.load(std::memory_order_relaxed); }

protected:
    void thread_main() override;

private:
    std::atomic<std::size_t> busy_{0};
    detail::kdf_work work_;
};

// The same two on the scheduler's thread (tests): deterministic, no threads.
class inline_store_service final : public component {
public:
    explicit inline_store_service(std::unique_ptr<store> db) : db_(std::move(db)) {}
    std::string type_name() const override { return "bbs_inline_store_service"; }
    // Direct access between scheduler steps (tests only).
    store& db() noexcept { return *db_; }

protected:
    task main() override;

private:
    std::unique_ptr<store> db_;
    detail::store_batch batch_;
};

class inline_kdf_service final : public component {
public:
    inline_kdf_service(const scheduler& s, login_throttle::limits l) : work_(s, l) {}
    std::string type_name() const override { return "bbs_inline_kdf_service"; }

protected:
    task main() override;

private:
    detail::kdf_work work_;
};

} // namespace kamaelia::bbs
