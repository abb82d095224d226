// The engine end to end on a real SQLite file and a real scheduler: the
// timing rules through the store with an injected clock, whitelists,
// restart keeping passed triplets, schema migration, locked and corrupt
// databases answering tempfail (never an accept).
#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/greylist/service.hpp>
#include <kamaelia/greylist/settings.hpp>

#include <kamaelia/core/deliver.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/sqlite_store.hpp>

#include <kamaelia/core/scheduler.hpp>

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

using namespace kamaelia;
using namespace kamaelia::greylist;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        static std::atomic<int> n{0};
        path = fs::temp_directory_path() / ("kamaelia-grey-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string db() const { return (path / "greylist.sqlite").string(); }
};

struct fake_time {
    std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(1'700'000'000);
    std::function<std::chrono::system_clock::time_point()> clock() const {
        auto n = now;
        return [n] { return std::chrono::system_clock::time_point(std::chrono::seconds(n->load())); };
    }
    void advance(std::int64_t s) { *now += s; }
};

greylist::request req(std::string client, std::string sender, std::string rcpt) {
    greylist::request r;
    r.client_address = std::move(client);
    r.sender = std::move(sender);
    r.recipient = std::move(rcpt);
    return r;
}

// The greylist service running on `s` (registered as "greylist"); going
// out of scope stops it and joins its database thread.
struct running_service {
    scheduler& s;
    service* svc;
    running_service(scheduler& sc, const settings& cfg) : s(sc), svc(&start_service(sc, cfg)) {}
    ~running_service() {
        svc->stop();
        s.run_once(); // reaped: the thread joined, the name free again
    }
};

std::unique_ptr<running_service> open_engine(scheduler& s, const settings& cfg) {
    return std::make_unique<running_service>(s, cfg);
}

struct one_ask : component {
    greylist::request r;
    std::optional<result<decision>> got;
    task main() override {
        check question{r};
        auto x = co_await kamaelia::ask(service_name, std::move(question));
        got.emplace(std::move(x));
    }
};

// Asks and runs the scheduler until the answer arrives (liveness deadline only).
decision ask(scheduler& s, running_service&, const greylist::request& r) {
    one_ask a;
    a.r = r;
    a.activate(s);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!a.got && std::chrono::steady_clock::now() < deadline) {
        if (!s.run_once()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(a.got);
    s.run_once();
    REQUIRE(a.got->ok()); // the service answers; store failures are a tempfail decision
    return **a.got;
}

settings base(const temp_dir& d, const fake_time& t) {
    settings s;
    s.database = d.db();
    s.clock = t.clock();
    return s;
}

} // namespace

TEST_CASE("engine: postgrey's timings through the store", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    auto x = ask(s, *e, r);
    CHECK(x.what == verdict::greylisted);
    CHECK(x.reason == "new");
    CHECK(x.wait.count() == 300);
    t.advance(60);
    x = ask(s, *e, r);
    CHECK(x.what == verdict::greylisted);
    CHECK(x.wait.count() == 240);
    t.advance(241); // +301, from another address of the same /24
    x = ask(s, *e, req("203.0.114.99", "A@Example.org", "U@example.net"));
    CHECK(x.what == verdict::pass);
    CHECK(x.first_pass);
    CHECK(x.delayed.count() == 301);
    t.advance(99);
    x = ask(s, *e, r);
    CHECK(x.what == verdict::pass);
    CHECK_FALSE(x.first_pass);
    // another /24 is another triplet
    x = ask(s, *e, req("203.0.115.7", "a@example.org", "u@example.net"));
    CHECK(x.what == verdict::greylisted);
}

TEST_CASE("engine: IPv6 clients are grouped by /64", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    CHECK(ask(s, *e, req("2001:db8:1:3::25", "a@example.org", "u@example.net")).what == verdict::greylisted);
    t.advance(301);
    CHECK(ask(s, *e, req("2001:db8:1:3:ffff::1", "a@example.org", "u@example.net")).what == verdict::pass);
}

TEST_CASE("engine: whitelists and the default postmaster/abuse recipients", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    cfg.whitelist_clients = {"10.0.0.0/8", "mx.example.com"};
    cfg.whitelist_sender_domains = {"friend.example"};
    cfg.whitelist_recipients = {"open@example.net"};
    auto e = open_engine(s, cfg);
    CHECK(ask(s, *e, req("198.51.100.1", "a@example.org", "Postmaster@example.net")).what == verdict::whitelisted);
    CHECK(ask(s, *e, req("198.51.100.1", "a@example.org", "abuse@x.example")).what == verdict::whitelisted);
    CHECK(ask(s, *e, req("10.9.8.7", "a@example.org", "u@example.net")).what == verdict::whitelisted);
    auto r = req("198.51.100.1", "a@example.org", "u@example.net");
    r.client_name = "out.MX.example.com";
    CHECK(ask(s, *e, r).what == verdict::whitelisted);
    r.client_name = "notmx.example.com";
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    CHECK(ask(s, *e, req("198.51.100.1", "x@mail.friend.example", "u@example.net")).what == verdict::whitelisted);
    CHECK(ask(s, *e, req("198.51.100.1", "x@example.org", "open@example.net")).what == verdict::whitelisted);
}

TEST_CASE("engine: a client is auto-whitelisted after N passes, one counted an hour", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    cfg.auto_whitelist_clients = 2;
    auto e = open_engine(s, cfg);
    auto pass_one = [&](const std::string& rcpt) {
        CHECK(ask(s, *e, req("192.0.2.1", "a@example.org", rcpt)).what == verdict::greylisted);
        t.advance(300);
        CHECK(ask(s, *e, req("192.0.2.1", "a@example.org", rcpt)).what == verdict::pass);
    };
    pass_one("r1@example.net");
    pass_one("r2@example.net"); // within the hour: not counted
    t.advance(3600);
    pass_one("r3@example.net");
    auto x = ask(s, *e, req("192.0.2.1", "new@example.org", "r4@example.net"));
    CHECK(x.what == verdict::whitelisted);
    CHECK(x.reason == "client auto-whitelisted");
    // the full address is the key, not the network
    CHECK(ask(s, *e, req("192.0.2.2", "new@example.org", "r4@example.net")).what == verdict::greylisted);
}

TEST_CASE("engine: a restart with the same database keeps passed triplets", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    {
        auto e = open_engine(s, base(d, t));
        ask(s, *e, r);
        t.advance(300);
        CHECK(ask(s, *e, r).what == verdict::pass);
    }
    t.advance(3600);
    auto e = open_engine(s, base(d, t));
    auto x = ask(s, *e, r);
    CHECK(x.what == verdict::pass);
    CHECK_FALSE(x.first_pass);
}

TEST_CASE("engine: the policy_test_time of a request overrides the clock", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    r.test_time = 1'800'000'000;
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    r.test_time += 301;
    CHECK(ask(s, *e, r).what == verdict::pass);
}

TEST_CASE("engine: a locked database answers tempfail and recovers", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    ask(s, *e, r);
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(d.db().c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    t.advance(301);
    auto x = ask(s, *e, r);
    CHECK(x.what == verdict::tempfail);
    CHECK_THAT(x.reason, Catch::Contains("locked"));
    CHECK_THAT(x.reason, Catch::Contains(d.db()));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    CHECK(ask(s, *e, r).what == verdict::pass);
}

TEST_CASE("engine: a corrupt or foreign file is a clear store_error at open", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    {
        std::ofstream f(d.db(), std::ios::binary);
        for (int i = 0; i < 4096; ++i) f << "this is not a database ";
    }
    try {
        open_engine(s, base(d, t));
        FAIL("opened a corrupt file");
    } catch (const store_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("corrupt"));
        CHECK_THAT(e.what(), Catch::Contains(d.db()));
    }
}

TEST_CASE("engine: a database damaged while running answers tempfail, never pass", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    auto e = open_engine(s, cfg);
    // fill a few pages so the b-tree has interior pages
    for (int i = 0; i < 300; ++i)
        ask(s, *e, req("203.0.114.7", "a" + std::to_string(i) + "@example.org", "u@example.net"));
    e.reset();
    {
        // overwrite everything after the header page with garbage
        std::fstream f(d.db(), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(4096);
        std::string junk(64 * 1024, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    fs::remove(d.db() + "-wal");
    fs::remove(d.db() + "-shm");
    std::unique_ptr<running_service> e2;
    try {
        e2 = open_engine(s, cfg);
    } catch (const store_error& err) {
        CHECK_THAT(err.what(), Catch::Contains("corrupt"));
        return;
    }
    t.advance(301);
    auto x = ask(s, *e2, req("203.0.114.7", "a1@example.org", "u@example.net"));
    // The start-up check (a commit, PRAGMA quick_check) passed, so the junk
    // lies outside the live b-tree: the row is simply gone. Never a pass.
    CHECK(x.what != verdict::pass);
    if (x.what == verdict::tempfail) CHECK_THAT(x.reason, Catch::Contains("corrupt"));
}

TEST_CASE("store: a version-1 database is migrated and keeps its rows", "[grey]") {
    temp_dir d;
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(d.db().c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db,
                             "CREATE TABLE triplets(net TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,"
                             " first INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(net, sender, recipient))"
                             " WITHOUT ROWID;"
                             "INSERT INTO triplets VALUES('203.0.114.0/24','a@example.org','u@example.net',100,500);"
                             "PRAGMA user_version=1;",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    sqlite_store::options o;
    o.path = d.db();
    sqlite_store st(o);
    auto row = st.find({"203.0.114.0/24", "a@example.org", "u@example.net"});
    REQUIRE(row);
    CHECK(*row == triplet_row{100, 500});
    CHECK(st.rows() == 1);
    st.begin();
    st.save_client("192.0.2.1", {3, 600}); // the table version 2 added
    st.commit();
    CHECK(st.find_client("192.0.2.1") == client_row{3, 600});
    CHECK(st.stats({}, 5).schema_version == 2);
}

TEST_CASE("store: a database from a newer version is refused", "[grey]") {
    temp_dir d;
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(d.db().c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99;", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    sqlite_store::options o;
    o.path = d.db();
    CHECK_THROWS_WITH(sqlite_store(o), Catch::Contains("newer"));
}

TEST_CASE("store: the row cap evicts the least recently seen rows", "[grey]") {
    temp_dir d;
    sqlite_store::options o;
    o.path = d.db();
    o.max_rows = 100;
    sqlite_store st(o);
    st.begin();
    for (int i = 0; i < 250; ++i) st.save({"n", "s" + std::to_string(i), "r"}, {i, i}, false);
    st.commit();
    CHECK(st.rows() <= 100);
    CHECK(st.evicted() >= 150);
    CHECK(st.find({"n", "s249", "r"}));
    CHECK_FALSE(st.find({"n", "s0", "r"}));
    CHECK(st.stats({}, 5).triplets == st.rows());
}

TEST_CASE("store: expiry goes in batches and keeps live rows", "[grey]") {
    temp_dir d;
    sqlite_store::options o;
    o.path = d.db();
    sqlite_store st(o);
    timing t;
    const std::int64_t now = 10'000'000;
    st.begin();
    for (int i = 0; i < 30; ++i) st.save({"n", "old" + std::to_string(i), "r"}, {0, 1}, false); // unpassed, stale
    st.save({"n", "passed", "r"}, {now - 1000, now - 500}, false);                              // live
    st.save({"n", "fresh", "r"}, {now - 10, now - 10}, false);                                  // live
    st.save({"n", "gone", "r"}, {now - t.max_age - 900, now - t.max_age - 1}, false);           // passed, too old
    st.save_client("192.0.2.9", {7, now - t.max_age - 1});
    st.commit();
    std::size_t total = 0;
    for (int round = 0; round < 10; ++round) {
        st.begin();
        std::size_t n = st.expire(now, t, 8);
        st.commit();
        CHECK(n <= 8);
        total += n;
        if (n == 0) break;
    }
    CHECK(total == 32);
    CHECK(st.rows() == 2);
    CHECK(st.find({"n", "passed", "r"}));
    CHECK(st.find({"n", "fresh", "r"}));
    CHECK_FALSE(st.find_client("192.0.2.9"));
}

TEST_CASE("store: --sync full is synchronous=FULL, normal is NORMAL, both WAL", "[grey]") {
    temp_dir d;
    for (bool full : {false, true}) {
        sqlite_store::options o;
        o.path = d.db();
        o.sync_full = full;
        sqlite_store st(o);
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(d.db().c_str(), &db) == SQLITE_OK);
        sqlite3_stmt* s = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(s) == SQLITE_ROW);
        CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "wal");
        sqlite3_finalize(s);
        sqlite3_close(db);
        CHECK(st.synchronous() == (full ? 2 : 1));
    }
}

TEST_CASE("engine: old rows are expired in small batches on the database thread", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    cfg.expire_interval = std::chrono::milliseconds(100);
    cfg.expire_batch = 7;
    auto e = open_engine(s, cfg);
    for (int i = 0; i < 30; ++i)
        ask(s, *e, req("203.0.114.7", "old" + std::to_string(i) + "x@example.org", "u@example.net"));
    t.advance(3 * 24 * 3600); // past the retry window: the unpassed rows may go
    ask(s, *e, req("203.0.114.7", "fresh@example.org", "u@example.net"));
    auto count = [&] {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(d.db().c_str(), &db) == SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM triplets", -1, &st, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        int n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return n;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count() > 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(count() == 1); // only the fresh one is left
    // and the engine still answers from the same store
    CHECK(ask(s, *e, req("203.0.114.7", "fresh@example.org", "u@example.net")).what == verdict::greylisted);
}

TEST_CASE("engine: extreme times never overflow (issue 14, defect 6, UBSan)", "[grey][threads][hostile]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    r.test_time = INT64_MAX; // a poisoned first sighting
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    r.test_time = 0; // back to the clock: the row from the "future" starts over, no overflow
    auto x = ask(s, *e, r);
    CHECK(x.what == verdict::greylisted);
    CHECK(x.wait.count() >= 0);
    CHECK(x.wait.count() <= 300);
    t.advance(300);
    CHECK(ask(s, *e, r).what == verdict::pass);
    r.test_time = 1;
    ask(s, *e, r); // the far past: a forgotten row, no overflow either
    // the rules alone, at the limits
    timing tm;
    for (std::int64_t first : {INT64_MIN, std::int64_t{-1}, std::int64_t{0}, INT64_MAX})
        for (std::int64_t now : {INT64_MIN, std::int64_t{0}, std::int64_t{1'700'000'000}, INT64_MAX}) {
            auto o = judge_triplet(triplet_row{first, first}, now, tm);
            CHECK(o.answer.wait.count() >= 0);
            (void)expired(triplet_row{first, now}, now, tm);
            (void)bump_client(client_row{INT64_MAX, first}, now, tm);
        }
}

TEST_CASE("engine: a database that fails while running answers tempfail and the service lives on (defect 1)",
          "[grey][threads][hostile]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto e = open_engine(s, base(d, t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    ask(s, *e, r);
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(d.db().c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    for (int i = 0; i < 20; ++i) { // an outage of many requests: each a tempfail, never a crash
        auto x = ask(s, *e, req("203.0.114.7", "b" + std::to_string(i) + "@example.org", "u@example.net"));
        CHECK(x.what == verdict::tempfail);
    }
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    CHECK_FALSE(e->svc->failed());
}

TEST_CASE("engine: an unwritable database is refused at start with a clear message (defect 1)",
          "[grey][threads][hostile]") {
    temp_dir d;
    fake_time t;
    {
        scheduler s;
        auto e = open_engine(s, base(d, t)); // creates it
    }
    std::string cmd = "chattr +i '" + d.db() + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
        WARN("chattr +i is not supported here (not root, or the file system has no immutable flag): skipped");
        return;
    }
    scheduler s;
    bool refused = false;
    try {
        open_engine(s, base(d, t));
    } catch (const store_error& err) {
        refused = true;
        CHECK_THAT(err.what(), Catch::Contains(d.db()));
        CHECK_THAT(err.what(), Catch::Contains("not writable"));
    }
    std::system(("chattr -i '" + d.db() + "'").c_str());
    CHECK(refused);
}

TEST_CASE("greylist store_health: the database thread's finding, read from another thread without waiting",
          "[grey][threads]") {
    store_health h;
    CHECK(h.error().empty());
    h.set("database is locked");
    CHECK(h.error() == "database is locked");
    h.set({});
    CHECK(h.error().empty());

    // A writer flipping the finding while a reader polls: every answer is one
    // of the values written, never a torn or invented one (TSan checks the rest).
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (int i = 0; i < 2000; ++i) h.set(i % 2 ? "store down " + std::to_string(i % 7) : std::string());
        done = true;
    });
    std::size_t reads = 0, bad = 0;
    while (!done || reads < 100) {
        std::string e = h.error();
        if (!e.empty() && e.rfind("store down ", 0) != 0) ++bad;
        ++reads;
    }
    writer.join();
    CHECK(bad == 0);
    CHECK(h.error() == "store down 4"); // the last write: i = 1999, 1999 % 7 == 4
}

namespace {

// A remote store whose server has stopped answering: every transaction
// waits in begin() until the test opens the gate (or the service is
// stopped: interrupt()). It knows no rows, so what it decides is greylisted.
struct stall_gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    std::size_t waiting = 0; // transactions begun and stuck
    void release() {
        std::lock_guard lk(m);
        open = true;
        cv.notify_all();
    }
    std::size_t stuck() {
        std::lock_guard lk(m);
        return waiting;
    }
};

struct stalled_store final : store {
    std::shared_ptr<stall_gate> g;
    explicit stalled_store(std::shared_ptr<stall_gate> gate) : g(std::move(gate)) {}
    bool remote() const noexcept override { return true; }
    void begin() override {
        std::unique_lock lk(g->m);
        ++g->waiting;
        g->cv.wait(lk, [&] { return g->open; });
        --g->waiting;
    }
    void commit() override {}
    void rollback() noexcept override {}
    std::optional<triplet_row> find(const triplet&) override { return std::nullopt; }
    void save(const triplet&, const triplet_row&, bool) override {}
    std::optional<client_row> find_client(const std::string&) override { return std::nullopt; }
    void save_client(const std::string&, const client_row&) override {}
    std::size_t expire(std::int64_t, const timing&, std::size_t) override { return 0; }
    store_stats stats(const timing&, unsigned) override { return {}; }
    void for_each(const std::function<void(const triplet&, const triplet_row&)>&) override {}
    void for_each_client(const std::function<void(const std::string&, const client_row&)>&) override {}
    void interrupt() noexcept override { g->release(); }
};

// Runs `s` until `done()` (a liveness deadline only).
template <class Pred>
bool pump_until(scheduler& s, Pred done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done() && std::chrono::steady_clock::now() < deadline)
        if (!s.run_once()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return done();
}

// The service over `connections` stalled stores behind `gate`, each
// holding `queue` requests, registered as "greylist" on `s`.
service& start_stalled(scheduler& s, const fake_time& t, const std::shared_ptr<stall_gate>& gate,
                       std::size_t connections, std::size_t queue, settings cfg = {}) {
    cfg.clock = t.clock();
    cfg.connection_queue = queue;
    std::vector<std::unique_ptr<store>> stores;
    for (std::size_t i = 0; i < connections; ++i) stores.push_back(std::make_unique<stalled_store>(gate));
    auto svc = std::make_unique<service>(cfg, std::move(stores));
    service& ref = *svc;
    s.spawn(std::move(svc));
    s.services().register_service(service_name, ref, "inbox");
    return ref;
}

// `n` askers at once, with distinct triplets from `clients` in turn.
std::vector<std::unique_ptr<one_ask>> ask_many(scheduler& s, std::size_t n, const std::vector<std::string>& clients,
                                               const std::string& tag) {
    std::vector<std::unique_ptr<one_ask>> asks;
    for (std::size_t i = 0; i < n; ++i) {
        auto a = std::make_unique<one_ask>();
        a->r = req(clients[i % clients.size()], tag + std::to_string(i) + "@example.org", "u@example.net");
        a->activate(s);
        asks.push_back(std::move(a));
    }
    return asks;
}

std::size_t answered(const std::vector<std::unique_ptr<one_ask>>& asks) {
    std::size_t n = 0;
    for (const auto& a : asks) n += a->got.has_value();
    return n;
}

bool busy(const one_ask& a) {
    return a.got && a.got->ok() && (*a.got)->what == verdict::tempfail && (*a.got)->reason == "greylist store busy";
}

} // namespace

TEST_CASE("engine: a stalled remote store holds at most connection_queue requests, the rest are refused busy",
          "[grey][threads][hostile]") {
    fake_time t;
    scheduler s;
    auto gate = std::make_shared<stall_gate>();
    service& svc = start_stalled(s, t, gate, 1, 5);

    auto asks = ask_many(s, 12, {"203.0.114.7", "198.51.100.9", "2001:db8::1"}, "first");
    // The store never answers: five requests are held, seven answered busy at once.
    REQUIRE(pump_until(s, [&] { return answered(asks) == 7 && gate->stuck() == 1; }));
    std::size_t refused = 0;
    for (const auto& a : asks) refused += busy(*a);
    CHECK(refused == 7);
    CHECK(svc.refused_busy() == 7);
    CHECK(svc.decisions() == 0);

    // The store resumes: every held request is decided (a first sighting:
    // greylisted), and the connection has room again.
    gate->release();
    REQUIRE(pump_until(s, [&] { return answered(asks) == 12; }));
    std::size_t decided = 0;
    for (const auto& a : asks)
        if (!busy(*a)) {
            REQUIRE(a->got->ok());
            CHECK((*a->got)->what == verdict::greylisted);
            ++decided;
        }
    CHECK(decided == 5);
    auto later = ask_many(s, 5, {"192.0.2.44"}, "later");
    REQUIRE(pump_until(s, [&] { return answered(later) == 5; }));
    for (const auto& a : later) CHECK_FALSE(busy(*a));
    CHECK(svc.refused_busy() == 7);
    svc.stop();
    s.run_once();
}

TEST_CASE("engine: whitelisted requests are answered while the store is stalled and its queue full",
          "[grey][threads][hostile]") {
    fake_time t;
    scheduler s;
    auto gate = std::make_shared<stall_gate>();
    settings cfg;
    cfg.whitelist_clients = {"192.0.2.0/24"};
    cfg.whitelist_sender_domains = {"trusted.example"};
    for (std::size_t connections : {std::size_t(1), std::size_t(2)}) {
        DYNAMIC_SECTION("a pool of " << connections) {
            service& svc = start_stalled(s, t, gate, connections, 2, cfg);
            // Fill every connection's queue: the store answers nothing.
            std::vector<std::string> clients;
            for (int i = 1; i <= 16; ++i) clients.push_back("198.51.100." + std::to_string(i));
            auto held = ask_many(s, 30, clients, "held");
            REQUIRE(
                pump_until(s, [&] { return answered(held) == 30 - 2 * connections && gate->stuck() == connections; }));
            std::uint64_t refused = svc.refused_busy();
            CHECK(refused == 30 - 2 * connections);

            // Decided by the whitelists alone: a listed client, a listed
            // sender domain, postmaster@ (a default recipient entry). None
            // waits behind the stalled store or is refused busy.
            std::vector<std::unique_ptr<one_ask>> listed;
            for (int i = 0; i < 3; ++i) {
                auto a = std::make_unique<one_ask>();
                a->r = i == 0   ? req("192.0.2.77", "x@example.org", "u@example.net")
                       : i == 1 ? req("198.51.100.3", "x@trusted.example", "u@example.net")
                                : req("198.51.100.4", "x@example.org", "postmaster@example.net");
                a->activate(s);
                listed.push_back(std::move(a));
            }
            REQUIRE(pump_until(s, [&] { return answered(listed) == listed.size(); }));
            for (const auto& a : listed) {
                REQUIRE(a->got->ok());
                CHECK((*a->got)->what == verdict::whitelisted);
            }
            CHECK(svc.refused_busy() == refused);
            CHECK(answered(held) == 30 - 2 * connections); // the held ones still wait

            gate->release();
            REQUIRE(pump_until(s, [&] { return answered(held) == 30; }));
            svc.stop();
            s.run_once();
        }
    }
}

TEST_CASE("engine: the bound is per connection of a pool", "[grey][threads][hostile]") {
    fake_time t;
    scheduler s;
    auto gate = std::make_shared<stall_gate>();
    service& svc = start_stalled(s, t, gate, 2, 3);

    // Clients enough that both connections get some: each holds at most
    // three, so at most six wait; every other request is refused busy.
    std::vector<std::string> clients;
    for (int i = 1; i <= 16; ++i) clients.push_back("198.51.100." + std::to_string(i));
    auto asks = ask_many(s, 40, clients, "pool");
    REQUIRE(pump_until(s, [&] { return answered(asks) >= 34 && gate->stuck() == 2; }));
    std::size_t refused = 0;
    for (const auto& a : asks) refused += busy(*a);
    CHECK(refused == answered(asks));
    CHECK(svc.refused_busy() == refused);
    CHECK(40 - refused == 6); // both connections full: three each

    gate->release();
    REQUIRE(pump_until(s, [&] { return answered(asks) == 40; }));
    CHECK(svc.refused_busy() == refused);
    for (const auto& a : asks)
        if (!busy(*a)) CHECK((*a->got)->what == verdict::greylisted);
    svc.stop();
    s.run_once();
}

// ---- the pass memory (greylist/pass_memory.hpp) ---------------------------------

namespace {

pass_memory::options memory_options(const fake_time& t, bool per_client = false) {
    pass_memory::options o;
    o.ttl = std::chrono::seconds(60);
    o.per_client = per_client;
    o.clock = t.clock();
    return o;
}

triplet key_of(const greylist::request& r) { return make_triplet(r.client_address, r.sender, r.recipient); }

} // namespace

TEST_CASE("pass memory: a pass is recalled until its row would need a write or the ttl ends", "[grey]") {
    fake_time t;
    pass_memory m(memory_options(t));
    auto r = req("203.0.114.7", "A@Example.org", "u@example.net");
    CHECK_FALSE(m.recall(r));
    std::int64_t now = t.now->load();
    m.remember(key_of(r), "", now - 3590, now, 3600); // stored 3,590 s ago: a write due in 10 s
    auto d = m.recall(req("203.0.114.99", "a@example.org", "U@example.net")); // same /24, same normalised triplet
    REQUIRE(d);
    CHECK(d->what == verdict::pass);
    CHECK(d->reason == "pass");
    CHECK_FALSE(d->first_pass);
    CHECK(m.hits() == 1);
    CHECK_FALSE(m.recall(req("203.0.115.7", "a@example.org", "u@example.net"))); // another network
    t.advance(10);
    CHECK_FALSE(m.recall(r)); // the row's refresh is due: the service must write it
    CHECK(m.size() == 0);     // and the stale entry is gone

    now = t.now->load();
    m.remember(key_of(r), "", now, now, 3600);
    t.advance(59);
    CHECK(m.recall(r));
    t.advance(1);
    CHECK_FALSE(m.recall(r)); // the ttl: what other hosts may have changed is looked at again
}

TEST_CASE("pass memory: never for a test time, a clock that went back, or when off", "[grey]") {
    fake_time t;
    pass_memory m(memory_options(t));
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    std::int64_t now = t.now->load();
    m.remember(key_of(r), "", now, now, 3600);
    auto timed = r;
    timed.test_time = now;
    CHECK_FALSE(m.recall(timed));
    t.advance(-5);
    CHECK_FALSE(m.recall(r)); // before the stored stamp: the service judges it
    t.advance(5);
    CHECK(m.recall(r));
    // remembered at a time before the stored stamp, or with nothing left: not kept
    m.clear();
    m.remember(key_of(r), "", now + 10, now, 3600);
    m.remember(key_of(r), "", now - 3600, now, 3600);
    CHECK(m.size() == 0);

    auto off = memory_options(t);
    off.ttl = std::chrono::seconds(0);
    pass_memory none(off);
    none.remember(key_of(r), "", now, now, 3600);
    CHECK_FALSE(none.recall(r));
    CHECK(none.size() == 0);
}

TEST_CASE("pass memory: a client's entries go when its row changes, bounded by its capacity", "[grey]") {
    fake_time t;
    pass_memory m(memory_options(t, true));
    std::int64_t now = t.now->load();
    auto a = req("192.0.2.1", "a@example.org", "u@example.net");
    auto b = req("192.0.2.2", "a@example.org", "u@example.net"); // same network, another client
    m.remember(key_of(a), canonical_address(a.client_address), now, now, 3600);
    CHECK(m.recall(a));
    CHECK_FALSE(m.recall(b)); // its own auto-whitelist row may say otherwise
    m.remember(key_of(b), canonical_address(b.client_address), now, now, 3600);
    m.forget_client(canonical_address(a.client_address));
    CHECK_FALSE(m.recall(a));
    CHECK(m.recall(b));
    CHECK(m.size() == 1);

    auto small = memory_options(t);
    small.capacity = 4;
    pass_memory s(small);
    for (int i = 0; i < 100; ++i) {
        auto x = req("198.51.100.1", "s" + std::to_string(i) + "@example.org", "u@example.net");
        s.remember(key_of(x), "", now, now, 3600);
        CHECK(s.size() <= 4);
        CHECK(s.recall(x)); // the newest is always kept
    }
}

TEST_CASE("pass memory threads: askers on several threads while connections remember and forget", "[grey][threads]") {
    fake_time t;
    pass_memory m(memory_options(t, true));
    std::int64_t now = t.now->load();
    std::atomic<bool> go{true};
    std::atomic<std::uint64_t> found{0}, wrong{0}; // Catch's CHECK is for the test's own thread only
    std::vector<std::thread> askers;
    for (int k = 0; k < 3; ++k)
        askers.emplace_back([&, k] {
            for (int i = 0; i < 20000 && go; ++i) {
                auto x = req("192.0.2." + std::to_string(i % 7), "s" + std::to_string((i + k) % 50) + "@example.org",
                             "u@example.net");
                if (auto d = m.recall(x)) {
                    if (d->what != verdict::pass) ++wrong;
                    ++found;
                }
            }
        });
    for (int i = 0; i < 20000; ++i) {
        auto x = req("192.0.2." + std::to_string(i % 7), "s" + std::to_string(i % 50) + "@example.org", "u@example.net");
        m.remember(key_of(x), canonical_address(x.client_address), now, now, 3600);
        if (i % 97 == 0) m.forget_client(canonical_address(x.client_address));
        if (i % 1001 == 0) m.clear();
    }
    go = false;
    for (auto& th : askers) th.join();
    CHECK(wrong == 0);
    CHECK(m.size() <= 7 * 50);
    CHECK(m.hits() == found.load());
}

TEST_CASE("engine: a committed pass goes to the pass memory, a failed batch and a reload empty it", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    cfg.whitelist_clients_file = (d.path / "clients").string();
    { std::ofstream(cfg.whitelist_clients_file) << "# none yet\n"; }
    auto e = open_engine(s, cfg);
    auto m = e->svc->memory();
    REQUIRE(m);
    auto r = req("203.0.114.7", "a@example.org", "u@example.net");
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    CHECK_FALSE(m->recall(r)); // greylisted: nothing to remember
    t.advance(300);
    auto first = ask(s, *e, r);
    CHECK(first.what == verdict::pass);
    CHECK(first.first_pass);
    auto again = m->recall(r);
    REQUIRE(again); // what the service would answer now, without asking it
    auto asked = ask(s, *e, r);
    CHECK(asked.what == again->what);
    CHECK(asked.reason == again->reason);
    CHECK(asked.first_pass == again->first_pass);

    // A locked database fails the next batch: the memory is emptied, and
    // the failing store answers tempfail, never a remembered pass.
    auto r2 = req("203.0.114.8", "b@example.org", "u@example.net");
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(d.db().c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(ask(s, *e, r2).what == verdict::tempfail);
    CHECK(m->size() == 0);
    CHECK_FALSE(m->recall(r));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    CHECK(ask(s, *e, r).what == verdict::pass);
    REQUIRE(m->recall(r));

    // The client goes on the whitelist file: the reload forgets every pass,
    // and the service answers "whitelisted" again.
    { std::ofstream(cfg.whitelist_clients_file) << "203.0.114.7\n"; }
    deliver(*e->svc, "reload", message(reload_whitelists{}));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (m->size() != 0 && std::chrono::steady_clock::now() < deadline) {
        if (!s.run_once()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK_FALSE(m->recall(r));
    CHECK(ask(s, *e, r).what == verdict::whitelisted);
}

TEST_CASE("engine: the pass memory forgets a client whose pass made it auto-whitelisted", "[grey][threads]") {
    temp_dir d;
    fake_time t;
    scheduler s;
    auto cfg = base(d, t);
    cfg.auto_whitelist_clients = 1;
    auto e = open_engine(s, cfg);
    auto m = e->svc->memory();
    auto r = req("192.0.2.1", "a@example.org", "r1@example.net");
    CHECK(ask(s, *e, r).what == verdict::greylisted);
    t.advance(300);
    CHECK(ask(s, *e, r).what == verdict::pass); // the first pass counts: the client is whitelisted now
    CHECK_FALSE(m->recall(r));                   // so its pass is not the answer any more
    auto x = ask(s, *e, r);
    CHECK(x.what == verdict::whitelisted);
    CHECK(x.reason == "client auto-whitelisted");
    CHECK(m->size() == 0);
}
