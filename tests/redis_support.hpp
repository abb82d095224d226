// A real redis-server for tests: started on a free loopback port in a
// temporary directory, stopped by its pid (never by name: other helpers'
// servers may run on the same machine).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kamaelia::test {

inline std::uint16_t free_loopback_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("no free port");
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

inline bool port_accepts(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

class redis_server {
public:
    // `password`: requirepass (empty: none).
    explicit redis_server(std::string password = {}) : password_(std::move(password)) {
        char tmpl[] = "/tmp/kamaelia-redis-test-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        port_ = free_loopback_port();
        start();
    }
    ~redis_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    static bool available() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

    std::uint16_t port() const noexcept { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    bool running() const noexcept { return pid_ > 0; }

    void start() {
        if (pid_ > 0) return;
        std::vector<std::string> args = {"redis-server", "--port",    std::to_string(port_), "--bind",      "127.0.0.1",
                                         "--save",       "",          "--appendonly",        "no",          "--dir",
                                         dir_,           "--logfile", dir_ + "/redis.log",   "--daemonize", "no"};
        if (!password_.empty()) {
            args.push_back("--requirepass");
            args.push_back(password_);
        }
        std::vector<char*> argv; // made before fork: only async-signal-safe calls after it
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!port_accepts(port_)) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
            }
            if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("redis-server did not start");
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL); // as a crash would: no goodbye to the clients (a stopped one too)
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }

    // SIGSTOP / SIGCONT by pid: a Redis that is alive (its connections
    // open) but reads and answers nothing, then goes on.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    // `redis-cli ARGS...` against this server; its exit status.
    int cli(const std::string& args) const {
        std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + args + " >/dev/null 2>&1";
        if (!password_.empty()) cmd = "REDISCLI_AUTH='" + password_ + "' " + cmd;
        return std::system(cmd.c_str());
    }

private:
    std::string password_;
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

} // namespace kamaelia::test
