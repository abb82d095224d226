// file_reader: a file as a stream of chunks, paced at a byte rate by the
// scheduler's timers (a token bucket: it sleeps until the next chunk's
// bytes are due, never spins on the clock as ReadFileAdaptor did), and
// repeated for a data carousel.
//
//   outbox  file_chunk: `data` holds up to `chunks_per_message` chunks of
//           `chunk_size` bytes from `offset` (only a file's last chunk is
//           shorter), so the packetiser cuts it into packets by offset
//   signal  producer_finished after the last pass; the end message when told
//   control shutdown_microprocess or producer_finished: stop
//
// rate 0 means unpaced: as fast as the downstream takes (flow control).
// repeat 0 means pass after pass until stopped. The file must not change
// while it is sent: a file that shrinks ends the reader with an error.
// Reads are pread() of a few tens of KiB from the page cache per message.
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kamaelia::multicast {

struct file_chunk {
    std::uint64_t pass = 0;   // 0 for the first pass over the file
    std::uint64_t offset = 0; // of data's first byte in the file
    std::string data;
};

struct file_reader_options {
    std::string path;
    std::size_t chunk_size = 1340; // payload bytes per packet (see chunk_size_for)
    double rate = 0;               // bytes per second; 0: unpaced
    std::uint64_t repeat = 1;      // passes; 0: until stopped
    std::size_t chunks_per_message = 16;
};

class file_reader : public component {
public:
    explicit file_reader(file_reader_options o);
    file_reader(file_reader&& o) noexcept;
    ~file_reader() override;

    std::uint64_t passes_done() const noexcept { return passes_; }
    std::uint64_t bytes_read() const noexcept { return bytes_; }
    std::uint64_t file_size() const noexcept { return size_; }
    std::string type_name() const override { return "file_reader"; }

protected:
    task main() override;

private:
    file_reader_options opt_;
    int fd_ = -1;
    std::uint64_t size_ = 0, passes_ = 0, bytes_ = 0;
};

} // namespace kamaelia::multicast
