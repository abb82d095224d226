// Software transactional memory for sharing state between components and
// threads (Axon's STM: Store, Value, Collection), done right.
//
//   kamaelia::stm::store<int> accounts;
//   for (;;) {                                   // a component: never blocks
//       try {
//           auto c = accounts.checkout({"alice", "bob"});
//           c["alice"].set(*c["alice"] - 10);
//           c["bob"].set(*c["bob"] + 10);
//           c.commit();                          // all or nothing
//           break;
//       } catch (const kamaelia::stm::concurrent_update&) {  // someone committed first: redo
//       } catch (const kamaelia::stm::busy_retry&) {         // a lock was held: redo later
//       }
//       co_await yield();
//   }
//
//   accounts.atomically({"alice", "bob"}, [](auto& c) { ... });  // threads: blocks, retries
//
// Keys are created on first use with version 0 and a default-constructed
// value. A check-out is a private copy of each key with its version; edits
// are local; commit compares every stored version with the copy's and fails
// with concurrent_update, writing nothing, if any is newer. Otherwise it
// writes back - and bumps the version of - only the keys that were modified:
// keys that were only read are validated but not rewritten, so readers do
// not make writers fail (the original re-wrote every key of a collection).
// The committed copy takes the new versions and can be edited and committed
// again.
//
// Locking is per key (taken in key order, so multi-key commits cannot
// deadlock), not one lock per store. By default every operation only tries
// the locks and throws busy_retry if one is held, because a component must
// never block; lock_mode::block waits instead (for threads). wait_for_change()
// is the "retry when something changes" primitive for threads.
//
// T must be copyable (the store keeps its own copy). Thread-safe.
#pragma once

#include <kamaelia/core/errors.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia::stm {

// A stored version was newer than the checked-out copy: nothing was written.
class concurrent_update : public kamaelia::error {
public:
    using error::error;
};

// A lock was held by someone else: retry; the transaction is still valid.
class busy_retry : public kamaelia::error {
public:
    using error::error;
};

enum class lock_mode : std::uint8_t {
    try_lock, // throw busy_retry rather than wait (components)
    block,    // wait for the lock (threads)
};

template <class T>
class store;
template <class T>
class collection;

namespace detail {

template <class T>
struct cell {
    std::mutex lock;
    std::uint64_t version = 0;
    T value{};
};

} // namespace detail

// A private, versioned copy of one key.
template <class T>
class value {
public:
    const std::string& key() const noexcept { return key_; }
    // The stored version this copy is based on.
    std::uint64_t version() const noexcept { return version_; }
    const T& get() const noexcept { return value_; }
    const T& operator*() const noexcept { return value_; }
    const T* operator->() const noexcept { return &value_; }
    // Local edits (nothing is shared until commit).
    T& edit() noexcept {
        modified_ = true;
        return value_;
    }
    void set(T v) {
        value_ = std::move(v);
        modified_ = true;
    }
    bool modified() const noexcept { return modified_; }

    // Writes the copy back if it was modified (validating it either way).
    // Throws concurrent_update, or busy_retry in try_lock mode.
    void commit(lock_mode mode = lock_mode::try_lock);

private:
    friend class store<T>;
    friend class collection<T>;
    value(store<T>* s, detail::cell<T>* c, std::string key) : store_(s), cell_(c), key_(std::move(key)) {}

    store<T>* store_;
    detail::cell<T>* cell_;
    std::string key_;
    std::uint64_t version_ = 0;
    T value_{};
    bool modified_ = false;
};

// Private copies of several keys, checked out together and committed all or
// nothing.
template <class T>
class collection {
public:
    // The copy of `key` (bad_state if it was not checked out).
    value<T>& operator[](std::string_view key) { return find(key); }
    const value<T>& operator[](std::string_view key) const { return const_cast<collection*>(this)->find(key); }
    bool contains(std::string_view key) const noexcept {
        for (const auto& v : values_)
            if (v.key_ == key) return true;
        return false;
    }
    std::vector<std::string> keys() const {
        std::vector<std::string> k;
        for (const auto& v : values_) k.push_back(v.key_);
        return k;
    }
    std::size_t size() const noexcept { return values_.size(); }
    auto begin() noexcept { return values_.begin(); }
    auto end() noexcept { return values_.end(); }
    auto begin() const noexcept { return values_.begin(); }
    auto end() const noexcept { return values_.end(); }

    // Validates every key, writes only the modified ones; all or nothing.
    void commit(lock_mode mode = lock_mode::try_lock);

private:
    friend class store<T>;
    explicit collection(store<T>* s) : store_(s) {}
    value<T>& find(std::string_view key) {
        for (auto& v : values_)
            if (v.key_ == key) return v;
        throw bad_state("stm: key \"" + std::string(key) + "\" is not part of this check-out");
    }

    store<T>* store_;
    std::vector<value<T>> values_; // sorted by key: the lock order
};

template <class T>
class store {
public:
    store() = default;
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    // A private copy of one key (created with version 0 on first use).
    value<T> checkout(std::string_view key, lock_mode mode = lock_mode::try_lock);
    // Private copies of several keys, taken atomically (duplicates count once).
    collection<T> checkout(std::vector<std::string> keys, lock_mode mode = lock_mode::try_lock);
    collection<T> checkout(std::initializer_list<std::string_view> keys, lock_mode mode = lock_mode::try_lock) {
        return checkout(std::vector<std::string>(keys.begin(), keys.end()), mode);
    }

    // Threads: check out (blocking), run fn(collection&), commit; redo on
    // concurrent_update until it commits. Returns what fn returns.
    template <class F>
    auto atomically(std::vector<std::string> keys, F&& fn);

    // Threads: blocks until a key of `c` has a stored version other than the
    // copy's, or the timeout passes (false).
    bool wait_for_change(const collection<T>& c, std::chrono::nanoseconds timeout);
    bool wait_for_change(const value<T>& v, std::chrono::nanoseconds timeout);

    // Keys ever used.
    std::vector<std::string> keys() const {
        std::shared_lock<std::shared_mutex> lk(map_lock_);
        std::vector<std::string> k;
        for (const auto& [name, c] : cells_) k.push_back(name);
        return k;
    }
    // Commits that wrote something (for tests and statistics).
    std::uint64_t commits() const {
        std::lock_guard<std::mutex> lk(change_lock_);
        return generation_;
    }

private:
    friend class value<T>;
    friend class collection<T>;

    detail::cell<T>* cell_for(std::string_view key, lock_mode mode);
    static bool lock_cell(detail::cell<T>* c, lock_mode mode) {
        if (mode == lock_mode::block) {
            c->lock.lock();
            return true;
        }
        return c->lock.try_lock();
    }
    // Locks cells in order; on a busy one releases those taken and throws.
    static void lock_all(const std::vector<value<T>*>& vs, lock_mode mode);
    static void unlock_all(const std::vector<value<T>*>& vs) noexcept {
        for (auto* v : vs) v->cell_->lock.unlock();
    }
    // Locks held: validate all, write the modified ones.
    void commit_locked(const std::vector<value<T>*>& vs);
    // Locks, commits, unlocks (also when the commit throws).
    void commit_values(const std::vector<value<T>*>& vs, lock_mode mode);
    bool changed(const value<T>& v) {
        std::lock_guard<std::mutex> lk(v.cell_->lock);
        return v.cell_->version != v.version_;
    }

    mutable std::shared_mutex map_lock_;
    std::map<std::string, std::unique_ptr<detail::cell<T>>, std::less<>> cells_;
    mutable std::mutex change_lock_;
    std::condition_variable change_cv_;
    std::uint64_t generation_ = 0; // bumped by every commit that writes
};

// ---- implementation -----------------------------------------------------------

template <class T>
detail::cell<T>* store<T>::cell_for(std::string_view key, lock_mode mode) {
    {
        std::shared_lock<std::shared_mutex> lk(map_lock_, std::defer_lock);
        if (mode == lock_mode::block) {
            lk.lock();
        } else if (!lk.try_lock()) {
            throw busy_retry("stm: the store is busy");
        }
        auto it = cells_.find(key);
        if (it != cells_.end()) return it->second.get();
    }
    std::unique_lock<std::shared_mutex> lk(map_lock_, std::defer_lock);
    if (mode == lock_mode::block) {
        lk.lock();
    } else if (!lk.try_lock()) {
        throw busy_retry("stm: the store is busy");
    }
    auto& slot = cells_[std::string(key)]; // cells never go away: pointers stay valid
    if (!slot) slot = std::make_unique<detail::cell<T>>();
    return slot.get();
}

template <class T>
void store<T>::lock_all(const std::vector<value<T>*>& vs, lock_mode mode) {
    for (std::size_t i = 0; i < vs.size(); ++i) {
        if (!lock_cell(vs[i]->cell_, mode)) {
            for (std::size_t j = 0; j < i; ++j) vs[j]->cell_->lock.unlock();
            throw busy_retry("stm: key \"" + vs[i]->key_ + "\" is locked");
        }
    }
}

template <class T>
void store<T>::commit_locked(const std::vector<value<T>*>& vs) {
    for (auto* v : vs) {
        if (v->cell_->version != v->version_)
            throw concurrent_update("stm: key \"" + v->key_ + "\" was updated (version " +
                                    std::to_string(v->cell_->version) + ", this copy has " +
                                    std::to_string(v->version_) + ")");
    }
    bool wrote = false;
    for (auto* v : vs) {
        if (!v->modified_) continue; // only read: validated, not rewritten
        v->cell_->value = v->value_;
        v->version_ = ++v->cell_->version;
        v->modified_ = false;
        wrote = true;
    }
    if (wrote) {
        std::lock_guard<std::mutex> lk(change_lock_);
        ++generation_;
        change_cv_.notify_all();
    }
}

template <class T>
value<T> store<T>::checkout(std::string_view key, lock_mode mode) {
    detail::cell<T>* c = cell_for(key, mode);
    value<T> v(this, c, std::string(key));
    if (!lock_cell(c, mode)) throw busy_retry("stm: key \"" + v.key_ + "\" is locked");
    std::lock_guard<std::mutex> lk(c->lock, std::adopt_lock);
    v.version_ = c->version;
    v.value_ = c->value;
    return v;
}

template <class T>
collection<T> store<T>::checkout(std::vector<std::string> keys, lock_mode mode) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    collection<T> out(this);
    out.values_.reserve(keys.size());
    for (auto& k : keys) {
        detail::cell<T>* c = cell_for(k, mode);
        out.values_.push_back(value<T>(this, c, std::move(k)));
    }
    std::vector<value<T>*> vs;
    for (auto& v : out.values_) vs.push_back(&v);
    lock_all(vs, mode);
    for (auto* v : vs) {
        v->version_ = v->cell_->version;
        try {
            v->value_ = v->cell_->value;
        } catch (...) {
            unlock_all(vs);
            throw;
        }
    }
    unlock_all(vs);
    return out;
}

template <class T>
void store<T>::commit_values(const std::vector<value<T>*>& vs, lock_mode mode) {
    lock_all(vs, mode);
    try {
        commit_locked(vs);
    } catch (...) {
        unlock_all(vs);
        throw;
    }
    unlock_all(vs);
}

template <class T>
void value<T>::commit(lock_mode mode) {
    store_->commit_values({this}, mode);
}

template <class T>
void collection<T>::commit(lock_mode mode) {
    std::vector<value<T>*> vs;
    vs.reserve(values_.size());
    for (auto& v : values_) vs.push_back(&v);
    store_->commit_values(vs, mode);
}

template <class T>
template <class F>
auto store<T>::atomically(std::vector<std::string> keys, F&& fn) {
    for (;;) {
        collection<T> c = checkout(keys, lock_mode::block);
        if constexpr (std::is_void_v<decltype(fn(c))>) {
            fn(c);
            try {
                c.commit(lock_mode::block);
                return;
            } catch (const concurrent_update&) {}
        } else {
            auto r = fn(c);
            try {
                c.commit(lock_mode::block);
                return r;
            } catch (const concurrent_update&) {}
        }
    }
}

template <class T>
bool store<T>::wait_for_change(const collection<T>& c, std::chrono::nanoseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lk(change_lock_);
    for (;;) {
        std::uint64_t seen = generation_;
        lk.unlock();
        bool any = false;
        for (const auto& v : c)
            if (changed(v)) any = true;
        lk.lock();
        if (any) return true;
        // A commit between the check and here bumped the generation: look again.
        if (!change_cv_.wait_until(lk, deadline, [&] { return generation_ != seen; })) return false;
    }
}

template <class T>
bool store<T>::wait_for_change(const value<T>& v, std::chrono::nanoseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lk(change_lock_);
    for (;;) {
        std::uint64_t seen = generation_;
        lk.unlock();
        bool any = changed(v);
        lk.lock();
        if (any) return true;
        if (!change_cv_.wait_until(lk, deadline, [&] { return generation_ != seen; })) return false;
    }
}

} // namespace kamaelia::stm
