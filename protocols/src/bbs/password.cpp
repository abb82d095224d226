#include <kamaelia/bbs/password.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace kamaelia::bbs {

namespace {
constexpr int salt_bytes = 16;
constexpr int hash_bytes = 32;

std::string derive(std::string_view password, const std::string& salt, std::uint32_t iterations) {
    std::string out(hash_bytes, '\0');
    if (iterations == 0) iterations = 1;
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                          static_cast<int>(iterations), EVP_sha256(), hash_bytes,
                          reinterpret_cast<unsigned char*>(out.data())) != 1)
        throw std::runtime_error("PKCS5_PBKDF2_HMAC failed");
    return out;
}
} // namespace

password_hash hash_password(std::string_view password, std::uint32_t iterations) {
    password_hash h;
    h.salt.assign(salt_bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(h.salt.data()), salt_bytes) != 1)
        throw std::runtime_error("RAND_bytes failed");
    h.iterations = iterations == 0 ? 1 : iterations;
    h.hash = derive(password, h.salt, h.iterations);
    return h;
}

bool verify_password(std::string_view password, const password_hash& stored) {
    if (stored.hash.size() != hash_bytes) return false;
    std::string h = derive(password, stored.salt, stored.iterations);
    return CRYPTO_memcmp(h.data(), stored.hash.data(), hash_bytes) == 0;
}

password_hash decoy_hash(std::uint32_t iterations) {
    // All zeros: no password derives it, yet checking it costs the same.
    password_hash h;
    h.salt = std::string(salt_bytes, 'x');
    h.hash = std::string(hash_bytes, '\0');
    h.iterations = iterations == 0 ? 1 : iterations;
    return h;
}

} // namespace kamaelia::bbs
