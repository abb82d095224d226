// line_session, the runtime the board's stages and the SMTP session share:
// gathered output, one send per flush, end messages recorded by kind.
#include "embedded.hpp"

#include <kamaelia/protocols/line_session.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;

namespace {

// Echoes each chunk twice, flushing once per chunk, until its input ends.
struct echo_twice : line_session {
    int flushes = 0;
    bool last_flush = true;
    task main() override {
        for (;;) {
            while (auto s = recv<std::string>()) {
                write(*s);
                write(*s);
                bool ok = co_await flush();
                last_flush = ok;
                ++flushes;
            }
            scan_control();
            if (end_message()) break;
            co_await wait_any();
        }
        write("bye");
        bool ok = co_await flush();
        last_flush = ok;
        send_forced(message(producer_finished()), "signal");
    }
};

} // namespace

TEST_CASE("line_session: output is gathered and sent once per flush", "[core][smtp][bbs]") {
    test::fixture f;
    auto h = std::make_unique<echo_twice>();
    auto* s = h.get();
    test::embedded_connection c(f, std::move(h));
    c.write("ab");
    CHECK(c.read() == "abab");
    CHECK(s->flushes == 1);
    CHECK(s->last_flush);
    c.close_input(); // producer_finished: input ended, the socket still writable
    CHECK(c.read() == "bye");
    CHECK(s->last_flush);
}

TEST_CASE("line_session: once the socket closed nothing is written and flush says so", "[core][smtp][bbs]") {
    test::fixture f;
    auto h = std::make_unique<echo_twice>();
    auto* s = h.get();
    test::embedded_connection c(f, std::move(h));
    deliver(*s, "control", message(ipc{ipc_kind::socket_shutdown, "peer reset"}));
    f.settle();
    CHECK(c.read().empty());
    CHECK_FALSE(s->last_flush);
}
