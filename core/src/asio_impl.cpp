// The one translation unit that compiles standalone Asio's implementation
// (ASIO_SEPARATE_COMPILATION): every other file includes only declarations.
#include <asio/impl/src.hpp>
