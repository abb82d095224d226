// The one translation unit that compiles standalone Asio's implementation
// (ASIO_SEPARATE_COMPILATION): every other file includes only declarations.
#include <asio/impl/src.hpp>
// asio::ssl (contexts for TLS; OpenSSL itself is linked by kamaelia_asio).
#include <asio/ssl/impl/src.hpp>
