// console_reader: reads lines from stdin (or another descriptor) and emits
// them, then producer_finished at end of input (Kamaelia's ConsoleReader).
//
//   pipeline(console_reader(), upper(), console_echoer()).run();
//
// No blocking thread: a pipe or terminal is watched through the scheduler's
// Asio reactor (posix::stream_descriptor on a dup of the descriptor) and
// read without blocking; a regular file, or anything the reactor cannot
// watch (e.g. /dev/null), is read with plain reads, which do not block on
// those. The descriptor's flags are restored when the reader ends.
//
// Each line is emitted as a std::string without its line ending ("\n" or
// "\r\n") plus `eol` (default "\n", as the original did; "" for bare
// lines). A last line without a newline is emitted at end of input; a line
// longer than max_line is emitted in pieces of max_line.
//
// An end message on "control" stops it at once (unlike the original, which
// noticed only after the next line) and is passed on instead. Its "inbox"
// is not used (anything sent there is dropped).
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kamaelia {

struct console_reader_options {
    int fd = 0;                      // what to read (stdin)
    std::string eol = "\n";          // appended to each line
    std::string prompt{};            // written to stdout before waiting for a line (empty: none)
    std::size_t max_line = 1u << 20; // longer lines come in pieces
};

class console_reader : public component {
public:
    console_reader() : console_reader(console_reader_options{}) {}
    explicit console_reader(console_reader_options options);
    console_reader(console_reader&&) = default;

    const console_reader_options& options() const noexcept { return options_; }
    std::uint64_t lines() const noexcept { return lines_; }
    std::string type_name() const override { return "console_reader"; }

protected:
    task main() override;

private:
    console_reader_options options_;
    std::uint64_t lines_ = 0;
};

} // namespace kamaelia
