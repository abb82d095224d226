// A snapshot of a scheduler's live component graph, and two renderings of
// it: the original Introspector's text protocol (what Kamaelia's
// AxonVisualiser draws) as diffs between snapshots, and Graphviz dot.
//
//   auto g = kamaelia::introspection::snapshot(sched);   // on the scheduler thread
//   kamaelia::introspection::text_differ diff;
//   send(diff.update(g));      // "DEL ALL" + every node and link the first time
//   ...                        // then only what changed
//   std::ofstream("graph.dot") << kamaelia::introspection::to_dot(g);
//
// Beyond the original every snapshot carries counters:
// per component wake-ups, messages sent and CPU time (scheduler profiling on);
// per inbox depth, limit, messages ever delivered and parked senders.
//
// snapshot() reads the graph directly, so it runs on the scheduler's thread
// (inside a component, or while the scheduler is not running);
// request_snapshot() takes one from any other thread, and group_view puts
// the graphs of a group's schedulers together, each component marked with
// the scheduler that runs it.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace kamaelia::introspection {

enum class box_kind : std::uint8_t { inbox, outbox };

struct box_snapshot {
    std::string name;
    box_kind kind = box_kind::inbox;
    std::string description;
    std::size_t depth = 0;       // messages waiting (inboxes)
    std::uint64_t delivered = 0; // messages ever delivered into it (inboxes)
    std::size_t parked = 0;      // senders waiting for room (inboxes)
    std::uint32_t limit = 0;     // the bound (inboxes)
};

struct component_snapshot {
    std::uint32_t id = 0;
    std::string name;
    std::uint32_t parent = 0; // 0: top level
    component_state state = component_state::created;
    bool failed = false;
    std::uint32_t wakeups = 0;
    std::uint32_t sent = 0;
    std::uint64_t cpu_ns = 0;
    std::uint32_t scheduler = 0; // the index of the scheduler that runs it in its group (0 alone)
    std::vector<box_snapshot> boxes;

    const box_snapshot* find_box(std::string_view name) const noexcept;
};

struct link_snapshot {
    std::uint32_t source = 0;
    std::string source_box;
    std::uint32_t sink = 0;
    std::string sink_box;
    int passthrough = 0; // 0 outbox→inbox, 1 inbox→inbox, 2 outbox→outbox
    delivery_policy policy = delivery_policy::suspend;
};

struct graph {
    std::vector<component_snapshot> components; // parents before their children
    std::vector<link_snapshot> links;

    const component_snapshot* find(std::uint32_t id) const noexcept;
    const component_snapshot* find(std::string_view name) const noexcept;
};

// Walks every top-level component and its children (and anything reachable
// only through a link). Scheduler thread only.
graph snapshot(const scheduler& s);
// From any thread: the snapshot is taken on the scheduler thread when it next
// runs its posted requests (broken_promise if the scheduler goes first).
std::future<graph> request_snapshot(scheduler& s);

// The graph of every scheduler of a group, seen from one of them (the
// daemon's introspector and console run on scheduler 0): the home
// scheduler's graph as it is now, the others' as they last answered. Each
// other scheduler is asked with request_snapshot(), one question at a time,
// never waited for, so a busy scheduler shows its previous picture and the
// home scheduler never blocks; a new view shows the others from its second
// take(). Components never migrate and ids are unique in the process, so
// the graphs are disjoint. The home scheduler's thread only.
class group_view {
public:
    // `schedulers[i]` is scheduler i of the group (one of them is `home`).
    // Empty or one: snapshot(home) alone, as for a single scheduler.
    explicit group_view(std::vector<scheduler*> schedulers = {});
    graph take(const scheduler& home);
    std::size_t size() const noexcept { return scheds_.size(); }
    // Some other scheduler has not answered yet (a new view's first take()).
    bool incomplete() const noexcept;

private:
    std::vector<scheduler*> scheds_;
    std::vector<bool> answered_;
    std::vector<std::optional<std::future<graph>>> asked_;
    std::vector<graph> last_;
};

std::string_view to_string(component_state s) noexcept;
std::string_view to_string(box_kind k) noexcept;

// The text protocol's node ids: the numeric id for a component, the text of
// the Python tuple (id, 'i'|'o', name) for a box: (5, 'i', 'inbox').
std::string component_node_id(std::uint32_t id);
std::string box_node_id(std::uint32_t component, box_kind kind, std::string_view box);

// The Introspector's text protocol as diffs between snapshots. The first
// update() starts with "DEL ALL"; every update lists, in this order,
//   DEL LINK "a" "b"
//   DEL NODE "id"
//   ADD NODE "id" "name" randompos component|inbox|outbox
//     (a box node is followed by ADD LINK "component" "box")
//   ADD LINK "a" "b"
// Components are added before boxes (a box's owner link needs its
// component) and deleted after them; otherwise lines are in id order.
// Empty when nothing changed.
//
// With counters on, two verbs the original did not have follow (a reader of
// the original protocol skips lines it does not know):
//   STAT "id" parent=P state=S failed=0|1 wakeups=W sent=N cpu_ns=C scheduler=K
//   STAT "(id, 'i', 'box')" depth=D limit=L delivered=N parked=P
// for each component and inbox whose figures changed, and, closing every
// non-empty update,
//   FRAME n
// so a reader knows when it holds a whole picture.
class text_differ {
public:
    explicit text_differ(bool counters = false) : counters_(counters) {}
    std::string update(const graph& g);
    // The next update() starts again with "DEL ALL".
    void reset();

private:
    // Key: (0 component | 1 box, component id, node id) - the emission order.
    using node_key = std::tuple<int, std::uint32_t, std::string>;
    bool counters_ = false;
    bool started_ = false;
    std::uint64_t frame_ = 0;
    std::map<node_key, std::string> nodes_;               // → ADD lines
    std::set<std::pair<std::string, std::string>> links_; // box → box
    std::map<std::string, std::string> stats_;            // node id → its STAT line
};

// Rebuilds a graph from the text protocol (with or without counters), line
// by line: what `kamaelia graph --connect` turns into Graphviz. Malformed
// lines are counted and skipped.
class text_reader {
public:
    // One line, without its newline. Returns true on FRAME.
    bool feed(std::string_view line);
    graph current() const;
    std::uint64_t frames() const noexcept { return frames_; }
    std::uint64_t malformed() const noexcept { return malformed_; }

private:
    struct node {
        std::string name;
        std::string kind; // component | inbox | outbox
        std::map<std::string, std::string> stat;
    };
    std::map<std::string, node> nodes_;
    std::set<std::pair<std::string, std::string>> links_;
    std::uint64_t frames_ = 0, malformed_ = 0;
};

// Graphviz: one cluster per component that has children, one record node per
// component listing its boxes (inbox depth/limit shown), one edge per link;
// with components on several schedulers, a cluster per scheduler around them.
std::string to_dot(const graph& g);

// Emits the text protocol on "outbox" every `interval` while the graph
// changes (the original's Introspector, without its busy loop). Ends on an end
// notice on "control", which it forwards.
class introspector : public component {
public:
    // counters: also STAT and FRAME lines (see text_differ). `group`: every
    // scheduler of the group this one belongs to (group_view); empty: its own.
    explicit introspector(duration interval = std::chrono::seconds(1), bool counters = false,
                          std::vector<scheduler*> group = {})
        : interval_(interval),
          differ_(counters),
          view_(std::move(group)) {}
    std::string type_name() const override { return "introspector"; }

private:
    task main() override;
    bool should_end();
    duration interval_;
    text_differ differ_;
    group_view view_;
};

} // namespace kamaelia::introspection
