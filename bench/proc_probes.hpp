// What the load clients read about the server under test from /proc
// (its pid comes in SERVER_PID).
#pragma once

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

} // namespace bench
