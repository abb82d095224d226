#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <iostream>

namespace k = kamaelia;

struct source : k::component {
    int n;
    explicit source(int n) : n(n) {}
    k::task main() override {
        for (int i = 0; i < n; ++i) co_await send(i);
        co_await send(k::producer_finished(), "signal");
    }
};
struct sink : k::component {
    long sum = 0;
    k::task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) sum += *v;
            co_await wait_any();
        }
        std::cout << "sum " << sum << "\n";
    }
};

int main() {
    k::scheduler s;
    auto& a = s.spawn<source>(1000);
    auto& b = s.spawn<sink>();
    k::component::link({a, "outbox"}, {b, "inbox"});
    k::component::link({a, "signal"}, {b, "control"});
    s.run();
}
