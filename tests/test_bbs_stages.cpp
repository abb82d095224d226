// The bulletin board's seq of stages, without sockets: the protocol graph on
// an in-memory connection (tests/embedded.hpp), the store in memory, jobs
// run inline (deterministic), the clock manual.
#include "embedded.hpp"
#include "telnet_support.hpp"

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>
#include <kamaelia/bbs/stages.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

namespace bbs = kamaelia::bbs;
using kamaelia::test::contains;
using kamaelia::test::embedded_connection;
using kamaelia::test::fixture;
using kamaelia::test::text;
using namespace std::chrono_literals;

namespace {

bbs::settings test_settings() {
    bbs::settings s;
    s.kdf_iterations = 1; // fast tests; the cost is configurable
    s.idle_timeout = std::chrono::minutes(5);
    s.max_line = 100;
    s.max_subject = 20;
    s.max_body = 60;
    return s;
}

std::shared_ptr<bbs::board> make_board(fixture& f, bbs::settings s = test_settings()) {
    auto db = std::make_unique<bbs::sqlite_store>(":memory:");
    db->add_user("harry", bbs::hash_password("password", 1));
    db->add_user("dick", bbs::hash_password("secret", 1));
    return bbs::board::inline_board(f.sched, std::move(db), s);
}

kamaelia::connection_info peer(std::string addr = "127.0.0.1", std::uint16_t port = 40000) {
    kamaelia::connection_info ci;
    ci.peer = std::move(addr);
    ci.peer_port = port;
    ci.local = "127.0.0.1";
    ci.local_port = 1600;
    return ci;
}

struct client {
    fixture& f;
    embedded_connection conn;
    client(fixture& fx, const std::shared_ptr<bbs::board>& b, kamaelia::connection_info ci = peer())
        : f(fx),
          conn(fx, bbs::protocol(b, ci)) {}
    std::string say(const std::string& line) {
        conn.write(line + "\r\n");
        return text(conn.read());
    }
    std::string login(const std::string& name = "harry", const std::string& pw = "password") {
        conn.read();
        say(name);
        return say(pw);
    }
    void drop() { // the socket goes away
        kamaelia::deliver(*conn.handler, "control", kamaelia::message(kamaelia::socket_shutdown("peer reset")));
        f.settle();
    }
    bool closed() const { return conn.sock.closed; }
};

} // namespace

TEST_CASE("bbs dialogue: login, hello, help, quit - the original's strings", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    client c(f, b);
    std::string raw = c.conn.read();
    CHECK(raw == "\r\nlogin: ");
    c.conn.write("Harry\r\n");
    raw = c.conn.read();
    // Echo off while the password is typed.
    CHECK(raw == kamaelia::telnet::will_echo() + "password: ");
    c.conn.write("password\r\n");
    std::string out = c.conn.read();
    CHECK(out.rfind(kamaelia::telnet::wont_echo() + "\r\nLogin Successful\r\n", 0) == 0);
    out = text(out);
    CHECK(contains(out, "Retrieving user data..."));
    CHECK(contains(out, "Hello, Harry\r\n")); // the name as typed
    CHECK(out.size() >= 6);
    CHECK(out.substr(out.size() - 6) == "main> ");
    out = c.say("h");
    CHECK(contains(out, "<return> - browse messages"));
    CHECK(contains(out, "q - quit"));
    out = c.say("zzz");
    CHECK(contains(out, "Unknown command"));
    out = c.say("q");
    CHECK(contains(out, "Saving user data...\r\n\r\nGoodbye!\r\n"));
    CHECK(c.closed());
    CHECK(c.conn.sock.controls.back().kind == kamaelia::ipc_kind::producer_finished);
    CHECK(b->sessions() == 0);
}

TEST_CASE("bbs dialogue: a wrong password fails, then the right one works", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    client c(f, b);
    std::string out = c.login("harry", "wrong");
    CHECK(contains(out, "Login Failed!\r\nlogin: "));
    out = c.login("nobody", "password");
    CHECK(contains(out, "Login Failed!"));
    out = c.login("HARRY", "password");
    CHECK(contains(out, "Login Successful"));
    CHECK(contains(out, "Hello, HARRY"));
}

TEST_CASE("bbs dialogue: three failures close the session, repeated failures lock the name", "[bbs]") {
    fixture f;
    auto s = test_settings();
    s.max_failures = 4;
    auto b = make_board(f, s);
    {
        client c(f, b);
        c.login("harry", "a");
        c.login("harry", "b");
        std::string out = c.login("harry", "c");
        CHECK(contains(out, "Too many failed logins; goodbye."));
        CHECK(c.closed());
    }
    {
        client c(f, b);
        std::string out = c.login("harry", "d"); // the 4th failure from this address
        CHECK(contains(out, "Login Failed!"));
        out = c.login("harry", "password"); // right, but locked now
        CHECK(contains(out, "Too many failed logins; try again in"));
        CHECK(c.closed());
    }
    {
        client other(f, b, peer("127.0.0.2")); // another address is not locked out
        CHECK(contains(other.login("harry", "password"), "Login Successful"));
    }
    f.clock.advance(s.failure_window + 1s);
    client later(f, b);
    CHECK(contains(later.login("harry", "password"), "Login Successful"));
}

TEST_CASE("bbs seq: input typed ahead reaches the stage that reads it", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    client c(f, b);
    // Everything in one chunk: the password before its prompt, the
    // commands before the menu exists.
    c.conn.write("harry\r\npassword\r\np\r\ntyped ahead\r\nline one\r\n.\r\nq\r\n");
    std::string out = text(c.conn.read());
    CHECK(contains(out, "Login Successful"));
    CHECK(contains(out, "Message 1 posted"));
    CHECK(contains(out, "Goodbye!"));
    CHECK(c.closed());
    [](bbs::store& db) {
        auto all = db.all_messages();
        REQUIRE(all.size() == 1);
        CHECK(all[0].subject == "typed ahead");
        CHECK(all[0].body == "line one");
    }(b->inline_store());
}

TEST_CASE("bbs dialogue: two users post, reply, read each other, delete their own", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    client h(f, b);
    h.login();
    std::string out = h.say("");
    CHECK(contains(out, "No messages."));
    CHECK(contains(h.say("p"), "subject: "));
    CHECK(contains(h.say("Hello all"), "a line with a single . ends it"));
    h.say("first line");
    h.say("..");
    out = h.say(".");
    CHECK(contains(out, "Message 1 posted"));

    client d(f, b, peer("127.0.0.1", 40001));
    out = d.login("dick", "secret");
    CHECK(contains(out, "You have 1 message(s) waiting"));
    out = d.say("");
    CHECK(contains(out, "You have 1 message(s) waiting\r\nmessages> "));
    out = d.say("");
    CHECK(contains(out, "message: 1\r\n"));
    CHECK(contains(out, "from: harry\r\n"));
    CHECK(contains(out, "to: all\r\n"));
    CHECK(contains(out, "subject: Hello all\r\n"));
    CHECK(contains(out, "\r\nfirst line\r\n.\r\n")); // ".." was a line with one dot
    CHECK(contains(out, "No more messages"));
    out = d.say("d");
    CHECK(contains(out, "You can only delete your own messages"));
    out = d.say("r");
    CHECK(contains(out, "subject [Re: Hello all]: "));
    d.say("");
    d.say("an answer");
    out = d.say(".");
    CHECK(contains(out, "Message 2 posted"));
    d.say("x");
    out = d.say("q");
    CHECK(contains(out, "Goodbye!"));

    out = h.say("");
    CHECK(contains(out, "You have 1 message(s) waiting")); // the reply: his own post counts as read
    out = h.say("");
    CHECK(contains(out, "message: 2\r\n"));
    CHECK(contains(out, "to: harry\r\n"));
    CHECK(contains(out, "subject: Re: Hello all\r\n"));
    CHECK(contains(out, "In-Reply-To: 1\r\n"));
    out = h.say("d");
    CHECK(contains(out, "You can only delete your own messages"));
    out = h.say("");
    CHECK(contains(out, "message: 1\r\n"));
    out = h.say("d");
    CHECK(contains(out, "Message 1 deleted"));
    h.say("x");
    h.say("q");
    [](bbs::store& db) {
        CHECK(db.message_count() == 1);
        CHECK(db.read(1, 2)->reply_to == std::vector<std::int64_t>{1});
    }(b->inline_store());
}

TEST_CASE("bbs limits: long lines, subjects, bodies and control bytes get clear answers", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    client c(f, b);
    c.login();
    std::string out = c.say(std::string(101, 'x'));
    CHECK(contains(out, "error: line too long (the limit is 100 bytes)\r\nmain> "));
    out = c.say("h\x01\x1b[2J");
    CHECK(contains(out, "error: control characters are not allowed\r\nmain> "));
    c.say("p");
    out = c.say(std::string(21, 's'));
    CHECK(contains(out, "error: subject too long (the limit is 20 bytes)\r\nsubject: "));
    c.say("ok");
    out = c.say(std::string(50, 'b'));
    out = c.say(std::string(50, 'b'));
    CHECK(contains(out, "error: message too long (the limit is 60 bytes)"));
    out = c.say(".");
    CHECK(contains(out, "Message not posted"));
    c.say("p");
    c.say("quotes ' \" ; --");
    c.say("x'); DROP TABLE messages; --");
    out = c.say(".");
    CHECK(contains(out, "Message 1 posted"));
    // Telnet commands inside input are stripped; IAC IAC is a 0xFF byte,
    // which goes back out escaped again.
    c.conn.write(std::string("\xff\xfb\x01\xff\xfd\x03") + "h\r\n");
    out = text(c.conn.read());
    CHECK(contains(out, "<return> - browse messages"));
    [](bbs::store& db) {
        REQUIRE(db.message_count() == 1);
        CHECK(db.all_messages()[0].body == "x'); DROP TABLE messages; --");
    }(b->inline_store());
    // Past the framer's hard limit the client is told, and disconnected.
    c.conn.write(std::string(bbs::settings{}.max_line * 20, 'z'));
    CHECK(contains(c.conn.read(), "line too long"));
    CHECK(c.closed());
}

TEST_CASE("bbs stored text cannot steer a terminal", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    [](bbs::store& db) {
        bbs::message_record m;
        m.date = "then";
        m.from = "imported\x1b[31m";
        m.to = "all";
        m.subject = std::string("a\xff") + "b";
        m.body = "ring\x07";
        db.post(m);
    }(b->inline_store());
    client c(f, b);
    c.login();
    c.say("");
    std::string raw = c.conn.read();
    c.conn.write("\r\n");
    raw = c.conn.read();
    CHECK(contains(raw, "from: imported?[31m\r\n"));
    CHECK(contains(raw, "subject: a\xff\xff"
                        "b\r\n")); // IAC escaped
    CHECK(contains(raw, "ring?\r\n"));
}

TEST_CASE("bbs idle sessions time out with a word, the cap refuses politely", "[bbs]") {
    fixture f;
    auto s = test_settings();
    s.max_sessions = 1;
    auto b = make_board(f, s);
    client c(f, b);
    c.login();
    {
        client second(f, b, peer("127.0.0.1", 40002));
        CHECK(second.conn.read() == "Sorry, the board is full (1 sessions); please try again later.\r\n");
        CHECK(second.closed());
    }
    f.advance(s.idle_timeout - 1s);
    CHECK_FALSE(c.closed());
    f.advance(2s);
    CHECK(contains(c.conn.read(), "Idle for too long; goodbye."));
    CHECK(c.closed());
    CHECK(b->sessions() == 0);
}

TEST_CASE("bbs leaks nothing: a client leaving at every prompt", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    std::size_t baseline = f.sched.live();
    // Each script stops at a different prompt before the client goes.
    const std::vector<std::vector<std::string>> scripts = {
        {},
        {"harry"},
        {"harry", "password"},
        {"harry", "password", ""},
        {"harry", "password", "", ""},
        {"harry", "password", "p"},
        {"harry", "password", "p", "subject"},
        {"harry", "password", "p", "subject", "body line"},
        {"harry", "password", "", "", "r"},
        {"harry", "wrong"},
    };
    for (bool half_close : {false, true}) {
        for (const auto& script : scripts) {
            {
                client c(f, b);
                for (const auto& l : script) c.say(l);
                if (half_close) {
                    c.conn.close_input();
                } else {
                    c.drop();
                }
                CHECK(c.closed());
                CHECK(f.sched.live() <= baseline + 1); // the fake socket may linger; the graph has gone
            }
            f.settle();
            CHECK(f.sched.live() == baseline);
            CHECK(b->sessions() == 0);
        }
    }
}

TEST_CASE("bbs with real threads: the database thread and the KDF worker reply to the scheduler", "[bbs][threads]") {
    std::random_device rd;
    auto dir = std::filesystem::temp_directory_path() / ("kamaelia-bbs-t" + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    {
        fixture f;
        auto s = test_settings();
        s.kdf_iterations = 1000;
        {
            bbs::sqlite_store db((dir / "bbs.sqlite").string());
            db.add_user("harry", bbs::hash_password("password", 1000));
        }
        auto b = bbs::board::open(f.sched, (dir / "bbs.sqlite").string(), s);
        client c(f, b);
        // Pumps the scheduler until `what` shows up (replies come from threads).
        auto until = [&](const std::string& what) {
            std::string seen;
            auto deadline = std::chrono::steady_clock::now() + 60s;
            while (!contains(seen, what) && std::chrono::steady_clock::now() < deadline) {
                f.settle();
                seen += text(c.conn.read());
                if (!contains(seen, what)) std::this_thread::sleep_for(1ms);
            }
            return seen;
        };
        c.conn.write("harry\r\npassword\r\n");
        CHECK(contains(until("main> "), "Login Successful"));
        c.conn.write("p\r\nthreaded\r\nbody\r\n.\r\n");
        CHECK(contains(until("posted"), "Message 1 posted"));
        c.conn.write("q\r\n");
        CHECK(contains(until("Goodbye!"), "Goodbye!"));
        CHECK(c.closed());
    }
    {
        bbs::sqlite_store db((dir / "bbs.sqlite").string()); // committed before it was acknowledged
        CHECK(db.message_count() == 1);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("bbs login rehashes a password made at another KDF cost", "[bbs]") {
    fixture f;
    auto s = test_settings();
    s.kdf_iterations = 7; // the users were made with 1
    auto b = make_board(f, s);
    client c(f, b);
    CHECK(contains(c.login("harry", "password"), "Login Successful"));
    [](bbs::store& db) {
        auto u = db.find_user("harry");
        REQUIRE(u);
        CHECK(u->password.iterations == 7);
        CHECK(bbs::verify_password("password", u->password));
        CHECK(db.find_user("dick")->password.iterations == 1); // untouched until dick logs in
    }(b->inline_store());
    client again(f, b, peer("127.0.0.1", 40003));
    CHECK(contains(again.login("harry", "password"), "Login Successful"));
}

TEST_CASE("bbs browsing: unread first and counted, then the ones read before, each once", "[bbs]") {
    fixture f;
    auto b = make_board(f);
    [](bbs::store& db) {
        for (const char* subject : {"one", "two", "three"}) {
            bbs::message_record m;
            m.date = "then";
            m.from = "dick";
            m.to = "all";
            m.subject = subject;
            db.post(m);
        }
        db.read(db.find_user("harry")->id, 1); // harry has read "one"
    }(b->inline_store());
    client c(f, b);
    CHECK(contains(c.login(), "You have 2 message(s) waiting"));
    CHECK(contains(c.say(""), "You have 2 message(s) waiting\r\nmessages> "));
    std::string out = c.say("");
    CHECK(contains(out, "subject: two"));
    CHECK(contains(out, "You have 1 message(s) waiting"));
    out = c.say("");
    CHECK(contains(out, "subject: three"));
    CHECK(contains(out, "No new messages; <return> shows the ones already read"));
    out = c.say("");
    CHECK(contains(out, "subject: one"));
    CHECK(contains(out, "No more messages"));
    out = c.say("");
    CHECK_FALSE(contains(out, "subject:")); // nothing shown twice
    CHECK(contains(out, "No more messages"));
    c.say("x");
    CHECK(contains(c.say(""), "No new messages")); // a second visit starts again with the read ones
}

TEST_CASE("bbs with real threads: a client gone while its login hashes leaves nothing, the late reply finds no one",
          "[bbs][threads]") {
    std::random_device rd;
    auto dir = std::filesystem::temp_directory_path() / ("kamaelia-bbs-g" + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    {
        fixture f;
        auto s = test_settings();
        s.kdf_iterations = 1000000; // about a second: long enough to leave during it
        auto b = bbs::board::open(f.sched, (dir / "bbs.sqlite").string(), s);
        std::size_t baseline = f.sched.live();
        {
            client c(f, b);
            c.conn.write("nobody\r\nsecret\r\n");
            auto deadline = std::chrono::steady_clock::now() + 60s;
            while (b->kdf_pending() == 0 && std::chrono::steady_clock::now() < deadline) {
                f.settle();
                std::this_thread::sleep_for(1ms);
            }
            CHECK(b->kdf_pending() >= 1); // hashing now
            c.drop();
            CHECK(c.closed());
        }
        f.settle();
        CHECK(f.sched.live() == baseline);
        CHECK(b->sessions() == 0);
        auto deadline = std::chrono::steady_clock::now() + 60s;
        while ((b->kdf_pending() || b->db_pending()) && std::chrono::steady_clock::now() < deadline) {
            f.settle();
            std::this_thread::sleep_for(1ms);
        }
        f.settle(); // the late reply runs here, and does nothing
        CHECK(f.sched.live() == baseline);
    }
    std::filesystem::remove_all(dir);
}
