#include <kamaelia/net/tls.hpp>

#include <asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace kamaelia {

std::shared_ptr<tls_context> make_server_tls(const std::string& cert_chain_file, const std::string& key_file) {
    auto ctx = std::make_shared<tls_context>(tls_context::tls_server);
    ctx->set_options(tls_context::default_workarounds | tls_context::no_sslv2 | tls_context::no_sslv3 |
                     tls_context::no_tlsv1 | tls_context::no_tlsv1_1 | tls_context::single_dh_use);
    asio::error_code ec;
    ctx->use_certificate_chain_file(cert_chain_file, ec);
    if (ec) throw std::runtime_error("TLS: cannot use the certificate " + cert_chain_file + ": " + ec.message());
    ctx->use_private_key_file(key_file, tls_context::pem, ec);
    if (ec) throw std::runtime_error("TLS: cannot use the private key " + key_file + ": " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
        throw std::runtime_error("TLS: the private key " + key_file + " does not match the certificate " +
                                 cert_chain_file);
    // Idle connections give their read/write buffers back.
    SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

std::shared_ptr<tls_context> make_client_tls(bool verify, const std::string& ca_file) {
    auto ctx = std::make_shared<tls_context>(tls_context::tls_client);
    ctx->set_options(tls_context::default_workarounds | tls_context::no_sslv2 | tls_context::no_sslv3 |
                     tls_context::no_tlsv1 | tls_context::no_tlsv1_1);
    asio::error_code ec;
    if (verify) {
        if (ca_file.empty()) {
            ctx->set_default_verify_paths(ec);
        } else {
            ctx->load_verify_file(ca_file, ec);
        }
        if (ec) throw std::runtime_error("TLS: cannot load CA certificates " + ca_file + ": " + ec.message());
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

} // namespace kamaelia
