// The streaming splitter (`kamaelia relay`): one source published to a
// backplane and served to every TCP client, Kamaelia's "Backplanes &
// Servers" shape:
//
//   pipeline(source, publish_to("RELAY"))                  // the producer
//   server_core { protocol = subscribe_to("RELAY") }       // each client
//
// A client receives the stream from the moment it joins. One that does not
// read is cut off by the backplane (policy fail) once its queue is full: its
// socket adapter's watermark, then `subscriber_limit` chunks of at most
// `chunk_size` bytes; the source and the other clients never wait for it.
// When the source ends, the backplane ends every client cleanly (what was
// queued is flushed, then the connection closes) and the server stops.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/server_core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kamaelia::servers {

// Bytes from a descriptor (a pipe, FIFO, terminal or socket through the
// reactor; a regular file with plain reads), in chunks of at most
// chunk_size, then producer_finished at the end. It owns the descriptor.
class stream_reader : public component {
public:
    explicit stream_reader(int fd, std::size_t chunk_size = 16 * 1024);
    ~stream_reader() override;
    std::uint64_t bytes() const noexcept { return bytes_; }
    std::string type_name() const override { return "stream_reader"; }

protected:
    task main() override;

private:
    int fd_;
    std::size_t chunk_;
    std::uint64_t bytes_ = 0;
};

// Splits chunks larger than `size` (a TCP source reads up to 64 KiB at a
// time), so that what a client can have queued is bounded in bytes, not only
// in chunks.
class rechunk : public component {
public:
    explicit rechunk(std::size_t size = 16 * 1024) : size_(size ? size : 1) {}
    std::string type_name() const override { return "rechunk"; }

protected:
    task main() override;

private:
    std::size_t size_;
};

struct relay_server : server_core {
    std::string backplane_name = "RELAY"; // activate backplane(backplane_name, fail) first
    std::size_t subscriber_limit = 16;    // chunks queued per client before it is cut off
    relay_server();
};

// "tcp://HOST:PORT", "file:PATH" or "-" (stdin).
struct relay_source_spec {
    enum kind_t { tcp, file, stdin_ } kind = stdin_;
    std::string host, path;
    std::uint16_t port = 0;
};
// Throws std::invalid_argument with a message naming the problem.
relay_source_spec parse_relay_source(const std::string& text);

} // namespace kamaelia::servers
