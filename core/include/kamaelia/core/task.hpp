// The coroutine types of a component.
//
// task        - the body of a component, `task main() override`. It starts
//               suspended; the scheduler resumes it; when it ends the
//               component has finished (an escaped exception is kept and
//               reported by the scheduler, never lost).
// subtask<T>  - a nested coroutine awaited by its caller, Kamaelia's
//               WaitComplete: `co_await read_line()`. The caller resumes
//               exactly when it ends, with its value or its exception.
//
// Frames come from a per-thread slab (no malloc header per frame).
#pragma once

#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/slab.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace kamaelia {

namespace detail {

struct promise_base {
    component* comp = nullptr; // the component whose body this runs in
    std::exception_ptr error;

    static void* operator new(std::size_t n) { return slab_allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { slab_free(p, n); }

    void unhandled_exception() noexcept { error = std::current_exception(); }
};

// Lets an awaiter find the component from any of our coroutine handles.
template <class P>
component* component_of(std::coroutine_handle<P> h) noexcept {
    if constexpr (std::is_base_of_v<promise_base, P>) {
        return h.promise().comp;
    } else {
        return nullptr;
    }
}

void on_task_final(component* c) noexcept; // scheduler: the body ended
void set_current(component* c, std::coroutine_handle<> h) noexcept;

} // namespace detail

class task {
public:
    struct promise_type : detail::promise_base {
        promise_type() = default;
        // A member coroutine receives its object first: that is the component.
        template <class C, class... A>
        requires std::is_base_of_v<component, std::remove_cvref_t<C>>
        explicit promise_type(C& self, A&...) noexcept { comp = &self; }

        task get_return_object() noexcept { return task(std::coroutine_handle<promise_type>::from_promise(*this)); }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() noexcept { return false; }
            void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
                detail::on_task_final(h.promise().comp);
            }
            void await_resume() noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
    };

    task() noexcept = default;
    task(task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            if (h_) h_.destroy();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    ~task() {
        if (h_) h_.destroy();
    }

    // Hands the frame over (the component keeps it from then on).
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, nullptr); }

private:
    explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <class T>
struct subtask_promise_value {
    std::optional<T> value;
    template <class V>
    void return_value(V&& v) {
        value.emplace(std::forward<V>(v));
    }
};
template <>
struct subtask_promise_value<void> {
    void return_void() noexcept {}
};

} // namespace detail

template <class T>
class [[nodiscard]] subtask {
public:
    struct promise_type : detail::promise_base, detail::subtask_promise_value<T> {
        std::coroutine_handle<> continuation;
        bool inline_run = false; // the caller is still inside await_suspend

        subtask get_return_object() noexcept {
            return subtask(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
                auto& p = h.promise();
                if (p.inline_run) return std::noop_coroutine(); // back into the caller's await_suspend
                detail::set_current(p.comp, p.continuation);
                return p.continuation; // one bounded hop back to the caller
            }
            void await_resume() noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
    };

    subtask(subtask&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    subtask& operator=(subtask&&) = delete;
    ~subtask() {
        if (h_) h_.destroy();
    }

    struct awaiter {
        std::coroutine_handle<promise_type> h;
        bool await_ready() noexcept { return false; }
        // Runs the sub-task inline first: if it completes without waiting
        // the caller goes on without ever suspending, so a million
        // sequential sub-task calls never deepen the stack.
        template <class P>
        bool await_suspend(std::coroutine_handle<P> caller) {
            auto& p = h.promise();
            p.comp = detail::component_of(caller);
            p.continuation = caller;
            p.inline_run = true;
            detail::set_current(p.comp, h);
            h.resume();
            p.inline_run = false;
            if (h.done()) {
                detail::set_current(p.comp, caller);
                return false;
            }
            return true;
        }
        T await_resume() {
            auto& p = h.promise();
            if (p.error) std::rethrow_exception(p.error);
            if constexpr (!std::is_void_v<T>) return std::move(*p.value);
        }
    };
    awaiter operator co_await() && noexcept { return awaiter{h_}; }
    awaiter operator co_await() & noexcept { return awaiter{h_}; }

private:
    explicit subtask(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    std::coroutine_handle<promise_type> h_;
};

} // namespace kamaelia
