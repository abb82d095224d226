// A throwaway PostgreSQL cluster for tests: initdb into a temporary
// directory owned by an unprivileged user (initdb and postgres refuse to
// run as root, and the tests run as root), the server on a free loopback
// port with its socket in that directory, stopped by its pid.
#pragma once

#include "redis_support.hpp" // free_loopback_port, port_accepts

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kamaelia::test {

class pg_cluster {
public:
    pg_cluster() {
        bindir_ = bindir();
        char tmpl[] = "/tmp/kamaelia-pg-test-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        as_user_ = ::getuid() == 0;
        if (as_user_) {
            passwd* pw = ::getpwnam("nobody");
            group* gr = ::getgrnam("nogroup");
            if (!pw || !gr) throw std::runtime_error("no user nobody / group nogroup to run PostgreSQL as");
            if (::chown(dir_.c_str(), pw->pw_uid, gr->gr_gid) != 0) throw std::runtime_error("chown failed");
        }
        ::chmod(dir_.c_str(), 0700);
        std::string cmd = "cd / && " + prefix() + bindir_ + "/initdb -D " + dir_ +
                          "/data -U kamaelia --auth=trust -E UTF8 >" + dir_ + "/initdb.log 2>&1";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("initdb failed; see " + dir_ + "/initdb.log");
        port_ = free_loopback_port();
        start();
    }
    ~pg_cluster() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    pg_cluster(const pg_cluster&) = delete;
    pg_cluster& operator=(const pg_cluster&) = delete;

    // The server binaries: `pg_config --bindir` (on Debian, /usr/lib/postgresql/15/bin).
    static std::string bindir() {
        std::string out;
        if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
            char buf[512];
            while (std::fgets(buf, sizeof buf, p)) out += buf;
            ::pclose(p);
        }
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
        if (out.empty() || !std::filesystem::exists(out + "/initdb")) out = "/usr/lib/postgresql/15/bin";
        return out;
    }
    static bool available() {
        return std::filesystem::exists(bindir() + "/initdb") && std::filesystem::exists(bindir() + "/postgres");
    }

    std::uint16_t port() const noexcept { return port_; }
    std::string url(const std::string& db = "postgres") const {
        return "postgresql://kamaelia@127.0.0.1:" + std::to_string(port_) + "/" + db;
    }

    void start() {
        if (pid_ > 0) return;
        // Everything the child needs is made before fork (only async-signal-
        // safe calls after it).
        std::string log = dir_ + "/postgres.log";
        std::vector<std::string> args;
        if (as_user_) args = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
        for (std::string a :
             {bindir_ + "/postgres", std::string("-D"), dir_ + "/data", std::string("-p"), std::to_string(port_),
              std::string("-k"), dir_, std::string("-c"), std::string("listen_addresses=127.0.0.1"), std::string("-c"),
              std::string("synchronous_commit=on"), std::string("-c"), std::string("max_connections=50")})
            args.push_back(a);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            if (::chdir("/") != 0) ::_exit(126);
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        std::string ready =
            "cd / && " + bindir_ + "/pg_isready -q -h 127.0.0.1 -p " + std::to_string(port_) + " -U kamaelia";
        while (std::system(ready.c_str()) != 0) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("postgres exited at start; see " + dir_ + "/postgres.log");
            }
            if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("postgres did not start");
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    // Fast shutdown (SIGINT), as an administrator's restart would; SIGKILL
    // after a generous wait.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGINT);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        int st = 0;
        while (::waitpid(pid_, &st, WNOHANG) != pid_) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &st, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        pid_ = -1;
    }

    // `psql -c SQL` against database `db`; its exit status.
    int psql(const std::string& sql, const std::string& db = "postgres") const {
        std::string cmd = "cd / && " + bindir_ + "/psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " +
                          std::to_string(port_) + " -U kamaelia -d " + db + " -c \"" + sql + "\" >/dev/null 2>&1";
        return std::system(cmd.c_str());
    }

    // `psql -tA -c SQL`: what it printed, trimmed ("" if it failed).
    std::string value(const std::string& sql, const std::string& db = "postgres") const {
        std::string cmd = "cd / && " + bindir_ + "/psql -q -X -tA -h 127.0.0.1 -p " + std::to_string(port_) +
                          " -U kamaelia -d " + db + " -c \"" + sql + "\" 2>/dev/null";
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[512];
            while (std::fgets(buf, sizeof buf, p)) out += buf;
            ::pclose(p);
        }
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
        return out;
    }
    // Sessions of `application_name` connected now.
    int backends(const std::string& application_name) const {
        std::string v =
            value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + application_name + "'");
        return v.empty() ? -1 : std::stoi(v);
    }

private:
    std::string prefix() const { return as_user_ ? "setpriv --reuid=nobody --regid=nogroup --clear-groups " : ""; }

    std::string bindir_;
    std::string dir_;
    bool as_user_ = false;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

} // namespace kamaelia::test
