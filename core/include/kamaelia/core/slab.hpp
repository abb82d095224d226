// Per-thread size-class allocator for component objects and coroutine frames.
//
// A component and its frame are small (a few hundred bytes) and created in
// bulk (one graph per connection). Serving them from 16-byte size classes
// carved out of 64 KiB blocks avoids malloc's per-chunk header and keeps
// related objects close. Blocks are never returned to the system; a chunk
// freed on another thread joins that thread's free list (memory-safe, it just
// migrates). Sanitizer builds use plain new/delete so ASan sees every object.
#pragma once

#include <cstddef>

namespace kamaelia::detail {

void* slab_allocate(std::size_t n);
void slab_free(void* p, std::size_t n) noexcept;

// False in sanitizer builds, where every object comes from plain new (so a
// test counting allocations sees each coroutine frame there).
bool slab_enabled() noexcept;

// Bytes currently handed out by this thread's slab (for tests and benchmarks).
std::size_t slab_bytes_in_use() noexcept;

} // namespace kamaelia::detail
