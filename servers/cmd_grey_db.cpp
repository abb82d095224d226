// `kamaelia grey-db stats|expire|export|copy --data-dir DIR`: looks after
// the greylist database (<data-dir>/greylist.sqlite, or --store
// postgresql://...) while the servers run or not. `copy --to URL` moves a
// store to another (SQLite to PostgreSQL: from one MX host to several).
#include "daemon.hpp"

#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/sqlite_store.hpp>

#include <memory>
#include <optional>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>

namespace kd = kamaelia::daemon;
namespace gl = kamaelia::greylist;

namespace kamaelia::daemon {
std::chrono::seconds parse_duration(const std::string& text, std::int64_t unit, const std::string& what);
}

namespace {

std::string command;
std::string data_dir = kd::default_data_dir(); // KAMAELIA_DATA_DIR, else ./var
std::optional<std::string> store_flag;
std::string copy_to;
std::string delay = "300", max_age = "35", retry_window = "2";
unsigned awl = 5;

std::string when(std::int64_t t) {
    if (t == 0) return "-";
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

int grey_db() {
    gl::timing t;
    try {
        t.delay = kd::parse_duration(delay, 1, "--delay").count();
        t.max_age = kd::parse_duration(max_age, 86400, "--max-age").count();
        t.retry_window = kd::parse_duration(retry_window, 86400, "--retry-window").count();
    } catch (const std::exception& e) {
        std::cerr << "kamaelia grey-db: " << e.what() << "\n";
        return 2;
    }
    auto path = store_flag ? *store_flag : (std::filesystem::path(data_dir) / "greylist.sqlite").string();
    bool pg = gl::pg_store::is_url(path);
    if (!pg && !std::filesystem::exists(path)) {
        std::cerr << "kamaelia grey-db: no greylist database at " << path << "\n";
        return 1;
    }
    if (command == "copy" && copy_to.empty()) {
        std::cerr << "kamaelia grey-db: copy needs --to DESTINATION (postgresql://HOST/DB or a SQLite file)\n";
        return 2;
    }
    // SQLite file or PostgreSQL database; read-only unless this command writes.
    auto open = [](const std::string& where, bool read_only) -> std::unique_ptr<gl::store> {
        if (gl::pg_store::is_url(where)) {
            gl::pg_store::options o;
            o.conninfo = where;
            o.read_only = read_only;
            o.max_rows = 0;
            return std::make_unique<gl::pg_store>(o);
        }
        gl::sqlite_store::options o;
        o.path = where;
        o.read_only = read_only;
        o.max_rows = 0;
        o.busy_timeout = std::chrono::seconds(5); // the server may be writing
        return std::make_unique<gl::sqlite_store>(o);
    };
    try {
        std::unique_ptr<gl::store> stp = open(path, command != "expire");
        gl::store& st = *stp;
        if (command == "copy") {
            std::unique_ptr<gl::store> to = open(copy_to, false);
            // Batches of 1000 rows a transaction; a copy run twice gives the
            // same rows (the stores' upserts).
            std::size_t n = 0, clients = 0;
            to->begin();
            st.for_each([&](const gl::triplet& k, const gl::triplet_row& r) {
                to->save(k, r, false);
                if (++n % 1000 == 0) {
                    to->commit();
                    to->begin();
                }
            });
            st.for_each_client([&](const std::string& a, const gl::client_row& r) {
                to->save_client(a, r);
                if (++clients % 1000 == 0) {
                    to->commit();
                    to->begin();
                }
            });
            to->commit();
            std::cout << "copied " << n << " triplets and " << clients << " clients to "
                      << gl::pg_store::redact(copy_to) << "\n";
            return 0;
        }
        if (command == "stats") {
            auto s = st.stats(t, awl);
            std::cout << "database            " << gl::pg_store::redact(path) << "\n"
                      << "schema version      " << s.schema_version << "\n"
                      << "triplets            " << s.triplets << "\n"
                      << "  passed            " << s.passed << "\n"
                      << "  waiting           " << (s.triplets - s.passed) << "\n"
                      << "clients (AWL)       " << s.clients << "\n"
                      << "  whitelisted       " << s.clients_whitelisted << "\n"
                      << "oldest last-seen    " << when(s.oldest) << "\n"
                      << "newest last-seen    " << when(s.newest) << "\n"
                      << "file bytes          " << s.file_bytes << "\n";
        } else if (command == "expire") {
            auto now =
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count();
            std::size_t total = 0;
            for (;;) { // small transactions: a running server waits at most one batch
                st.begin();
                std::size_t n = st.expire(now, t, 1000);
                st.commit();
                total += n;
                if (n < 1000) break;
            }
            std::cout << "expired " << total << " rows\n";
        } else {
            // export: tab-separated, one triplet a line, then the client AWL
            std::cout << "# triplet\tclient_net\tsender\trecipient\tfirst\tlast\n";
            st.for_each([](const gl::triplet& k, const gl::triplet_row& r) {
                std::cout << "triplet\t" << k.client_net << '\t' << k.sender << '\t' << k.recipient << '\t' << r.first
                          << '\t' << r.last << '\n';
            });
            std::cout << "# client\taddress\tcount\tlast\n";
            st.for_each_client([](const std::string& a, const gl::client_row& r) {
                std::cout << "client\t" << a << '\t' << r.count << '\t' << r.last << '\n';
            });
        }
    } catch (const gl::store_error& e) {
        std::cerr << "kamaelia grey-db: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "grey-db",
    .help = "greylist database: stats, expire, export or copy --to (--data-dir DIR or --store URL)",
    .setup =
        [](CLI::App& app) {
            app.add_option("command", command, "stats, expire or export")
                ->required()
                ->check(CLI::IsMember({"stats", "expire", "export", "copy"}));
            app.add_option("--data-dir", data_dir, "where greylist.sqlite is (default $KAMAELIA_DATA_DIR, else ./var)");
            app.add_option("--store", store_flag,
                           "the store instead: postgresql://HOST/DB (password: URL, PGPASSWORD or PGPASSFILE) "
                           "or a SQLite file");
            app.add_option("--to", copy_to, "copy: the destination store (postgresql://HOST/DB or a SQLite file)");
            app.add_option("--delay", delay, "the servers' --delay, seconds (what counts as passed)");
            app.add_option("--max-age", max_age, "the servers' --max-age, days");
            app.add_option("--retry-window", retry_window, "the servers' --retry-window, days");
            app.add_option("--auto-whitelist-clients", awl, "the servers' client AWL threshold");
        },
    .run = grey_db,
}};

} // namespace
