// A message: one value of any type travelling through boxes.
//
// Two ownership forms, and the difference is part of the type:
//  - moved: the message owns its value uniquely; small values live inline
//    (no heap allocation), larger ones in one heap object;
//  - immutable shared: kamaelia::shared<T> is a const payload with a
//    non-atomic count, so a backplane fans one message out to many
//    subscribers without copying. A shared payload crossing a thread is
//    given to the other side alone (copied if other owners remain).
//
// recv<T>() on a message holding another type is a clear error
// (kamaelia::type_mismatch), never undefined behaviour.
#pragma once

#include <kamaelia/core/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace kamaelia {

namespace detail {

std::string demangle(const char* mangled);

// One address per payload type: comparing two tags is one pointer compare.
template <class T>
struct type_tag {
    static constexpr char id = 0;
};

template <class T>
struct vtables;

template <class T>
struct is_shared : std::false_type {};

template <class T>
struct shared_node {
    std::uint32_t count;
    T value;
    template <class... A>
    explicit shared_node(A&&... a) : count(1),
                                     value(std::forward<A>(a)...) {}
};

} // namespace detail

// An immutable, reference-counted payload. The count is not atomic: a shared
// value belongs to one scheduler thread at a time (see message::detach()).
template <class T>
class shared {
public:
    using element_type = T;
    shared() = default;
    template <class... A>
    static shared make(A&&... a) {
        shared s;
        s.node_ = new detail::shared_node<T>(std::forward<A>(a)...);
        return s;
    }
    shared(const shared& o) noexcept : node_(o.node_) {
        if (node_) ++node_->count;
    }
    shared(shared&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
    shared& operator=(shared o) noexcept {
        std::swap(node_, o.node_);
        return *this;
    }
    ~shared() { release(); }

    const T& operator*() const noexcept { return node_->value; }
    const T* operator->() const noexcept { return &node_->value; }
    const T* get() const noexcept { return node_ ? &node_->value : nullptr; }
    explicit operator bool() const noexcept { return node_ != nullptr; }
    std::uint32_t use_count() const noexcept { return node_ ? node_->count : 0; }

private:
    friend class message;
    template <class U>
    friend struct detail::vtables;
    void release() noexcept {
        if (node_ && --node_->count == 0) delete node_;
        node_ = nullptr;
    }
    detail::shared_node<T>* node_ = nullptr;
};

namespace detail {
template <class T>
struct is_shared<shared<T>> : std::true_type {};
template <class T>
inline constexpr bool is_shared_v = is_shared<T>::value;
} // namespace detail

template <class T>
shared<T> make_shared_message(T value) {
    return shared<T>::make(std::move(value));
}

class message;

namespace detail {

enum class storage_mode : std::uint8_t { inline_value, boxed, shared_value };

struct message_vtable {
    const void* tag;
    const char* (*type_name)() noexcept;
    storage_mode mode;
    bool trivial;                                // memcpy moves, nothing to destroy
    void (*move)(void* dst, void* src) noexcept; // move-construct dst, leave src destroyed
    void (*destroy)(void* p) noexcept;
    const void* (*payload)(const void* p) noexcept; // address of the T
    void (*to_shared)(message& m);                  // re-home the value as shared<T>
    void (*detach)(message& m);                     // make the payload owned by m alone
};

inline constexpr std::size_t inline_size = 32;

template <class T>
inline constexpr bool fits_inline = sizeof(T) <= inline_size && alignof(T) <= alignof(std::max_align_t) &&
                                    alignof(T) <= 8 && std::is_nothrow_move_constructible_v<T>;

template <class T>
const char* type_name_of() noexcept {
    return typeid(T).name();
}

struct message_access;

} // namespace detail

// The send/recv fast paths are a few instructions each; g++ would not inline
// them into a coroutine body on its own (their slow paths are out of line).
#define KAMAELIA_ALWAYS_INLINE inline __attribute__((always_inline))

class message {
public:
    message() noexcept = default;

    template <class V, class T = std::remove_cvref_t<V>, std::enable_if_t<!std::is_same_v<T, message>, int> = 0>
    message(V&& v) { // NOLINT(google-explicit-constructor): any value is a message
        emplace<T>(std::forward<V>(v));
    }

    message(message&& o) noexcept : vt_(o.vt_) {
        if (vt_) {
            steal(o);
        }
    }
    message& operator=(message&& o) noexcept {
        if (this != &o) {
            reset();
            vt_ = o.vt_;
            if (vt_) steal(o);
        }
        return *this;
    }
    message(const message&) = delete;
    message& operator=(const message&) = delete;
    ~message() { reset(); }

    explicit operator bool() const noexcept { return vt_ != nullptr; }
    bool empty() const noexcept { return vt_ == nullptr; }

    template <class T>
    bool holds() const noexcept {
        return vt_ && vt_->tag == &detail::type_tag<T>::id;
    }
    bool is_shared() const noexcept { return vt_ && vt_->mode == detail::storage_mode::shared_value; }

    // Readable name of the payload's type (for errors and introspection).
    std::string type_name() const;
    // Where the payload lives, whatever its type; stable across moves only
    // in shared form (a bridge recognises its own messages by it).
    const void* payload_address() const noexcept { return vt_ ? vt_->payload(buf_) : nullptr; }

    // The payload, or nullptr if the message holds another type.
    template <class T>
    const T* peek() const noexcept {
        return holds<T>() ? static_cast<const T*>(vt_->payload(buf_)) : nullptr;
    }

    // Moves the value out (copying it only if a shared payload has other owners).
    template <class T>
    T take() {
        check<T>();
        T out = take_unchecked<T>();
        return out;
    }

    // The payload as a shared<T> (wrapping a moved value if needed; no copy).
    template <class T>
    shared<T> take_shared() {
        check<T>();
        if (vt_->mode != detail::storage_mode::shared_value) vt_->to_shared(*this);
        shared<T> s;
        s.node_ = *reinterpret_cast<detail::shared_node<T>**>(buf_);
        vt_ = nullptr;
        return s;
    }

    // Another message sharing this payload (converts this one to shared form).
    message share();

    // Makes this message the payload's only owner, copying a shared payload
    // that has other owners: required before it crosses to another thread.
    void detach() {
        if (vt_ && vt_->mode == detail::storage_mode::shared_value) vt_->detach(*this);
    }

    void reset() noexcept {
        if (vt_) {
            if (!vt_->trivial) vt_->destroy(buf_);
            vt_ = nullptr;
        }
    }

    template <class T>
    [[noreturn]] void throw_mismatch() const {
        throw type_mismatch("recv<" + detail::demangle(typeid(T).name()) + ">: the message holds " +
                            (vt_ ? type_name() : std::string("nothing")));
    }

private:
    template <class T>
    friend struct detail::vtables;
    friend struct detail::message_access;

    template <class T>
    void check() const {
        if (!holds<T>()) throw_mismatch<T>();
    }

    template <class T>
    T take_unchecked();
    template <class T>
    friend class shared;

    template <class T, class V>
    void emplace(V&& v);

    void steal(message& o) noexcept {
        if (vt_->trivial) {
            std::memcpy(buf_, o.buf_, detail::inline_size);
        } else {
            vt_->move(buf_, o.buf_);
        }
        o.vt_ = nullptr;
    }

    const detail::message_vtable* vt_ = nullptr;
    alignas(8) unsigned char buf_[detail::inline_size];
};

namespace detail {

template <class T>
struct vtables {
    static void move_inline(void* d, void* s) noexcept {
        T* src = static_cast<T*>(s);
        ::new (d) T(std::move(*src));
        src->~T();
    }
    static void destroy_inline(void* p) noexcept { static_cast<T*>(p)->~T(); }
    static const void* payload_inline(const void* p) noexcept { return p; }

    static void move_ptr(void* d, void* s) noexcept { std::memcpy(d, s, sizeof(void*)); }
    static void destroy_boxed(void* p) noexcept { delete *static_cast<T**>(p); }
    static const void* payload_boxed(const void* p) noexcept { return *static_cast<T* const*>(p); }

    static void destroy_shared(void* p) noexcept {
        auto* n = *static_cast<shared_node<T>**>(p);
        if (--n->count == 0) delete n;
    }
    static const void* payload_shared(const void* p) noexcept {
        return &(*static_cast<shared_node<T>* const*>(p))->value;
    }

    static void to_shared(message& m) {
        auto* n = new shared_node<T>(m.take_unchecked<T>());
        ::new (m.buf_) shared_node<T>*(n);
        m.vt_ = &shared_vt;
    }
    static void detach_shared(message& m) {
        auto*& n = *reinterpret_cast<shared_node<T>**>(m.buf_);
        if (n->count == 1) return;
        if constexpr (std::is_copy_constructible_v<T>) {
            auto* copy = new shared_node<T>(n->value);
            --n->count;
            n = copy;
        } else {
            throw error("a shared " + demangle(typeid(T).name()) +
                        " with other owners cannot cross threads: the type is not copyable");
        }
    }
    static void no_detach(message&) {}

    static constexpr message_vtable inline_vt{&type_tag<T>::id,
                                              &type_name_of<T>,
                                              storage_mode::inline_value,
                                              std::is_trivially_copyable_v<T>&& std::is_trivially_destructible_v<T>,
                                              &move_inline,
                                              &destroy_inline,
                                              &payload_inline,
                                              &to_shared,
                                              &no_detach};
    static constexpr message_vtable boxed_vt{&type_tag<T>::id, &type_name_of<T>, storage_mode::boxed, false,
                                             &move_ptr,        &destroy_boxed,   &payload_boxed,      &to_shared,
                                             &no_detach};
    static constexpr message_vtable shared_vt{&type_tag<T>::id,
                                              &type_name_of<T>,
                                              storage_mode::shared_value,
                                              false,
                                              &move_ptr,
                                              &destroy_shared,
                                              &payload_shared,
                                              &to_shared,
                                              &detach_shared};
};

} // namespace detail

namespace detail {

// A payload the send/recv fast path moves with a plain copy: it lives inline
// and has nothing to destroy.
template <class T>
inline constexpr bool fast_payload =
    fits_inline<T>&& std::is_trivially_copyable_v<T>&& std::is_trivially_destructible_v<T> && !is_shared_v<T>;

// The fast path's view of an (empty or full) inbox slot. Only for
// fast_payload types; anything else goes through the vtable.
struct message_access {
    // `m` is empty: build the value in place, no temporary message.
    template <class T, class V>
    static KAMAELIA_ALWAYS_INLINE void construct_fast(message& m, V&& v) noexcept {
        static_assert(fast_payload<T>);
        ::new (m.buf_) T(std::forward<V>(v));
        m.vt_ = &vtables<T>::inline_vt;
    }
    // One pointer compare: a T stored inline (a shared or boxed T, or an
    // inline T whose vtable another image instantiated, takes the slow path).
    template <class T>
    static KAMAELIA_ALWAYS_INLINE bool holds_inline(const message& m) noexcept {
        return m.vt_ == &vtables<T>::inline_vt;
    }
    // Copies the value out and leaves `m` empty (nothing to destroy).
    template <class T>
    static KAMAELIA_ALWAYS_INLINE T take_fast(message& m) noexcept {
        static_assert(fast_payload<T>);
        T out = *std::launder(reinterpret_cast<const T*>(m.buf_));
        m.vt_ = nullptr;
        return out;
    }
};

} // namespace detail

template <class T, class V>
void message::emplace(V&& v) {
    if constexpr (detail::is_shared_v<T>) {
        // A shared<U> travels as a shared message of U: recv<U>() and
        // recv<shared<U>>() both accept it.
        using U = typename T::element_type;
        T s(std::forward<V>(v));
        std::memcpy(buf_, &s.node_, sizeof s.node_);
        s.node_ = nullptr;
        vt_ = &detail::vtables<U>::shared_vt;
    } else if constexpr (detail::fits_inline<T>) {
        ::new (buf_) T(std::forward<V>(v));
        vt_ = &detail::vtables<T>::inline_vt;
    } else {
        T* p = new T(std::forward<V>(v));
        std::memcpy(buf_, &p, sizeof p);
        vt_ = &detail::vtables<T>::boxed_vt;
    }
}

template <class T>
T message::take_unchecked() {
    switch (vt_->mode) {
    case detail::storage_mode::inline_value: {
        T* p = std::launder(reinterpret_cast<T*>(buf_));
        T out(std::move(*p));
        if (!vt_->trivial) p->~T();
        vt_ = nullptr;
        return out;
    }
    case detail::storage_mode::boxed: {
        T* p = *reinterpret_cast<T**>(buf_);
        vt_ = nullptr;
        T out(std::move(*p));
        delete p;
        return out;
    }
    case detail::storage_mode::shared_value:
    default: {
        auto* n = *reinterpret_cast<detail::shared_node<T>**>(buf_);
        vt_ = nullptr;
        if (n->count == 1) {
            T out(std::move(n->value));
            delete n;
            return out;
        }
        if constexpr (std::is_copy_constructible_v<T>) {
            --n->count;
            return T(n->value);
        } else {
            vt_ = &detail::vtables<T>::shared_vt; // still ours: report without losing it
            throw error("recv<" + detail::demangle(typeid(T).name()) +
                        ">: the payload is shared and the type cannot be copied; use recv<shared<T>>");
        }
    }
    }
}

} // namespace kamaelia
