// Small components for the chassis tests. They live inside chassis (which
// destroy them), so what they see goes into a shared journal that outlives
// them, and the journal counts their destruction.
#pragma once

#include "fixture.hpp"

#include <catch2/catch.hpp>

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kamaelia::test {

struct journal {
    std::vector<std::string> events; // "tag:what", in order
    int created = 0;
    int destroyed = 0;
    void add(std::string e) { events.push_back(std::move(e)); }
    std::vector<std::string> of(const std::string& tag) const {
        std::vector<std::string> v;
        for (auto& e : events)
            if (e.rfind(tag + ":", 0) == 0) v.push_back(e.substr(tag.size() + 1));
        return v;
    }
    bool has(const std::string& e) const {
        for (auto& x : events)
            if (x == e) return true;
        return false;
    }
};

using journal_ptr = std::shared_ptr<journal>;

inline std::string kind_name(ipc_kind k) { return std::string(to_string(k)); }

// Counts construction and destruction in the journal (moves included: a
// moved-from husk is destroyed too, and counted as created).
struct counted : component {
    journal_ptr j;
    std::string tag;
    counted(journal_ptr jp, std::string t) : j(std::move(jp)), tag(std::move(t)) { ++j->created; }
    counted(counted&& o) : component(std::move(o)), j(o.j), tag(o.tag) { ++j->created; }
    ~counted() override { ++j->destroyed; }
    void note(const std::string& what) { j->add(tag + ":" + what); }
    // Takes every control message: end messages set the shutdown state the
    // way shutdown_requested() does, the rest are journaled. Returns true
    // when the component should end.
    bool control_says_end() {
        while (auto m = recv_message("control")) {
            if (const ipc* i = m->peek<ipc>()) {
                note("control " + kind_name(i->kind) + (i->text.empty() ? "" : " " + i->text));
                if (i->ends()) {
                    end_kind = i->kind;
                    ended = true;
                }
            } else {
                note("control ?");
            }
        }
        if (!ended) return false;
        ipc probe{end_kind, {}, 0};
        return probe.stops() || in("inbox").empty();
    }
    void forward_end() { send_forced(message(ipc{end_kind, {}, id()}), "signal"); }
    ipc_kind end_kind = ipc_kind::producer_finished;
    bool ended = false;
};

// Applies f to every int; ends on an end message (after its input, for a
// finish) and forwards it. Journals what it sees.
struct mapper : counted {
    std::function<int(int)> f;
    mapper(journal_ptr j, std::string tag, std::function<int(int)> fn)
        : counted(std::move(j), std::move(tag)),
          f(std::move(fn)) {}
    task main() override {
        for (;;) {
            while (auto v = recv<int>()) {
                note(std::to_string(*v));
                int out = f(*v);
                co_await send(out);
            }
            if (control_says_end()) break;
            co_await wait_any();
        }
        forward_end();
    }
};

// Sends its values, then stays until told to end (it never ends by itself).
struct source : counted {
    std::vector<int> values;
    source(journal_ptr j, std::string tag, std::vector<int> v)
        : counted(std::move(j), std::move(tag)),
          values(std::move(v)) {}
    task main() override {
        for (int v : values) {
            co_await send(v);
            if (control_says_end()) break;
        }
        while (!control_says_end()) co_await wait_for("control");
        note("end");
        forward_end();
    }
};

// Reads exactly n ints (journaling and passing them on), then ends with
// producer_finished on signal, leaving the rest of its input unread.
// n < 0: never ends by itself.
struct taker : counted {
    int n;
    taker(journal_ptr j, std::string tag, int count) : counted(std::move(j), std::move(tag)), n(count) {}
    task main() override {
        note("start");
        for (int got = 0; n < 0 || got < n;) {
            if (auto v = recv<int>()) {
                ++got;
                note(std::to_string(*v));
                int out = *v;
                co_await send(out);
                continue;
            }
            if (control_says_end()) {
                note("told");
                forward_end();
                co_return;
            }
            co_await wait_any();
        }
        note("done");
        co_await send(producer_finished(), "signal");
    }
};

// Passes n ints on, then throws.
struct thrower : counted {
    int n;
    thrower(journal_ptr j, std::string tag, int count) : counted(std::move(j), std::move(tag)), n(count) {}
    task main() override {
        for (int got = 0; got < n;) {
            if (auto v = recv<int>()) {
                ++got;
                int out = *v;
                co_await send(out);
                continue;
            }
            co_await wait_for("inbox");
        }
        throw std::runtime_error("boom from " + tag);
    }
};

// Ignores everything until its timer fires, then ends (a slow child).
struct sleeper : counted {
    duration d;
    sleeper(journal_ptr j, std::string tag, duration dd) : counted(std::move(j), std::move(tag)), d(dd) {}
    task main() override {
        note("start");
        co_await sleep_for(d);
        control_says_end();
        note("end");
        forward_end();
    }
};

// Runs the scheduler until nothing is queued, and checks that it got there:
// a component that spins instead of waiting would hit the fixture's cap.
inline std::size_t settle(fixture& f) {
    std::size_t cycles = f.settle(100'000);
    CHECK(cycles < 100'000);
    return cycles;
}

inline void advance_by(fixture& f, duration d) {
    f.clock.advance(d);
    settle(f);
}

inline void link_to(component& from, collector& col) {
    component::link({from, "outbox"}, {col, "inbox"});
    component::link({from, "signal"}, {col, "control"});
}

inline std::vector<ipc_kind> kinds(const collector& c) {
    std::vector<ipc_kind> v;
    for (auto& i : c.controls) v.push_back(i.kind);
    return v;
}

inline std::vector<int> iota_vec(int from, int to) {
    std::vector<int> v;
    for (int i = from; i <= to; ++i) v.push_back(i);
    return v;
}

} // namespace kamaelia::test
