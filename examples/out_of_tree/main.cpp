// echo_upper: a server made the Kamaelia way, outside Kamaelia's source tree
// (built against an installed Kamaelia with find_package(Kamaelia)).
//
//   echo_upper [--port N] [--bind ADDR]   serve until SIGINT/SIGTERM
//   echo_upper --self-test                start on a free port, talk to it, exit 0 if it answered
//
// Every line a client sends comes back in capitals, ended the way the client
// ends its lines.
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/net/server_core.hpp>
#include <kamaelia/protocols/greeter.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/signal_set.hpp>
#include <asio/write.hpp>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <thread>

namespace k = kamaelia;

// Inheritable defaults: a server is a configured server_core.
struct echo_upper_server : k::server_core {
    echo_upper_server() {
        server_name = "echo-upper";
        port = 1602;
        protocol = [](const k::connection_info&) {
            return k::pipeline(k::chunks_to_lines(), k::pure_transformer([](std::string line) {
                                   for (auto& c : line)
                                       c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                                   return line;
                               }),
                               k::lines_to_chunks());
        };
    }
};

// One from kamaelia::protocols, to show that library links too.
struct greeter_server : k::server_core {
    greeter_server() {
        server_name = "greeter";
        port = 0;
        protocol = [](const k::connection_info&) { return k::greeter_protocol(); };
    }
};

namespace {

// Sends `line` to 127.0.0.1:port and returns the first reply line (with its ending).
std::string ask(std::uint16_t port, const std::string& line) {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    asio::write(s, asio::buffer(line));
    std::string reply;
    asio::read_until(s, asio::dynamic_buffer(reply), '\n');
    return reply.substr(0, reply.find('\n') + 1);
}

int self_test() {
    k::scheduler sched;
    echo_upper_server echo;
    echo.port = 0;
    echo.bind_address = "127.0.0.1";
    greeter_server greeter;
    greeter.bind_address = "127.0.0.1";
    echo.activate(sched);
    greeter.activate(sched);
    echo.listen();
    greeter.listen();
    const std::uint16_t echo_port = echo.bound_port(), greeter_port = greeter.bound_port();
    std::cout << "echo-upper listening on 127.0.0.1:" << echo_port << ", greeter on 127.0.0.1:" << greeter_port
              << std::endl;

    // A hung server must not hang the test.
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
        for (int i = 0; i < 300 && !finished; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!finished) {
            std::cerr << "self-test: no answer within 30 s\n";
            std::_Exit(3);
        }
    });

    // The client runs on its own thread with blocking Asio; the servers run
    // on the scheduler in this one.
    std::atomic<int> failures{0};
    std::thread client([&] {
        auto check = [&](const std::string& what, const std::string& got, const std::string& want) {
            if (got == want) {
                std::cout << "ok   " << what << "\n";
            } else {
                std::cout << "FAIL " << what << ": got \"" << got << "\", want \"" << want << "\"\n";
                ++failures;
            }
        };
        try {
            check("echo-upper, CRLF", ask(echo_port, "hello, kamaelia\r\n"), "HELLO, KAMAELIA\r\n");
            check("echo-upper, LF", ask(echo_port, "mixed Case 42\n"), "MIXED CASE 42\n");
            check("greeter", ask(greeter_port, "world\r\n"), "hello world\r\n");
        } catch (const std::exception& e) {
            std::cout << "FAIL client: " << e.what() << "\n";
            ++failures;
        }
        sched.post([&] {
            echo.stop_serving();
            greeter.stop_serving();
        });
    });
    sched.run(); // returns once both servers have stopped
    client.join();
    finished = true;
    watchdog.join();
    std::cout << (failures ? "self-test FAILED" : "self-test passed") << std::endl;
    return failures ? 1 : 0;
}

int serve(std::uint16_t port, const std::string& bind) {
    k::scheduler sched;
    echo_upper_server echo;
    echo.port = port;
    echo.bind_address = bind;
    echo.activate(sched);
    echo.listen();
    std::cout << "echo-upper listening on " << bind << ":" << echo.bound_port() << std::endl;
    asio::signal_set signals(sched.io(), SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code& ec, int) {
        if (!ec) echo.stop_serving();
    });
    sched.run();
    return echo.failed() ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 1602;
    std::string bind = "0.0.0.0";
    bool test = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--self-test") {
            test = true;
        } else if (a == "--port" && i + 1 < argc) {
            port = static_cast<std::uint16_t>(std::stoi(argv[++i]));
        } else if (a == "--bind" && i + 1 < argc) {
            bind = argv[++i];
        } else {
            std::cerr << "usage: echo_upper [--port N] [--bind ADDR] | --self-test\n";
            return 2;
        }
    }
    try {
        return test ? self_test() : serve(port, bind);
    } catch (const std::exception& e) {
        std::cerr << "echo_upper: " << e.what() << "\n";
        return 1;
    }
}
