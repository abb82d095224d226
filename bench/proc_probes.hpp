// What the load clients read about the server under test from /proc
// (its pid comes in SERVER_PID).
#pragma once

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace bench {

// VmRSS of SERVER_PID in KiB; -1 if unknown.
inline long server_rss_kib() {
    const char* pid = std::getenv("SERVER_PID");
    if (!pid) return -1;
    std::ifstream f(std::string("/proc/") + pid + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// CPU time of SERVER_PID, every thread, in ns (the first field of each
// /proc/PID/task/TID/schedstat: time on a CPU, exact, unlike the 10 ms
// clock ticks of /proc/PID/stat); -1 if unknown.
inline long long server_cpu_ns() {
    const char* pid = std::getenv("SERVER_PID");
    if (!pid) return -1;
    std::string dir = std::string("/proc/") + pid + "/task";
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

} // namespace bench
