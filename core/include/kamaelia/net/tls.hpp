// TLS for connected sockets: contexts (asio::ssl::context, i.e. OpenSSL) and
// the `start_tls` message that turns a live connection into a TLS one.
//
//   server.tls = kamaelia::make_server_tls("cert.pem", "key.pem"); // TLS from the first byte
//
//   // STARTTLS: the reply goes out in clear, everything after it encrypted.
//   co_await send(std::string("220 2.0.0 Ready to start TLS\r\n"));
//   co_await send(kamaelia::start_tls{ctx});
//
// The connected_socket_adapter drives OpenSSL itself on its non-blocking
// socket (SSL_read/SSL_write after readiness, as it does plain reads), so a
// TLS connection keeps the adapter's single-write, watermark and
// no-idle-buffer properties; asio::ssl::stream would need a read buffer and
// a heap handler per operation. The handshake and the close are bounded by
// csa_options::close_timeout.
#pragma once

#include <memory>
#include <string>

// Declared only, so that OpenSSL's headers stay out of every file that sees a
// socket; include <asio/ssl/context.hpp> to configure a context further.
namespace asio::ssl {
class context;
}

namespace kamaelia {

using tls_context = asio::ssl::context;

// A server context from a PEM certificate chain and private key (TLS 1.2+).
// Throws std::runtime_error naming the file that could not be used.
std::shared_ptr<tls_context> make_server_tls(const std::string& cert_chain_file, const std::string& key_file);

// A client context. verify: check the server's certificate against the
// system's CAs (or `ca_file`) and its name against start_tls::host.
std::shared_ptr<tls_context> make_client_tls(bool verify = true, const std::string& ca_file = {});

// Sent into a connected_socket_adapter's inbox, in order with the bytes:
// what was queued before it is written in clear, then the handshake starts
// and every later byte, both ways, is encrypted. Input read after this
// message reached the adapter comes only from the TLS layer.
struct start_tls {
    std::shared_ptr<tls_context> context; // null: stay plain
    bool server = true;                   // false: we connect (tcp_client)
    std::string host;                     // client: SNI and the name verified
};

// Sent by a server-side connected_socket_adapter on its outbox, in order
// with the bytes it read, when it takes a start_tls: every byte before it
// was read in clear, every byte after it comes from the TLS layer. A
// protocol drops what it holds from before (CVE-2011-0411) at this mark,
// not when it asks for TLS: decrypted input may already be queued by then.
struct tls_started {};

} // namespace kamaelia
