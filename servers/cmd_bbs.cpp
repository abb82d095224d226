// `kamaelia bbs`: the multi-user bulletin board (default port 1600), the
// EuroPython 2009 tutorial's seq of stages on SQLite (<data-dir>/bbs.sqlite),
// or on PostgreSQL (--store postgresql://...: several board hosts, one board).
#include "daemon.hpp"
#include "store_choice.hpp"

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/stages.hpp>
#include <kamaelia/pg/database.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <stdexcept>

namespace kd = kamaelia::daemon;
namespace bbs = kamaelia::bbs;

namespace {

std::optional<std::uint32_t> kdf_iterations;
std::optional<std::size_t> max_sessions;
std::optional<std::string> store_flag;
std::optional<std::size_t> connection_queue;

// The board's settings: default < config file < flag.
bbs::settings board_settings(const kd::config_file* cf) {
    bbs::settings s;
    if (cf) {
        if (auto v = cf->get_uint("bbs", "kdf-iterations")) s.kdf_iterations = static_cast<std::uint32_t>(*v);
        if (auto v = cf->get_uint("bbs", "max-sessions")) s.max_sessions = *v;
        if (auto v = cf->get_uint("bbs", "max-subject")) s.max_subject = *v;
        if (auto v = cf->get_uint("bbs", "max-body")) s.max_body = *v;
        if (auto v = cf->get_uint("bbs", "max-failures")) s.max_failures = static_cast<unsigned>(*v);
        if (auto v = cf->get_uint("bbs", "connection-queue")) s.connection_queue = *v;
    }
    if (connection_queue) s.connection_queue = *connection_queue;
    if (s.connection_queue == 0 || s.connection_queue > 1'000'000)
        throw kd::config_error("bbs: connection-queue must be 1..1000000, got " + std::to_string(s.connection_queue));
    if (kdf_iterations) s.kdf_iterations = *kdf_iterations;
    if (max_sessions) s.max_sessions = *max_sessions;
    if (s.kdf_iterations == 0) throw kd::config_error("bbs: kdf-iterations must be at least 1");
    if (s.max_failures == 0) throw kd::config_error("bbs: max-failures must be at least 1");
    return s;
}

const kd::register_server reg{{
    .name = "bbs",
    .help = "multi-user bulletin board over telnet, SQLite in the data directory or PostgreSQL (default port 1600)",
    .order = 30,
    .keys = {"kdf-iterations", "max-sessions", "max-subject", "max-body", "max-failures", "store", "connection-queue"},
    .add_flags =
        [](CLI::App& app) {
            app.add_option("--kdf-iterations", kdf_iterations,
                           "PBKDF2-SHA256 cost; a login rehashes a password made at another (default 100000)");
            app.add_option("--max-sessions", max_sessions, "sessions beyond this are refused politely (default 1000)");
            app.add_option(
                "--store", store_flag,
                "the board's store: postgresql://HOST/DB[?pool=N] (several hosts; N connections, 1-16, default 1; "
                "password: URL, PGPASSWORD or "
                "PGPASSFILE) or a SQLite file (default <data-dir>/bbs.sqlite)");
            app.add_option("--connection-queue", connection_queue,
                           "jobs that may wait for a PostgreSQL store connection; more are told the store is busy "
                           "(default 1000)");
        },
    .build =
        [](kd::runtime& rt, const kd::server_flags& f) {
            bbs::settings cfg = board_settings(rt.config());
            auto s = std::make_unique<kamaelia::server_core>();
            s->server_name = "bbs";
            s->port = 1600;
            kd::configure(*s, "bbs", f, rt.config());
            // --max-line is the longest line the board answers (and goes on);
            // the framer's hard limit, which disconnects, sits well above it.
            if (rt.config())
                if (auto v = rt.config()->get_uint("bbs", "max-line")) cfg.max_line = *v;
            if (f.max_line) cfg.max_line = *f.max_line;
            cfg.max_line = std::max<std::size_t>(cfg.max_line, 16);
            // The session says why it ends when idle; the server's own
            // inactivity timeout is only the backstop behind it.
            if (s->inactivity_timeout) cfg.idle_timeout = *s->inactivity_timeout;
            s->inactivity_timeout = cfg.idle_timeout + std::chrono::seconds(30);
            std::size_t framer_max = std::max<std::size_t>(kamaelia::default_max_line, 4 * cfg.max_line);

            std::string path = kd::chosen_store(rt, store_flag, "bbs", {kd::bbs_store_flag, "bbs-store", "bbs.sqlite"});
            std::shared_ptr<bbs::board> board;
            try {
                board = bbs::board::open(rt.sched(), path, cfg, rt.group()); // one board for every scheduler
            } catch (const bbs::store_error& e) {
                // Not a configuration mistake: the database itself (exit 1, like the greylist's).
                throw std::runtime_error(std::string("bbs: ") + e.what());
            }
            rt.keep(board);
            std::weak_ptr<bbs::board> counted = board;
            rt.metrics().add([counted](kamaelia::metrics::exposition& x) {
                if (auto b = counted.lock())
                    x.counter("kamaelia_drops_total", "connections refused, messages dropped and subscribers cut off",
                              {{"service", "bbs"}, {"reason", "busy"}}, static_cast<double>(b->db_refused_busy()));
            });
            // SIGTERM: the store service answers what it holds queued and ends
            // (sessions still open are then told to try again later).
            std::weak_ptr<bbs::board> stopping = board;
            rt.on_stop([stopping] {
                if (auto b = stopping.lock()) b->stop_services();
            });
            spdlog::info("bbs: data in {} (kdf iterations {}, at most {} sessions)", kamaelia::pg::redact(path),
                         cfg.kdf_iterations, cfg.max_sessions);
            s->protocol = [board, framer_max](const kamaelia::connection_info& peer) {
                return bbs::protocol(board, peer, framer_max);
            };
            // The SIGHUP statistics line: components live on every scheduler,
            // each counted on its own thread (a post each); the last to
            // count writes the line.
            std::weak_ptr<bbs::board> weak = board;
            rt.on_reload([weak, scheds = rt.schedulers()] {
                auto b = weak.lock();
                if (!b) return;
                struct tally {
                    std::atomic<std::size_t> live{0}, left{0};
                    std::size_t sessions = 0, db_pending = 0;
                    std::uint64_t total = 0;
                };
                auto t = std::make_shared<tally>();
                t->left = scheds.size();
                t->sessions = b->sessions();
                t->total = b->sessions_total();
                t->db_pending = b->db_pending(); // here, on scheduler 0 where the service lives
                for (kamaelia::scheduler* s : scheds)
                    s->post([t, s] {
                        t->live.fetch_add(s->live());
                        if (t->left.fetch_sub(1) == 1)
                            spdlog::info(
                                "bbs: {} sessions open, {} sessions in all, {} components live, {} database jobs "
                                "queued",
                                t->sessions, t->total, t->live.load(), t->db_pending);
                    });
            });
            rt.add_server(std::move(s));
        },
}};

} // namespace
