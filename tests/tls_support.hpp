// A throw-away self-signed certificate for TLS tests (EC P-256, CN
// localhost), made once per process with OpenSSL and written to a temp dir.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kamaelia::test {

struct cert_files {
    std::string cert, key;
};

inline const cert_files& test_certificate() {
    static const cert_files files = [] {
        char dir[] = "/tmp/kamaelia-tls-XXXXXX";
        if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
        cert_files f{std::string(dir) + "/cert.pem", std::string(dir) + "/key.pem"};
        EVP_PKEY* pkey = EVP_EC_gen("P-256");
        X509* x = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24);
        X509_set_pubkey(x, pkey);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        X509_sign(x, pkey, EVP_sha256());
        FILE* c = std::fopen(f.cert.c_str(), "w");
        FILE* k = std::fopen(f.key.c_str(), "w");
        if (!c || !k) throw std::runtime_error("cannot write the test certificate");
        PEM_write_X509(c, x);
        PEM_write_PrivateKey(k, pkey, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(c);
        std::fclose(k);
        X509_free(x);
        EVP_PKEY_free(pkey);
        return f;
    }();
    return files;
}

} // namespace kamaelia::test
