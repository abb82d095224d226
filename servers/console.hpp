// The live console: an HTTP/1.1 server on server_core that shows the
// daemon's component graph in a browser (the AxonVisualiser's job), with
// charts, Prometheus metrics, a health check and the graph as JSON.
//
//   GET /            the page (d3 force layout + Chart.js, served from the binary)
//   GET /events      Server-Sent Events: "hello" (the whole graph and the chart
//                    history), then "diff" and "stats" once a second
//   GET /api/graph   the snapshot as JSON
//   GET /metrics     Prometheus text format
//   GET /healthz     200 "ok", or 503 and the reason
//
// One console_model per daemon holds what the page is sent; console_hub, a
// service component, takes a snapshot and a sample once a second and
// publishes the diffs on the backplane "kamaelia.console", to which every
// /events connection subscribes (a client that does not read is cut off by
// the backplane; the others never wait for it).
#pragma once

#include "daemon.hpp"

#include <kamaelia/core/introspection.hpp>
#include <kamaelia/core/metrics.hpp>
#include <kamaelia/http/request_parser.hpp>
#include <kamaelia/net/server_core.hpp>

#include <kamaelia/greylist/meter.hpp>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include <string>

namespace kamaelia::console {

inline constexpr const char* backplane_name = "kamaelia.console";

// Greylist decisions and their latency, counted by the servers that ask
// the greylist (greylist/meter.hpp).
using greylist_counters = greylist::meter;

// The graph as JSON, with diffs between snapshots (the JSON twin of
// introspection::text_differ).
class json_differ {
public:
    // Replaces the current picture; returns the diff
    // {"frame":n,"nodes":[changed or new],"gone":[ids],"links":[new],"unlinked":[keys]}.
    std::string update(const introspection::graph& g, const std::set<std::uint32_t>& servers);
    // The whole current picture: {"frame":n,"nodes":[...],"links":[...]}.
    std::string full() const;
    std::uint64_t frame() const noexcept { return frame_; }
    std::size_t nodes() const noexcept { return nodes_.size(); }

private:
    std::map<std::uint32_t, std::string> nodes_;
    std::map<std::string, std::string> links_;
    std::uint64_t frame_ = 0;
};

std::string graph_json(const introspection::graph& g, const std::set<std::uint32_t>& servers);

// A shard's counters (a server's listener on another scheduler, --threads
// N), as read on the shard's own thread at the last refresh: /metrics adds
// them to the server's, so each per-server figure is the whole server's.
struct shard_counters {
    bool seen = false; // answered at least once
    std::size_t connections = 0;
    std::uint64_t accepted = 0, refused = 0;
    server_core::traffic traffic;
};

// One refresh of every shard's counters. Touched on the console's
// scheduler only: the shards' threads answer with a post to it.
struct shard_refresh {
    std::size_t left = 0;        // shards yet to answer
    component* waiter = nullptr; // signalled (signal_external) when none is left; cleared by it when it stops waiting
    bool complete() const noexcept { return left == 0; }
};

class console_model {
public:
    console_model(daemon::runtime& rt, std::shared_ptr<greylist_counters> g);

    // Whether some server runs shards on other schedulers.
    bool has_shards() const noexcept { return !rt_.shard_refs().empty(); }
    // Asks each shard's thread for its counters (on the console's
    // scheduler's thread); `waiter`, if any, is woken once all have
    // answered. A shard whose scheduler does not answer keeps its last figures.
    std::shared_ptr<shard_refresh> refresh_shards(component* waiter);

    // Once a second (the hub): the diff event and the stats event to publish.
    struct tick_events {
        std::string diff, stats;
    };
    tick_events tick(bool with_graph);
    // The first event of an /events stream.
    std::string hello();
    std::string graph_now() const;
    std::string metrics_text() const;
    // Empty when healthy, else why not.
    std::string health() const;
    // The full HTTP response for a request (not /events).
    std::string respond(const http::request& r, bool metrics_only) const;

    std::set<std::uint32_t> server_ids() const;

private:
    daemon::runtime& rt_;
    mutable introspection::group_view view_; // every scheduler's graph
    json_differ differ_;
    bool differ_current_ = false;
    std::shared_ptr<greylist_counters> greylist_;
    std::deque<std::string> history_; // stats samples, oldest first
    struct totals {
        double t = 0;
        std::uint64_t messages = 0, drops = 0, gl[4] = {0, 0, 0, 0}, store_count = 0;
        double store_sum = 0;
    };
    totals last_{};
    bool have_last_ = false;
    totals now_totals() const;
    // The shards' counters by rt_.shard_refs() index; written on this
    // model's scheduler only (the answers of refresh_shards are posted here).
    std::shared_ptr<std::vector<shard_counters>> shard_seen_ = std::make_shared<std::vector<shard_counters>>();
    // A server's counters with its shards' added.
    struct server_totals {
        std::size_t connections = 0;
        std::uint64_t accepted = 0, refused = 0;
        server_core::traffic traffic;
    };
    server_totals whole(const server_core& s) const;
};

// One HTTP connection: GET requests answered in order (keep-alive), or one
// event stream. Bounded: the request head (parser_limits), the idle time
// between requests, and the queue to the socket (the adapter's watermarks,
// then the backplane's cut-off for a stream that is not read).
class http_session : public component {
public:
    http_session(std::shared_ptr<console_model> m, bool metrics_only, http::parser_limits limits,
                 duration idle = std::chrono::seconds(30));
    std::string type_name() const override { return "http_session"; }

protected:
    task main() override;

private:
    std::shared_ptr<console_model> model_;
    bool metrics_only_;
    http::parser_limits limits_;
    duration idle_;
};

// Snapshot and sample once a second, published on backplane_name.
class console_hub : public component {
public:
    explicit console_hub(std::shared_ptr<console_model> m, duration interval = std::chrono::seconds(1))
        : model_(std::move(m)),
          interval_(interval) {}
    std::string type_name() const override { return "console_hub"; }

protected:
    task main() override;

private:
    std::shared_ptr<console_model> model_;
    duration interval_;
};

struct console_server : server_core {
    std::shared_ptr<console_model> model;
    bool metrics_only = false;
    http::parser_limits limits;
    console_server(std::shared_ptr<console_model> m, bool metrics_only_port);
};

// Sets the console up on the runtime: the model, the hub, the backplane, the
// console server on bind:port and, if metrics_port is set, a second server
// answering only /metrics and /healthz. Logs the URL once listening.
void start(daemon::runtime& rt, const std::string& bind, std::optional<std::uint16_t> port,
           std::optional<std::uint16_t> metrics_port);

// The greylist counters of this runtime's console (made on first use); the
// greylist wiring counts into it whether or not a console is on.
std::shared_ptr<greylist_counters> greylist_counters_of(daemon::runtime& rt);

// The static files of the page (embedded at build time).
struct asset {
    std::string_view path, content_type, body;
};
const asset* find_asset(std::string_view path);

} // namespace kamaelia::console
