// The board's store and KDF services (bbs/service.hpp): group commit and
// answers after COMMIT, errors as temporary failures, an asker that leaves
// before its answer, a service that ends with requests pending. Inline on
// the deterministic fixture where they can be; [threads] where the thread
// is the point.
#include "embedded.hpp"
#include "telnet_support.hpp"

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/service.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>
#include <kamaelia/bbs/stages.hpp>
#include <kamaelia/core/deliver.hpp>
#include <kamaelia/core/service.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace bbs = kamaelia::bbs;
using kamaelia::test::contains;
using kamaelia::test::fixture;
using kamaelia::test::text;
using namespace std::chrono_literals;

namespace {

// A store in memory that counts commits and fails or blocks when told.
class probe_store final : public bbs::store {
public:
    bbs::sqlite_store inner{":memory:"};
    std::atomic<int> commits{0};
    std::atomic<bool> fail_posts{false};
    std::atomic<bool> fail_commit{false};
    std::atomic<bool> hold{false};    // post() waits while set ...
    std::atomic<bool> entered{false}; // ... and says it is waiting
    std::atomic<bool> interrupted{false};

    std::optional<bbs::user_record> find_user(std::string_view n) override { return inner.find_user(n); }
    bool add_user(std::string_view n, const bbs::password_hash& pw) override { return inner.add_user(n, pw); }
    bool set_password(std::string_view n, const bbs::password_hash& pw) override { return inner.set_password(n, pw); }
    void note_login(std::int64_t u, std::int64_t w) override { inner.note_login(u, w); }
    void note_logout(std::int64_t u, std::int64_t w) override { inner.note_logout(u, w); }
    std::size_t user_count() override { return inner.user_count(); }
    std::int64_t post(const bbs::message_record& m) override {
        if (fail_posts) throw bbs::store_error("disk full (test)");
        while (hold) {
            entered = true;
            if (interrupted) throw bbs::store_error("interrupted");
            std::this_thread::sleep_for(1ms);
        }
        return inner.post(m);
    }
    std::optional<std::int64_t> next_unread(std::int64_t u, std::int64_t a) override { return inner.next_unread(u, a); }
    std::optional<std::int64_t> next_read(std::int64_t u, std::int64_t a) override { return inner.next_read(u, a); }
    std::size_t unread_count(std::int64_t u) override { return inner.unread_count(u); }
    std::size_t read_count(std::int64_t u) override { return inner.read_count(u); }
    std::optional<bbs::message_record> read(std::int64_t u, std::int64_t m) override { return inner.read(u, m); }
    bbs::delete_result remove(std::int64_t u, std::int64_t m) override { return inner.remove(u, m); }
    std::size_t message_count() override { return inner.message_count(); }
    std::vector<bbs::message_record> all_messages() override { return inner.all_messages(); }
    std::vector<bbs::message_record> messages_after(std::int64_t a, std::size_t n) override {
        return inner.messages_after(a, n);
    }
    bbs::board_stats stats() override { return inner.stats(); }
    void for_each_user(const std::function<void(const bbs::user_record&)>& f) override { inner.for_each_user(f); }
    void for_each_read_mark(const std::function<void(std::int64_t, std::int64_t)>& f) override {
        inner.for_each_read_mark(f);
    }
    void begin() override { inner.begin(); }
    void commit() override {
        if (fail_commit) throw bbs::store_error("cannot commit (test)");
        inner.commit();
        ++commits;
    }
    void rollback() noexcept override { inner.rollback(); }
    bool in_transaction() const noexcept override { return inner.in_transaction(); }
    void interrupt() noexcept override { interrupted = true; }
    bool remote() const noexcept override { return remote_; }
    bool remote_ = false; // as PostgreSQL: the service gives it a worker even alone
};

struct outcome {
    bool answered = false;
    bool ok = false;
    kamaelia::service_errc code = kamaelia::service_errc::failed;
    int commits_before_answer = -1;
};

bbs::message_record a_post(int i) {
    bbs::message_record m;
    m.date = "now";
    m.from = "t";
    m.to = "all";
    m.subject = "post " + std::to_string(i);
    return m;
}

// Asks the store service to post once and notes what came back.
class poster : public kamaelia::component {
public:
    poster(std::string service, probe_store* probe, int i, std::shared_ptr<outcome> out)
        : service_(std::move(service)),
          probe_(probe),
          i_(i),
          out_(std::move(out)) {}
    std::string type_name() const override { return "poster"; }

protected:
    kamaelia::task main() override {
        bbs::store_job job{[i = i_](bbs::store& db) { db.post(a_post(i)); }};
        kamaelia::result<bbs::job_done> r = co_await kamaelia::ask(service_, std::move(job));
        out_->answered = true;
        out_->ok = static_cast<bool>(r);
        if (!r) out_->code = r.error().code;
        // The store belongs to the service: after a failure it may be gone.
        if (r) out_->commits_before_answer = probe_->commits;
    }

private:
    std::string service_;
    probe_store* probe_;
    int i_;
    std::shared_ptr<outcome> out_;
};

bbs::settings fast_settings() {
    bbs::settings s;
    s.kdf_iterations = 1;
    return s;
}

template <class Pred>
bool pump_until(fixture& f, Pred done) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        f.settle();
        std::this_thread::sleep_for(1ms);
    }
    f.settle();
    return done();
}

} // namespace

TEST_CASE("bbs store service: requests queued together share one commit, answered after it", "[bbs]") {
    fixture f;
    auto probe = std::make_unique<probe_store>();
    probe_store* p = probe.get();
    auto b = bbs::board::inline_board(f.sched, std::move(probe), fast_settings());
    std::vector<std::shared_ptr<outcome>> outs;
    for (int i = 0; i < 40; ++i) {
        outs.push_back(std::make_shared<outcome>());
        f.spawn<poster>(b->store_service(), p, i, outs.back());
    }
    f.settle();
    for (auto& o : outs) {
        CHECK(o->answered);
        CHECK(o->ok);
        CHECK(o->commits_before_answer == 1); // the answer came after COMMIT
    }
    CHECK(p->commits == 1); // forty posts, one transaction
    CHECK(b->inline_store().message_count() == 40);
}

TEST_CASE("bbs store service: a failing job or commit is an error answer, never a crash", "[bbs]") {
    fixture f;
    auto probe = std::make_unique<probe_store>();
    probe_store* p = probe.get();
    auto b = bbs::board::inline_board(f.sched, std::move(probe), fast_settings());

    p->fail_posts = true;
    auto first = std::make_shared<outcome>();
    f.spawn<poster>(b->store_service(), p, 1, first);
    f.settle();
    CHECK(first->answered);
    CHECK_FALSE(first->ok);
    CHECK(first->code == kamaelia::service_errc::failed);

    p->fail_posts = false;
    p->fail_commit = true;
    auto second = std::make_shared<outcome>();
    f.spawn<poster>(b->store_service(), p, 2, second);
    f.settle();
    CHECK(second->answered);
    CHECK_FALSE(second->ok); // not committed: not acknowledged
    CHECK(b->inline_store().message_count() == 0);

    p->fail_commit = false; // the outage ends: the service goes on
    auto third = std::make_shared<outcome>();
    f.spawn<poster>(b->store_service(), p, 3, third);
    f.settle();
    CHECK(third->ok);
    CHECK(b->inline_store().message_count() == 1);
}

TEST_CASE("bbs store errors are a temporary failure for the session, and the board goes on", "[bbs]") {
    fixture f;
    auto probe = std::make_unique<probe_store>();
    probe_store* p = probe.get();
    p->add_user("harry", bbs::hash_password("password", 1));
    auto b = bbs::board::inline_board(f.sched, std::move(probe), fast_settings());
    {
        kamaelia::test::embedded_connection c(f, bbs::protocol(b, kamaelia::connection_info{}));
        c.write("harry\r\npassword\r\n");
        CHECK(contains(text(c.read()), "main> "));
        p->fail_posts = true;
        c.write("p\r\nsubject\r\nbody\r\n.\r\n");
        std::string out = text(c.read());
        CHECK(contains(out, "error: the board could not do that just now; please try again later"));
        CHECK_FALSE(contains(out, "posted"));
    }
    f.settle();
    CHECK(b->sessions() == 0);
    p->fail_posts = false;
    kamaelia::test::embedded_connection again(f, bbs::protocol(b, kamaelia::connection_info{}));
    again.write("harry\r\npassword\r\np\r\nsubject\r\nbody\r\n.\r\n");
    CHECK(contains(text(again.read()), "Message 1 posted"));
}

TEST_CASE("bbs store service: an asker that ends before its answer leaves nothing behind", "[bbs][threads]") {
    fixture f;
    auto probe = std::make_unique<probe_store>();
    probe_store* p = probe.get();
    auto b = bbs::board::open(f.sched, std::move(probe), fast_settings());
    p->hold = true;
    auto out = std::make_shared<outcome>();
    auto& asker = f.spawn<poster>(b->store_service(), p, 1, out);
    REQUIRE(pump_until(f, [&] { return p->entered.load(); })); // the job runs, held
    asker.stop();
    f.settle();
    CHECK(asker.finished());
    p->hold = false; // the answer now goes to nobody
    REQUIRE(pump_until(f, [&] { return b->db_pending() == 0 && p->commits == 1; }));
    CHECK_FALSE(out->answered);
    CHECK(f.sched.services().replies().open_count() == 0);
}

TEST_CASE("bbs store service: a service that ends answers every pending request with an error", "[bbs][threads]") {
    fixture f;
    auto probe = std::make_unique<probe_store>();
    probe_store* p = probe.get();
    auto b = bbs::board::open(f.sched, std::move(probe), fast_settings());
    p->hold = true;
    std::vector<std::shared_ptr<outcome>> outs;
    outs.push_back(std::make_shared<outcome>());
    f.spawn<poster>(b->store_service(), p, 0, outs.back());
    REQUIRE(pump_until(f, [&] { return p->entered.load(); })); // the first is held in the store
    for (int i = 1; i < 4; ++i) {
        outs.push_back(std::make_shared<outcome>());
        f.spawn<poster>(b->store_service(), p, i, outs.back());
    }
    f.settle();
    const kamaelia::service_registry::service* sv = f.sched.services().find(b->store_service());
    REQUIRE(sv);
    sv->comp->stop(); // interrupt() reaches the held job; the thread is joined
    REQUIRE(pump_until(f, [&] {
        for (auto& o : outs)
            if (!o->answered) return false;
        return true;
    }));
    for (auto& o : outs) CHECK_FALSE(o->ok);
    CHECK(outs[0]->code == kamaelia::service_errc::failed);        // interrupted: not committed
    CHECK(outs[3]->code == kamaelia::service_errc::service_ended); // never run
    CHECK_FALSE(f.sched.services().find(b->store_service()));      // deregistered
    // Later asks fail at once, clearly.
    auto late = std::make_shared<outcome>();
    f.spawn<poster>(b->store_service(), p, 9, late);
    f.settle();
    CHECK(late->answered);
    CHECK(late->code == kamaelia::service_errc::unknown_service);
}

TEST_CASE("bbs kdf service: verifies and rehashes off the scheduler's thread", "[bbs][threads]") {
    fixture f;
    auto b = bbs::board::open(f.sched, std::make_unique<bbs::sqlite_store>(":memory:"), fast_settings());
    struct checker : kamaelia::component {
        std::string svc;
        std::shared_ptr<std::optional<bbs::kdf_answer>> verdict, fresh;
        checker(std::string s, std::shared_ptr<std::optional<bbs::kdf_answer>> v,
                std::shared_ptr<std::optional<bbs::kdf_answer>> h)
            : svc(std::move(s)),
              verdict(std::move(v)),
              fresh(std::move(h)) {}
        kamaelia::task main() override {
            bbs::kdf_request check;
            check.password = "pw";
            check.stored = bbs::hash_password("pw", 10);
            kamaelia::result<bbs::kdf_answer> r = co_await kamaelia::ask(svc, std::move(check));
            if (r) *verdict = *r;
            bbs::kdf_request rehash;
            rehash.password = "pw";
            rehash.rehash_at = 20;
            kamaelia::result<bbs::kdf_answer> h = co_await kamaelia::ask(svc, std::move(rehash));
            if (h) *fresh = *h;
        }
    };
    auto v = std::make_shared<std::optional<bbs::kdf_answer>>();
    auto h = std::make_shared<std::optional<bbs::kdf_answer>>();
    auto& c = f.spawn<checker>(b->kdf_service(), v, h);
    REQUIRE(pump_until(f, [&] { return c.finished(); }));
    REQUIRE(*v);
    CHECK((*v)->match);
    REQUIRE(*h);
    CHECK((*h)->fresh.iterations == 20);
    CHECK(bbs::verify_password("pw", (*h)->fresh));
}

namespace {
// A store service over a pool of two probe stores (the pool's code path
// without PostgreSQL), registered on the fixture's scheduler.
struct two_connections {
    fixture& f;
    probe_store* p0;
    probe_store* p1;
    bbs::store_service* svc;
    static constexpr const char* name = "test.store_pool";
    explicit two_connections(fixture& fx, std::size_t queue = bbs::store_service::default_connection_queue) : f(fx) {
        std::vector<std::unique_ptr<bbs::store>> pool;
        auto a = std::make_unique<probe_store>();
        auto b = std::make_unique<probe_store>();
        p0 = a.get();
        p1 = b.get();
        pool.push_back(std::move(a));
        pool.push_back(std::move(b));
        svc = &f.spawn<bbs::store_service>(std::move(pool), queue); // kept, finished, for the checks
        f.sched.services().register_service(name, *svc, "inbox");
    }
};

// Posters of numbered jobs to one service, and what each got back.
struct posting {
    fixture& f;
    std::string service;
    probe_store spare; // the posters' (the pool's stores go with the service)
    std::vector<std::shared_ptr<outcome>> outs;
    void post(int i) {
        outs.push_back(std::make_shared<outcome>());
        f.spawn<poster>(service, &spare, i, outs.back());
    }
    std::size_t answered() const {
        std::size_t n = 0;
        for (auto& o : outs) n += o->answered;
        return n;
    }
};

// Both connections held, each in a job of its own (0 and 1).
void stall_both(two_connections& pool, posting& p) {
    pool.p0->hold = true;
    pool.p1->hold = true;
    p.post(0);
    REQUIRE(pump_until(p.f, [&] { return pool.p0->entered.load(); })); // an idle connection takes it
    p.post(1);
    REQUIRE(pump_until(p.f, [&] { return pool.p1->entered.load(); })); // the other one, as the first is busy
}
} // namespace

TEST_CASE("bbs store pool: a connection held by a slow job gets no more, the other answers meanwhile",
          "[bbs][threads]") {
    fixture f;
    two_connections pool(f);
    CHECK(pool.svc->connections() == 2);
    CHECK(pool.svc->children().size() == 2); // a worker component a connection
    pool.p0->hold = true;                    // the first job goes to the first (least-loaded: both idle)
    auto first = std::make_shared<outcome>();
    f.spawn<poster>(two_connections::name, pool.p0, 0, first);
    REQUIRE(pump_until(f, [&] { return pool.p0->entered.load(); }));
    std::vector<std::shared_ptr<outcome>> outs;
    for (int i = 1; i <= 5; ++i) {
        outs.push_back(std::make_shared<outcome>());
        f.spawn<poster>(two_connections::name, pool.p1, i, outs.back());
    }
    REQUIRE(pump_until(f, [&] {
        for (auto& o : outs)
            if (!o->answered) return false;
        return true;
    }));
    for (auto& o : outs) CHECK(o->ok);
    CHECK(pool.p1->commits >= 1); // all on the free connection
    CHECK(pool.p0->commits == 0);
    CHECK_FALSE(first->answered);
    pool.p0->hold = false;
    REQUIRE(pump_until(f, [&] { return first->answered; }));
    CHECK(first->ok);
    REQUIRE(pump_until(f, [&] { return pool.svc->pending() == 0; }));
}

TEST_CASE("bbs store pool: shut down, it answers what was queued on every connection, then ends", "[bbs][threads]") {
    fixture f;
    two_connections pool(f);
    posting p{f, two_connections::name};
    stall_both(pool, p);
    for (int i = 2; i < 8; ++i) p.post(i); // both busy: these wait for a connection
    f.settle();
    kamaelia::deliver(*pool.svc, "control", kamaelia::message(kamaelia::shutdown_microprocess()));
    f.settle();
    pool.p0->hold = false;
    pool.p1->hold = false;
    REQUIRE(pump_until(f, [&] { return pool.svc->finished(); }));
    for (auto& o : p.outs) {
        CHECK(o->answered);
        CHECK(o->ok);
    }
}

TEST_CASE("bbs store pool: with every connection stalled, at most connection_queue jobs wait, the rest are told "
          "the store is busy",
          "[bbs][threads][hostile]") {
    fixture f;
    two_connections pool(f, 3);
    posting p{f, two_connections::name};
    stall_both(pool, p);
    for (int i = 2; i < 10; ++i) p.post(i); // both stalled: three wait, five are refused
    REQUIRE(pump_until(f, [&] { return p.answered() == 5; }));
    for (auto& o : p.outs)
        if (o->answered) {
            CHECK_FALSE(o->ok);
            CHECK(o->code == kamaelia::service_errc::full);
        }
    CHECK(pool.svc->refused_busy() == 5);
    CHECK(pump_until(f, [&] { return pool.svc->pending() == 5; })); // two running, three waiting

    // The database resumes: every job that waited is run and acknowledged.
    pool.p0->hold = false;
    pool.p1->hold = false;
    REQUIRE(pump_until(f, [&] { return p.answered() == 10; }));
    std::size_t ok = 0;
    for (auto& o : p.outs) ok += o->ok;
    CHECK(ok == 5);
    CHECK(pool.svc->refused_busy() == 5);
    REQUIRE(pump_until(f, [&] { return pool.svc->pending() == 0; }));
}

TEST_CASE("bbs store service: a remote store alone gets a worker and the bound", "[bbs][threads][hostile]") {
    fixture f;
    auto remote = std::make_unique<probe_store>();
    remote->remote_ = true;
    probe_store* st = remote.get();
    auto& svc = f.spawn<bbs::store_service>(std::move(remote), 2);
    f.sched.services().register_service("test.remote_store", svc, "inbox");
    CHECK(svc.children().size() == 1);
    st->hold = true;
    posting p{f, "test.remote_store"};
    p.post(0);
    REQUIRE(pump_until(f, [&] { return st->entered.load(); }));
    for (int i = 1; i < 6; ++i) p.post(i);
    REQUIRE(pump_until(f, [&] { return svc.refused_busy() == 3; })); // one running, two waiting
    st->hold = false;
    REQUIRE(pump_until(f, [&] { return p.answered() == 6; }));
    std::size_t ok = 0;
    for (auto& o : p.outs) ok += o->ok;
    CHECK(ok == 3);
}
