// `kamaelia mcast-send FILE --group G --port N --interface ADDR --ttl T
//  [--rate BYTES_PER_S] [--repeat N]`: the tutorial's file multicaster
// (spec section 7.3) made reliable by a data carousel. The file goes out
// `repeat` times (0: until stopped) as self-describing datagrams (CRC-32
// each, the file's SHA-256 in every header), paced by a timer at `rate`
// file bytes a second. Exits 0 once every pass is sent (with --repeat 0,
// when stopped by SIGINT/SIGTERM; a counted carousel stopped early: 130).
//
//   file_reader → packetiser → multicast_sender
#include "daemon.hpp"
#include "mcast_tool.hpp"

#include <kamaelia/multicast/file_reader.hpp>
#include <kamaelia/multicast/packetiser.hpp>
#include <kamaelia/net/multicast_sender.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <spdlog/spdlog.h>

#include <iostream>

namespace kd = kamaelia::daemon;
namespace km = kamaelia::multicast;
using namespace kamaelia;

namespace {

std::string file;
multicast_options opts;
double rate = 1'000'000;
std::uint64_t repeat = 1;
std::size_t datagram = km::default_datagram_size;

// The sending graph as one component, so its parts can be inspected when
// they are done: it ends when the sender has sent everything, or when a
// part fails, or on shutdown_microprocess (SIGINT/SIGTERM).
class send_job : public component {
public:
    send_job(km::file_reader r, km::packetiser p, multicast_sender s) {
        reader_ = &add_child(std::move(r));
        pack_ = &add_child(std::move(p));
        tx_ = &add_child(std::move(s));
        // A few messages in flight between the parts, not the default 256
        // (11 MiB of chunks and batches when unpaced): the bytes stay in
        // the cache between read, packetise and send, and the heap needs
        // no fresh pages.
        pack_->in("inbox").set_limit(in_flight);
        tx_->in("inbox").set_limit(in_flight);
    }
    static constexpr std::uint32_t in_flight = 4;
    std::string error;
    bool interrupted = false;
    multicast_stats stats;
    std::uint64_t passes = 0;

protected:
    task main() override {
        link({*reader_, "outbox"}, {*pack_, "inbox"});
        link({*reader_, "signal"}, {*pack_, "control"});
        link({*pack_, "outbox"}, {*tx_, "inbox"});
        link({*pack_, "signal"}, {*tx_, "control"});
        for (component* c :
             {static_cast<component*>(reader_), static_cast<component*>(pack_), static_cast<component*>(tx_)})
            c->activate(*sched());
        control_watch cw;
        for (;;) {
            cw.poll(*this);
            if (cw.ended()) {
                interrupted = true;
                break;
            }
            for (component* c :
                 {static_cast<component*>(reader_), static_cast<component*>(pack_), static_cast<component*>(tx_)})
                if (c->failed() && error.empty()) error = c->error_text();
            if (!error.empty() || tx_->finished()) break;
            co_await wait(ev_inbox | ev_children);
        }
        stats = tx_->stats();
        passes = reader_->passes_done();
        for (component* c : children())
            if (!c->finished()) c->stop();
    }

private:
    km::file_reader* reader_;
    km::packetiser* pack_;
    multicast_sender* tx_;
};

int mcast_send() {
    kd::tool_logger("mcast-send");
    km::file_meta meta;
    std::size_t chunk = 0;
    scheduler sched;
    std::optional<send_job> job;
    try {
        chunk = km::chunk_size_for(datagram);
        meta = km::describe_file(file, static_cast<std::uint16_t>(chunk));
        opts.send_queue_limit = 128 * 1024; // see in_flight
        multicast_sender tx(opts);
        tx.open(sched); // a bad group, interface or TTL fails here, clearly
        job.emplace(km::file_reader({.path = file, .chunk_size = chunk, .rate = rate, .repeat = repeat}),
                    km::packetiser(meta), std::move(tx));
    } catch (const std::exception& e) {
        std::cerr << "kamaelia mcast-send: " << e.what() << "\n";
        return 2;
    }
    spdlog::info("sending {} ({} bytes, sha256 {}, file id {:08x}) to {}:{} via {} ttl {}, {} {}, {} bytes a datagram",
                 file, meta.total_size, km::to_hex(meta.sha256), meta.file_id, opts.group, opts.port, opts.interface,
                 opts.ttl, repeat == 0 ? "until stopped" : std::to_string(repeat) + " pass(es)",
                 rate > 0 ? "at " + std::to_string(static_cast<std::uint64_t>(rate)) + " bytes/s" : "unpaced",
                 datagram);
    auto t0 = std::chrono::steady_clock::now();
    kd::run_job(sched, *job);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!job->error.empty()) {
        std::cerr << "kamaelia mcast-send: " << job->error << "\n";
        return 1;
    }
    std::cout << "mcast-send: " << file << ": " << job->stats.datagrams_sent << " datagrams, " << job->stats.bytes_sent
              << " bytes in " << secs << " s (" << job->passes << " pass(es)"
              << (job->interrupted ? ", interrupted" : "") << "; waited for the socket " << job->stats.send_waits
              << " times)" << std::endl;
    if (job->stats.send_errors) {
        std::cerr << "kamaelia mcast-send: " << job->stats.send_errors << " datagrams could not be sent\n";
        return 1;
    }
    // Stopping a carousel sent "until stopped" is its normal end; stopping
    // a counted one before its last pass is not.
    if (job->interrupted && repeat != 0 && job->passes < repeat) return 130;
    return 0;
}

const kd::register_tool reg{{
    .name = "mcast-send",
    .help = "multicasts a file as a data carousel (default: 127.0.0.1, TTL 0, this host only)",
    .setup =
        [](CLI::App& app) {
            app.add_option("file", file, "the file to send")->required();
            kd::add_multicast_flags(app, opts);
            app.add_option("--ttl", opts.ttl, "multicast TTL (default 0: this host only)")->check(CLI::Range(0, 255));
            app.add_option("--rate", rate, "file bytes per second (default 1000000; 0: unpaced)")
                ->check(CLI::NonNegativeNumber);
            app.add_option("--repeat", repeat, "passes over the file (default 1; 0: until stopped)");
            app.add_option("--datagram-size", datagram,
                           "bytes per datagram, header included (default 1400: no fragmentation)");
        },
    .run = mcast_send,
}};

} // namespace
