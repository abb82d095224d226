// Helpers the multicast tests share.
#pragma once

#include <random>
#include <string>

namespace kamaelia::test {

// `n` bytes from a seeded generator: the same file every run.
inline std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

} // namespace kamaelia::test
