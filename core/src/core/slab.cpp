#include <kamaelia/core/slab.hpp>

#include <cstdlib>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KAMAELIA_SLAB_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KAMAELIA_SLAB_DISABLED 1
#endif
#endif

namespace kamaelia::detail {

namespace {

constexpr std::size_t granule = 16;
constexpr std::size_t max_small = 1024;
constexpr std::size_t classes = max_small / granule;
constexpr std::size_t block_size = 64 * 1024;

struct free_chunk {
    free_chunk* next;
};

struct thread_slab {
    free_chunk* free[classes] = {};
    unsigned char* cursor = nullptr;
    std::size_t left = 0;
    std::size_t in_use = 0;
    std::vector<void*> blocks;

    ~thread_slab() {
        // Chunks may still be referenced by objects that outlive the thread
        // (another thread frees them later): keep the blocks. They are
        // reclaimed at process exit.
    }

    void* allocate(std::size_t n) {
        std::size_t c = (n + granule - 1) / granule;
        std::size_t bytes = c * granule;
        in_use += bytes;
        if (free_chunk* f = free[c - 1]) {
            free[c - 1] = f->next;
            return f;
        }
        if (left < bytes) {
            void* b = std::malloc(block_size);
            if (!b) throw std::bad_alloc();
            blocks.push_back(b);
            cursor = static_cast<unsigned char*>(b);
            left = block_size;
        }
        void* p = cursor;
        cursor += bytes;
        left -= bytes;
        return p;
    }
    void release(void* p, std::size_t n) noexcept {
        std::size_t c = (n + granule - 1) / granule;
        in_use -= c * granule;
        auto* f = static_cast<free_chunk*>(p);
        f->next = free[c - 1];
        free[c - 1] = f;
    }
};

thread_local thread_slab tls_slab;

} // namespace

void* slab_allocate(std::size_t n) {
#ifdef KAMAELIA_SLAB_DISABLED
    return ::operator new(n);
#else
    if (n == 0) n = 1;
    if (n > max_small) return ::operator new(n);
    return tls_slab.allocate(n);
#endif
}

void slab_free(void* p, std::size_t n) noexcept {
    if (!p) return;
#ifdef KAMAELIA_SLAB_DISABLED
    ::operator delete(p);
#else
    if (n == 0) n = 1;
    if (n > max_small) {
        ::operator delete(p);
        return;
    }
    tls_slab.release(p, n);
#endif
}

bool slab_enabled() noexcept {
#ifdef KAMAELIA_SLAB_DISABLED
    return false;
#else
    return true;
#endif
}

std::size_t slab_bytes_in_use() noexcept {
#ifdef KAMAELIA_SLAB_DISABLED
    return 0;
#else
    return tls_slab.in_use;
#endif
}

} // namespace kamaelia::detail
