// What the load clients read about the server under test from /proc: its
// pid comes in SERVER_PID, or a comma list of pids (the two chat daemons
// of net.chat_fanout_2nodes), whose figures are summed.
#pragma once

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

// The pids in SERVER_PID ("123" or "123,456"); empty if unset.
inline std::vector<std::string> server_pids() {
    std::vector<std::string> out;
    const char* env = std::getenv("SERVER_PID");
    if (!env) return out;
    std::istringstream is(env);
    std::string pid;
    while (std::getline(is, pid, ','))
        if (!pid.empty()) out.push_back(pid);
    return out;
}

// VmRSS of one process in KiB; -1 if unknown.
inline long rss_kib(const std::string& pid) {
    std::ifstream f("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// CPU time of one process, every thread, in ns (the first field of each
// /proc/PID/task/TID/schedstat: time on a CPU, exact, unlike the 10 ms
// clock ticks of /proc/PID/stat); -1 if unknown.
inline long long cpu_ns(const std::string& pid) {
    std::string dir = "/proc/" + pid + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return -1;
    long long sum = 0;
    bool any = false;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(dir + "/" + e->d_name + "/schedstat");
        long long ns = 0;
        if (f >> ns) {
            sum += ns;
            any = true;
        }
    }
    ::closedir(d);
    return any ? sum : -1;
}

// `probe` summed over SERVER_PID's pids; -1 if unset or any one is unknown
// (a sum missing a daemon would look like a cheaper server).
template <class T, class Probe>
T sum_over_servers(Probe probe) {
    auto pids = server_pids();
    if (pids.empty()) return -1;
    T sum = 0;
    for (const auto& p : pids) {
        T v = probe(p);
        if (v < 0) return -1;
        sum += v;
    }
    return sum;
}

// VmRSS of the server(s) in KiB; -1 if unknown.
inline long server_rss_kib() { return sum_over_servers<long>(rss_kib); }

// CPU time of the server(s), every thread, in ns; -1 if unknown.
inline long long server_cpu_ns() { return sum_over_servers<long long>(cpu_ns); }

} // namespace bench
