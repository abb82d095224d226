#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/introspection.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace kamaelia::introspection {

// ---- lookups ----------------------------------------------------------------------

const box_snapshot* component_snapshot::find_box(std::string_view n) const noexcept {
    for (const auto& b : boxes)
        if (b.name == n) return &b;
    return nullptr;
}

const component_snapshot* graph::find(std::uint32_t id) const noexcept {
    for (const auto& c : components)
        if (c.id == id) return &c;
    return nullptr;
}

const component_snapshot* graph::find(std::string_view n) const noexcept {
    for (const auto& c : components)
        if (c.name == n) return &c;
    return nullptr;
}

std::string_view to_string(component_state s) noexcept {
    switch (s) {
    case component_state::created: return "created";
    case component_state::active: return "active";
    case component_state::finished: return "finished";
    case component_state::reaped: return "reaped";
    }
    return "unknown";
}

std::string_view to_string(box_kind k) noexcept { return k == box_kind::inbox ? "inbox" : "outbox"; }

// ---- snapshot -----------------------------------------------------------------------

namespace {

component_snapshot describe(const component& c) {
    component_snapshot s;
    s.id = c.id();
    s.name = c.name();
    s.parent = c.parent() ? c.parent()->id() : 0;
    s.state = c.state();
    s.failed = c.failed();
    s.wakeups = c.wakeups();
    s.sent = c.sent();
    s.cpu_ns = c.cpu_ns();
    for (const auto& info : c.boxes()) {
        box_snapshot b;
        b.name = std::string(info.name);
        b.description = std::string(info.description);
        if (info.b->is_inbox()) {
            const auto& ib = static_cast<const inbox&>(*info.b);
            b.kind = box_kind::inbox;
            b.depth = ib.size();
            b.delivered = ib.delivered();
            b.parked = ib.parked_senders();
            b.limit = ib.limit();
        } else {
            b.kind = box_kind::outbox;
        }
        s.boxes.push_back(std::move(b));
    }
    return s;
}

} // namespace

graph snapshot(const scheduler& s) {
    std::vector<const component*> order;
    std::unordered_set<const component*> seen;
    std::function<void(const component*)> walk = [&](const component* c) {
        if (!seen.insert(c).second) return;
        // A cross-scheduler link's pump is plumbing: the link S→D is drawn
        // from the sender's side instead.
        if (detail::is_xlink_pump(c)) return;
        order.push_back(c);
        for (const component* k : c->children()) walk(k);
    };
    std::vector<component*> top = s.top_level();
    std::sort(top.begin(), top.end(), [](const component* a, const component* b) { return a->id() < b->id(); });
    for (const component* c : top) walk(c);

    graph g;
    std::unordered_set<const linkage*> links_seen;
    // Index loop: components reachable only through a link join `order`.
    for (std::size_t i = 0; i < order.size(); ++i) {
        for (const linkage* l : order[i]->links()) {
            if (!links_seen.insert(l).second) continue;
            if (detail::is_xlink_pump(l->source())) continue;
            // Its sink lives on another scheduler's thread: named by what
            // the link recorded, never walked from here.
            if (l->cross_scheduler()) {
                g.links.push_back(link_snapshot{l->source()->id(), std::string(l->source_box_name()),
                                                l->remote_sink_id(), std::string(l->remote_sink_box_name()), 0,
                                                l->policy()});
                continue;
            }
            g.links.push_back(link_snapshot{l->source()->id(), std::string(l->source_box_name()), l->sink()->id(),
                                            std::string(l->sink_box_name()), l->passthrough(), l->policy()});
            // A component on another scheduler of a group is that
            // scheduler's to describe (group_view): only its id is read here.
            for (const component* end : {l->source(), l->sink()})
                if (!end->sched() || end->sched() == &s) walk(end);
        }
    }
    g.components.reserve(order.size());
    for (const component* c : order) g.components.push_back(describe(*c));
    return g;
}

std::future<graph> request_snapshot(scheduler& s) {
    auto p = std::make_shared<std::promise<graph>>();
    std::future<graph> f = p->get_future();
    s.post([p, &s] {
        try {
            p->set_value(snapshot(s));
        } catch (...) {
            p->set_exception(std::current_exception());
        }
    });
    return f;
}

// ---- group_view -----------------------------------------------------------------------

group_view::group_view(std::vector<scheduler*> schedulers)
    : scheds_(std::move(schedulers)),
      answered_(scheds_.size()),
      asked_(scheds_.size()),
      last_(scheds_.size()) {}

bool group_view::incomplete() const noexcept {
    for (std::size_t i = 0; i < answered_.size(); ++i)
        if (!answered_[i] && asked_[i]) return true;
    return false;
}

graph group_view::take(const scheduler& home) {
    if (scheds_.size() <= 1) return snapshot(home);
    graph all;
    std::set<std::tuple<std::uint32_t, std::string, std::uint32_t, std::string>> seen;
    for (std::size_t i = 0; i < scheds_.size(); ++i) {
        if (scheds_[i] == &home) {
            last_[i] = snapshot(home);
            answered_[i] = true;
        } else {
            auto& q = asked_[i];
            if (q && q->wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
                try {
                    last_[i] = q->get();
                } catch (...) {
                    last_[i] = {}; // that scheduler has stopped
                }
                q.reset();
                answered_[i] = true;
            }
            if (!q) q = request_snapshot(*scheds_[i]); // answered by the next take()
        }
        for (auto& c : last_[i].components) {
            all.components.push_back(c);
            all.components.back().scheduler = static_cast<std::uint32_t>(i);
        }
        // A link between two schedulers is in both their snapshots: once here.
        for (const auto& l : last_[i].links)
            if (seen.insert({l.source, l.source_box, l.sink, l.sink_box}).second) all.links.push_back(l);
    }
    return all;
}

// ---- text protocol --------------------------------------------------------------------

std::string component_node_id(std::uint32_t id) { return std::to_string(id); }

std::string box_node_id(std::uint32_t component, box_kind kind, std::string_view box) {
    // Python's str() of the tuple the original used as the id.
    std::string s = "(" + std::to_string(component) + ", '";
    s += kind == box_kind::inbox ? 'i' : 'o';
    s += "', '";
    s += box;
    s += "')";
    return s;
}

namespace {

// The protocol quotes with '"' and has no escape: keep names parseable.
std::string quoted(std::string_view s) {
    std::string q = "\"";
    for (char c : s) q += (c == '"' || c == '\n' || c == '\r') ? '\'' : c;
    q += '"';
    return q;
}

} // namespace

std::string text_differ::update(const graph& g) {
    std::map<node_key, std::string> nodes;
    std::set<std::pair<std::string, std::string>> links;
    for (const auto& c : g.components) {
        std::string cid = component_node_id(c.id);
        nodes[{0, c.id, cid}] = "ADD NODE " + quoted(cid) + " " + quoted(c.name) + " randompos component\n";
        for (const auto& b : c.boxes) {
            std::string bid = box_node_id(c.id, b.kind, b.name);
            nodes[{1, c.id, bid}] = "ADD NODE " + quoted(bid) + " " + quoted(b.name) + " randompos " +
                                    std::string(to_string(b.kind)) + "\nADD LINK " + quoted(cid) + " " + quoted(bid) +
                                    "\n";
        }
    }
    for (const auto& l : g.links) {
        // Kind 1 starts at an inbox, kind 2 ends at an outbox.
        box_kind src = l.passthrough == 1 ? box_kind::inbox : box_kind::outbox;
        box_kind dst = l.passthrough == 2 ? box_kind::outbox : box_kind::inbox;
        links.emplace(box_node_id(l.source, src, l.source_box), box_node_id(l.sink, dst, l.sink_box));
    }

    std::string del_links, del_nodes, add_nodes, add_links;
    for (const auto& l : links_)
        if (!links.count(l)) del_links += "DEL LINK " + quoted(l.first) + " " + quoted(l.second) + "\n";
    // Boxes go before their components: walk the old nodes backwards.
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
        if (!nodes.count(it->first)) del_nodes += "DEL NODE " + quoted(std::get<2>(it->first)) + "\n";
    for (const auto& [key, line] : nodes)
        if (!nodes_.count(key)) add_nodes += line;
    for (const auto& l : links)
        if (!links_.count(l)) add_links += "ADD LINK " + quoted(l.first) + " " + quoted(l.second) + "\n";

    std::string stat_lines;
    if (counters_) {
        std::map<std::string, std::string> stats;
        for (const auto& c : g.components) {
            std::string cid = component_node_id(c.id);
            stats[cid] = "STAT " + quoted(cid) + " parent=" + std::to_string(c.parent) +
                         " state=" + std::string(to_string(c.state)) + " failed=" + (c.failed ? "1" : "0") +
                         " wakeups=" + std::to_string(c.wakeups) + " sent=" + std::to_string(c.sent) +
                         " cpu_ns=" + std::to_string(c.cpu_ns) + " scheduler=" + std::to_string(c.scheduler) + "\n";
            for (const auto& b : c.boxes) {
                if (b.kind != box_kind::inbox) continue;
                std::string bid = box_node_id(c.id, b.kind, b.name);
                stats[bid] = "STAT " + quoted(bid) + " depth=" + std::to_string(b.depth) +
                             " limit=" + std::to_string(b.limit) + " delivered=" + std::to_string(b.delivered) +
                             " parked=" + std::to_string(b.parked) + "\n";
            }
        }
        for (const auto& [id, line] : stats) {
            auto it = stats_.find(id);
            if (it == stats_.end() || it->second != line) stat_lines += line;
        }
        stats_ = std::move(stats);
    }

    std::string out = started_ ? std::string() : std::string("DEL ALL\n");
    started_ = true;
    out += del_links + del_nodes + add_nodes + add_links + stat_lines;
    nodes_ = std::move(nodes);
    links_ = std::move(links);
    if (counters_ && !out.empty()) out += "FRAME " + std::to_string(++frame_) + "\n";
    return out;
}

void text_differ::reset() {
    started_ = false;
    nodes_.clear();
    links_.clear();
    stats_.clear();
}

namespace {

// The quoted words of a line after its verb ("ADD NODE" ...): "a" "b" c d.
std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] == ' ') {
            ++i;
            continue;
        }
        if (s[i] == '"') {
            std::size_t e = s.find('"', i + 1);
            if (e == std::string_view::npos) return {};
            out.emplace_back(s.substr(i + 1, e - i - 1));
            i = e + 1;
        } else {
            std::size_t e = s.find(' ', i);
            if (e == std::string_view::npos) e = s.size();
            out.emplace_back(s.substr(i, e - i));
            i = e;
        }
    }
    return out;
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::uint64_t number(const std::map<std::string, std::string>& m, const std::string& k) {
    auto it = m.find(k);
    if (it == m.end()) return 0;
    return std::strtoull(it->second.c_str(), nullptr, 10);
}

// (5, 'i', 'inbox') → 5, inbox, "inbox"; false if not a box id.
bool parse_box_id(const std::string& id, std::uint32_t& comp, box_kind& kind, std::string& name) {
    if (id.size() < 12 || id.front() != '(' || id.back() != ')') return false;
    std::size_t comma = id.find(", '");
    if (comma == std::string::npos || comma + 7 > id.size()) return false;
    comp = static_cast<std::uint32_t>(std::strtoul(id.c_str() + 1, nullptr, 10));
    kind = id[comma + 3] == 'i' ? box_kind::inbox : box_kind::outbox;
    std::size_t q = id.find("', '", comma);
    if (q == std::string::npos) return false;
    name = id.substr(q + 4, id.size() - q - 4 - 2);
    return true;
}

} // namespace

bool text_reader::feed(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return false;
    if (line == "DEL ALL") {
        nodes_.clear();
        links_.clear();
        return false;
    }
    if (starts(line, "FRAME")) {
        ++frames_;
        return true;
    }
    if (starts(line, "ADD NODE ")) {
        auto w = words(line.substr(9));
        if (w.size() < 4) return ++malformed_, false;
        node& n = nodes_[w[0]];
        n.name = w[1];
        n.kind = w[3];
        return false;
    }
    if (starts(line, "ADD LINK ") || starts(line, "DEL LINK ")) {
        auto w = words(line.substr(9));
        if (w.size() != 2) return ++malformed_, false;
        if (line[0] == 'A') {
            links_.emplace(w[0], w[1]);
        } else {
            links_.erase({w[0], w[1]});
        }
        return false;
    }
    if (starts(line, "DEL NODE ")) {
        auto w = words(line.substr(9));
        if (w.size() != 1) return ++malformed_, false;
        nodes_.erase(w[0]);
        return false;
    }
    if (starts(line, "STAT ")) {
        auto w = words(line.substr(5));
        if (w.empty()) return ++malformed_, false;
        node& n = nodes_[w[0]];
        for (std::size_t i = 1; i < w.size(); ++i) {
            auto eq = w[i].find('=');
            if (eq != std::string::npos) n.stat[w[i].substr(0, eq)] = w[i].substr(eq + 1);
        }
        return false;
    }
    ++malformed_; // an unknown verb
    return false;
}

graph text_reader::current() const {
    graph g;
    std::map<std::uint32_t, std::size_t> index;
    for (const auto& [id, n] : nodes_) {
        if (n.kind != "component") continue;
        component_snapshot c;
        c.id = static_cast<std::uint32_t>(std::strtoul(id.c_str(), nullptr, 10));
        c.name = n.name;
        c.parent = static_cast<std::uint32_t>(number(n.stat, "parent"));
        c.wakeups = static_cast<std::uint32_t>(number(n.stat, "wakeups"));
        c.sent = static_cast<std::uint32_t>(number(n.stat, "sent"));
        c.cpu_ns = number(n.stat, "cpu_ns");
        c.scheduler = static_cast<std::uint32_t>(number(n.stat, "scheduler"));
        c.failed = number(n.stat, "failed") != 0;
        auto st = n.stat.find("state");
        if (st != n.stat.end())
            for (auto s : {component_state::created, component_state::active, component_state::finished,
                           component_state::reaped})
                if (to_string(s) == st->second) c.state = s;
        index[c.id] = g.components.size();
        g.components.push_back(std::move(c));
    }
    // Parents before their children, as snapshot() gives them.
    auto depth = [&](const component_snapshot& c) {
        int d = 0;
        for (std::uint32_t p = c.parent; p != 0 && d < 64; ++d) {
            auto it = std::find_if(g.components.begin(), g.components.end(),
                                   [p](const component_snapshot& x) { return x.id == p; });
            p = it == g.components.end() ? 0 : it->parent;
        }
        return d;
    };
    std::vector<std::pair<int, std::uint32_t>> order;
    for (const auto& c : g.components) order.emplace_back(depth(c), c.id);
    std::sort(order.begin(), order.end());
    std::vector<component_snapshot> sorted;
    for (const auto& [d, id] : order) sorted.push_back(std::move(g.components[index[id]]));
    g.components = std::move(sorted);
    index.clear();
    for (std::size_t i = 0; i < g.components.size(); ++i) index[g.components[i].id] = i;
    for (const auto& [id, n] : nodes_) {
        std::uint32_t comp = 0;
        box_snapshot b;
        if (n.kind == "component" || !parse_box_id(id, comp, b.kind, b.name)) continue;
        auto it = index.find(comp);
        if (it == index.end()) continue;
        b.depth = number(n.stat, "depth");
        b.limit = static_cast<std::uint32_t>(number(n.stat, "limit"));
        b.delivered = number(n.stat, "delivered");
        b.parked = number(n.stat, "parked");
        g.components[it->second].boxes.push_back(std::move(b));
    }
    // The standard boxes first, in the order a snapshot lists them.
    auto rank = [](const box_snapshot& b) {
        static const char* std_boxes[] = {"inbox", "control", "outbox", "signal"};
        for (int i = 0; i < 4; ++i)
            if (b.name == std_boxes[i]) return i;
        return 4;
    };
    for (auto& c : g.components)
        std::stable_sort(c.boxes.begin(), c.boxes.end(), [&](const box_snapshot& a, const box_snapshot& b) {
            if (a.kind != b.kind) return a.kind == box_kind::inbox;
            return rank(a) < rank(b);
        });
    for (const auto& [from, to] : links_) {
        link_snapshot l;
        box_kind fk{}, tk{};
        std::string fb, tb;
        // Ownership links (component → its box) are not graph links.
        if (!parse_box_id(from, l.source, fk, fb) || !parse_box_id(to, l.sink, tk, tb)) continue;
        l.source_box = fb;
        l.sink_box = tb;
        l.passthrough = fk == box_kind::inbox ? 1 : (tk == box_kind::outbox ? 2 : 0);
        g.links.push_back(std::move(l));
    }
    return g;
}

// ---- Graphviz -------------------------------------------------------------------------

namespace {

// Text inside a record field: the record syntax characters are escaped.
std::string record_text(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '{' || c == '}' || c == '|' || c == '<' || c == '>' || c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

std::string dot_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string node_name(std::uint32_t id) { return "c" + std::to_string(id); }

// Ports are positional (box names may hold anything).
std::string port_of(const component_snapshot& c, std::string_view box) {
    int in = 0, out = 0;
    for (const auto& b : c.boxes) {
        bool is_in = b.kind == box_kind::inbox;
        if (b.name == box) return (is_in ? "i" : "o") + std::to_string(is_in ? in : out);
        (is_in ? in : out)++;
    }
    return {};
}

void emit_node(std::string& out, const component_snapshot& c, const std::string& indent) {
    std::string ins, outs;
    int in = 0, o = 0;
    for (const auto& b : c.boxes) {
        if (b.kind == box_kind::inbox) {
            if (!ins.empty()) ins += "|";
            ins += "<i" + std::to_string(in++) + "> " + record_text(b.name);
            if (b.depth || b.parked) {
                ins += " " + std::to_string(b.depth) + "/" + std::to_string(b.limit);
                if (b.parked) ins += " +" + std::to_string(b.parked) + " parked";
            }
        } else {
            if (!outs.empty()) outs += "|";
            outs += "<o" + std::to_string(o++) + "> " + record_text(b.name);
        }
    }
    std::string title = record_text(c.name) + "\\n" + std::string(to_string(c.state));
    if (c.failed) title += " (failed)";
    // Already escaped for a record (record_text): quoted as it is.
    std::string label = "{{" + ins + "}|" + title + "|{" + outs + "}}";
    out += indent + node_name(c.id) + " [label=\"" + label + "\"];\n";
}

} // namespace

std::string to_dot(const graph& g) {
    std::unordered_map<std::uint32_t, std::vector<const component_snapshot*>> kids;
    std::vector<const component_snapshot*> roots;
    for (const auto& c : g.components) {
        if (c.parent && g.find(c.parent)) {
            kids[c.parent].push_back(&c);
        } else {
            roots.push_back(&c);
        }
    }
    std::string out =
        "digraph kamaelia {\n  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n";
    std::function<void(const component_snapshot*, const std::string&)> emit = [&](const component_snapshot* c,
                                                                                  const std::string& indent) {
        auto it = kids.find(c->id);
        if (it == kids.end()) {
            emit_node(out, *c, indent);
            return;
        }
        // A parent and its children share a cluster, nested like the ownership.
        out += indent + "subgraph cluster_" + node_name(c->id) + " {\n";
        out += indent + "  label=" + dot_string(c->name) + ";\n" + indent + "  style=dashed;\n";
        emit_node(out, *c, indent + "  ");
        for (const component_snapshot* k : it->second) emit(k, indent + "  ");
        out += indent + "}\n";
    };
    bool several = std::any_of(roots.begin(), roots.end(),
                               [&](const component_snapshot* c) { return c->scheduler != roots.front()->scheduler; });
    if (!several) {
        for (const component_snapshot* c : roots) emit(c, "  ");
    } else {
        // A cluster per scheduler: a component and its children never migrate.
        std::map<std::uint32_t, std::vector<const component_snapshot*>> by_sched;
        for (const component_snapshot* c : roots) by_sched[c->scheduler].push_back(c);
        for (const auto& [s, list] : by_sched) {
            out += "  subgraph cluster_s" + std::to_string(s) + " {\n    label=\"scheduler " + std::to_string(s) +
                   "\";\n    style=rounded;\n";
            for (const component_snapshot* c : list) emit(c, "    ");
            out += "  }\n";
        }
    }
    for (const auto& l : g.links) {
        const component_snapshot* src = g.find(l.source);
        const component_snapshot* dst = g.find(l.sink);
        if (!src || !dst) continue;
        out += "  " + node_name(l.source) + ":" + port_of(*src, l.source_box) + " -> " + node_name(l.sink) + ":" +
               port_of(*dst, l.sink_box);
        std::vector<std::string> attrs;
        if (l.passthrough != 0) attrs.push_back("style=dashed");
        if (l.policy != delivery_policy::suspend) attrs.push_back("label=" + dot_string(to_string(l.policy)));
        if (!attrs.empty()) {
            out += " [";
            for (std::size_t i = 0; i < attrs.size(); ++i) out += (i ? ", " : "") + attrs[i];
            out += "]";
        }
        out += ";\n";
    }
    out += "}\n";
    return out;
}

// ---- the introspector component ----------------------------------------------------------

task introspector::main() {
    for (;;) {
        graph g = view_.take(*sched());
        // The first picture is whole: the other schedulers answer within
        // microseconds unless busy (then it goes without them, bounded).
        for (int i = 0; i < 50 && view_.incomplete(); ++i) {
            co_await wait(ev_inbox, std::chrono::milliseconds(10));
            g = view_.take(*sched());
        }
        std::string text = differ_.update(g);
        if (!text.empty()) co_await send(std::move(text), "outbox");
        if (should_end()) break;
        co_await wait(ev_inbox, interval_);
        if (should_end()) break;
    }
    forward_shutdown();
}

bool introspector::should_end() {
    for (;;) {
        while (recv_message("inbox")) {
            // data is not for us
        }
        if (shutdown_requested()) return true;
        // Drop a control notice that is not an end, so waiting does not spin.
        if (!recv_message("control")) return false;
    }
}

} // namespace kamaelia::introspection
