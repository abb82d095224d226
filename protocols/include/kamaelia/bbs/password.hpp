// Password hashing for the bulletin board: PBKDF2-HMAC-SHA256 from OpenSSL,
// a random 16-byte salt per password, the cost (iterations) stored with the
// hash so it can be raised later without breaking old accounts.
//
// Both calls are slow on purpose (that is the point of a KDF): run them on
// a worker thread, never on the scheduler's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kamaelia::bbs {

inline constexpr std::uint32_t default_kdf_iterations = 100'000;

struct password_hash {
    std::string salt; // raw bytes
    std::string hash; // raw bytes (32)
    std::uint32_t iterations = 0;
};

// A fresh salt from RAND_bytes; throws std::runtime_error if OpenSSL fails.
password_hash hash_password(std::string_view password, std::uint32_t iterations);
// Recomputes with the stored salt and cost; compares in constant time.
bool verify_password(std::string_view password, const password_hash& stored);
// A hash no password matches, costing the same to check: unknown users take
// as long to refuse as known ones, so timing does not reveal who exists.
password_hash decoy_hash(std::uint32_t iterations);

} // namespace kamaelia::bbs
