// What a component keeps besides its four boxes: the rarely needed state
// (allocated on first need, so an idle component stays small) and the bits
// its scheduler and awaiters test. Nothing here is named by user code.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/clock.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/slab.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia::detail {

// Boxes have no virtual destructor (they are 8 or 24 bytes); delete by kind.
struct box_deleter {
    void operator()(box* b) const noexcept;
};

struct extra_box {
    std::string name;
    std::string description;
    std::uint32_t hash;
    std::unique_ptr<box, box_deleter> b;
};

// Texts and counters few components ever have: a tag, an error, an end
// message's text, profiled CPU time. Kept out of component_ext so that the
// state every linked component has stays small.
struct component_rare {
    std::string tag;           // optional name suffix
    std::string error;         // what the body threw, if it did
    std::string shutdown_text; // text of the end message seen
    std::uint64_t cpu_ns = 0;  // time spent running (profiling on)
};

// From the slab, as the component itself (a server has five per connection).
struct component_ext {
    std::vector<extra_box> boxes; // declared and run-time boxes beyond the four
    component* first_child = nullptr;
    component* last_child = nullptr;                       // O(1) append (a server adds two per connection)
    std::uint64_t children_finished = 0;                   // ever: lets a parent skip a scan when none did
    std::vector<linkage*> links_out;                       // links whose source box is ours
    std::vector<linkage*> links_in;                        // links whose sink box is ours
    time_point deadline{};                                 // timer armed for this component
    std::size_t heap_index = static_cast<std::size_t>(-1); // place in the scheduler's timer heap
    std::unique_ptr<component_rare> rare;
    bool timed_out = false;

    static void* operator new(std::size_t n) { return slab_allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { slab_free(p, n); }
};

// What a suspended component waits for.
enum wait_flag : std::uint8_t {
    wait_any_inbox = 1,
    wait_one_box = 2,
    wait_child = 4,
    wait_timer = 8,
    wait_send = 16,
    wait_other = 32,    // woken explicitly (yield, a child's done())
    wait_external = 64, // signal_external()
};

enum state_flag : std::uint8_t {
    flag_queued = 1,
    flag_stop_requested = 2,
    flag_failed = 4,
    flag_parent_waits = 8, // the parent awaits this child's done()
    flag_scheduler_owned = 16,
    flag_shutdown_seen = 32,
    flag_external = 64,    // signal_external() arrived before it was awaited
    flag_child_done = 128, // a child finished since the last wait(ev_children)
};

} // namespace kamaelia::detail
