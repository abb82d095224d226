// par: children that run side by side. Everything sent to par goes to every
// child (one shared payload, no copies on the way); their outputs merge on
// par's outbox. Control reaches every child, and par says it has finished
// once, when the last child has ended (the original let each child's end
// message out on its own, shutting down what followed par too early).
//
// smoke-expect: square of 3 = 9.*half of 4 = 2.*printer: 8 lines, then producer_finished
#include <kamaelia/chassis/par.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

using namespace kamaelia;

class numbers : public component {
public:
    explicit numbers(std::vector<int> v) : values_(std::move(v)) {}

protected:
    task main() override {
        for (int v : values_) co_await send(v);
        co_await send(producer_finished(), "signal");
    }

private:
    std::vector<int> values_;
};

// Describes each number it gets, one way.
class describe : public component {
public:
    describe(std::string what, std::function<int(int)> f) : what_(std::move(what)), f_(std::move(f)) {}

protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto n = recv<int>()) {
                std::string line = what_ + " of " + std::to_string(*n) + " = " + std::to_string(f_(*n));
                co_await send(std::move(line));
            }
            co_await wait_any();
        }
        forward_shutdown();
    }

private:
    std::string what_;
    std::function<int(int)> f_;
};

class printer : public component {
protected:
    task main() override {
        int lines = 0;
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                std::cout << *line << "\n";
                ++lines;
            }
            co_await wait_any();
        }
        // With the original PAR, the first child's producer_finished would
        // have ended the printer early, before the other child's lines.
        std::cout << "printer: " << lines << " lines, then " << to_string(shutdown_kind()) << std::endl;
    }
};

int main() {
    pipeline(numbers({2, 3, 4, 5}),
             par(describe("square", [](int n) { return n * n; }), describe("half", [](int n) { return n / 2; })),
             printer())
        .run();
}
