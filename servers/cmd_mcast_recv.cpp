// `kamaelia mcast-recv OUTFILE --group G --port N --interface ADDR
//  [--timeout S] [--file-id HEX] [--max-file-size BYTES]`: joins the group,
// assembles the file the sender's carousel
// repeats (any order; a late start or lost datagrams are filled in from
// later passes), and writes OUTFILE only once its SHA-256 matches. Exits 0
// then; on timeout it prints the byte ranges still missing and exits 1.
// Without --file-id it follows the first file seen to complete a carousel
// pass (see depacketiser.hpp); a file over --max-file-size is ignored
// before anything is allocated for it.
//
//   multicast_receiver → depacketiser → (this tool)
#include "daemon.hpp"
#include "mcast_tool.hpp"

#include <kamaelia/multicast/depacketiser.hpp>
#include <kamaelia/net/multicast_receiver.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace kd = kamaelia::daemon;
namespace km = kamaelia::multicast;
using namespace kamaelia;

namespace {

std::string out_path;
multicast_options opts;
double timeout_s = 0;
std::string file_id_text;
std::uint64_t max_file_size = km::reassembler::default_max_file_size;

// The receiving graph as one component: it ends with the verified file, on
// timeout (keeping what is missing), on a failure, or when told to stop.
class recv_job : public component {
public:
    recv_job(multicast_receiver rx, std::optional<duration> timeout, km::depacketiser_options o) : timeout_(timeout) {
        declare_inbox("file", "the verified file from the depacketiser");
        rx_ = &add_child(std::move(rx));
        dp_ = &add_child(km::depacketiser(o));
    }
    std::optional<km::received_file> file;
    bool timed_out = false, interrupted = false;
    std::string error;
    // What was known when it ended.
    bool locked = false;
    km::file_meta meta;
    std::vector<km::byte_range> missing;
    std::uint64_t missing_bytes = 0, duplicates = 0, rejected = 0, packets = 0, mismatches = 0;
    duration elapsed{}; // first packet to verified file

protected:
    task main() override {
        link({*rx_, "outbox"}, {*dp_, "inbox"});
        link({*dp_, "outbox"}, {*this, "file"});
        rx_->activate(*sched());
        dp_->activate(*sched());
        std::optional<time_point> deadline;
        if (timeout_) deadline = sched()->now() + *timeout_;
        control_watch cw;
        for (;;) {
            if (auto f = recv<km::received_file>("file")) {
                file = std::move(*f);
                break;
            }
            cw.poll(*this);
            if (cw.ended()) {
                interrupted = true;
                break;
            }
            if (rx_->failed() || dp_->failed()) {
                error = rx_->failed() ? rx_->error_text() : dp_->error_text();
                break;
            }
            if (rx_->finished() || dp_->finished()) {
                error = "the receiver ended unexpectedly";
                break;
            }
            std::optional<duration> left;
            if (deadline) {
                time_point now = sched()->now();
                if (now >= *deadline) {
                    timed_out = true;
                    break;
                }
                left = *deadline - now;
            }
            co_await wait(ev_inbox | ev_children, left);
        }
        const km::reassembler& r = dp_->assembly();
        locked = file || r.locked();
        meta = file ? file->meta : r.meta();
        if (!file) {
            missing = r.missing();
            missing_bytes = r.missing_bytes();
        }
        duplicates = r.duplicates();
        packets = r.packets_added();
        rejected = dp_->rejected_total();
        mismatches = dp_->digest_mismatches();
        if (file) elapsed = dp_->completed_at() - dp_->first_packet();
        for (component* c : children())
            if (!c->finished()) c->stop();
    }

private:
    std::optional<duration> timeout_;
    multicast_receiver* rx_;
    km::depacketiser* dp_;
};

// Writes next to the target, then renames: OUTFILE appears whole or not at all.
bool write_file(const std::string& path, std::string_view data, std::string& err) {
    std::string tmp = path + ".part";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = "cannot create " + tmp + ": " + std::strerror(errno);
        return false;
    }
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = "cannot write " + tmp + ": " + std::strerror(errno);
            ::close(fd);
            std::remove(tmp.c_str());
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
        err = "cannot finish " + path + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

int mcast_recv() {
    kd::tool_logger("mcast-recv");
    scheduler sched;
    std::optional<duration> timeout;
    if (timeout_s > 0) timeout = std::chrono::duration_cast<duration>(std::chrono::duration<double>(timeout_s));
    km::depacketiser_options dopt;
    dopt.assembly.max_size = max_file_size;
    if (!file_id_text.empty()) {
        std::string t = file_id_text;
        if (t.rfind("0x", 0) == 0 || t.rfind("0X", 0) == 0) t = t.substr(2);
        std::size_t used = 0;
        unsigned long long v = 0;
        try {
            v = std::stoull(t, &used, 16);
        } catch (const std::exception&) {
            used = 0;
        }
        if (t.empty() || used != t.size() || v == 0 || v > 0xffffffffULL) {
            std::cerr << "kamaelia mcast-recv: --file-id: want the 8 hex digits mcast-send prints (not 0), got \""
                      << file_id_text << "\"\n";
            return 2;
        }
        dopt.assembly.file_id = static_cast<std::uint32_t>(v);
    }
    std::optional<recv_job> job;
    try {
        multicast_receiver rx(opts);
        rx.open(sched); // joined before anything else happens: a sender may start now
        job.emplace(std::move(rx), timeout, dopt);
    } catch (const std::exception& e) {
        std::cerr << "kamaelia mcast-recv: " << e.what() << "\n";
        return 2;
    }
    spdlog::info("listening on {}:{} (interface {}) for a file to write to {}", opts.group, opts.port, opts.interface,
                 out_path);
    kd::run_job(sched, *job);

    recv_job& j = *job;
    if (!j.error.empty()) {
        std::cerr << "kamaelia mcast-recv: " << j.error << "\n";
        return 2;
    }
    if (j.file) {
        std::string err;
        if (!write_file(out_path, j.file->data.view(), err)) {
            std::cerr << "kamaelia mcast-recv: " << err << "\n";
            return 2;
        }
        double secs = std::chrono::duration<double>(j.elapsed).count();
        double bps = secs > 0 ? static_cast<double>(j.file->data.size()) / secs : 0;
        std::cout << "mcast-recv: " << out_path << ": " << j.file->data.size() << " bytes verified (sha256 "
                  << km::to_hex(j.meta.sha256) << ") in " << secs << " s from the first packet, "
                  << static_cast<std::uint64_t>(bps) << " B/s; " << j.packets << " packets, " << j.duplicates
                  << " duplicates, " << j.rejected << " rejected" << std::endl;
        return 0;
    }
    std::string why = j.interrupted ? "interrupted" : "timed out after " + std::to_string(timeout_s) + " s";
    if (!j.locked) {
        std::cerr << "kamaelia mcast-recv: " << why << ": nothing received on " << opts.group << ":" << opts.port
                  << " (file size unknown)"
                  << (j.rejected ? ", " + std::to_string(j.rejected) + " datagrams rejected" : "") << "\n";
        return 1;
    }
    std::cerr << "kamaelia mcast-recv: " << why << ": missing " << j.missing_bytes << " of " << j.meta.total_size
              << " bytes in " << j.missing.size() << " ranges: " << km::format_ranges(j.missing)
              << (j.mismatches ? "; " + std::to_string(j.mismatches) + " SHA-256 mismatches" : "") << "\n";
    return 1;
}

const kd::register_tool reg{{
    .name = "mcast-recv",
    .help = "receives a multicast file, verifies its SHA-256 and writes it (exit 1 with the missing ranges on timeout)",
    .setup =
        [](CLI::App& app) {
            app.add_option("outfile", out_path, "where to write the file once verified")->required();
            kd::add_multicast_flags(app, opts);
            app.add_option("--timeout", timeout_s, "give up after S seconds (default: wait for ever)")
                ->check(CLI::NonNegativeNumber);
            app.add_option("--file-id", file_id_text,
                           "receive only this file (its id in hex, as mcast-send prints it); default: the first "
                           "file seen to complete a carousel pass");
            app.add_option("--max-file-size", max_file_size,
                           "ignore files announced bigger than BYTES, before allocating anything (default 4 GiB)")
                ->check(CLI::PositiveNumber);
        },
    .run = mcast_recv,
}};

} // namespace
