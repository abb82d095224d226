// mini_axon: the MiniAxon tutorial's last step, in C++.
//
// The tutorial builds Axon from scratch — a microprocess, a scheduler, a
// component with inboxes and outboxes, a postman carrying messages — and
// ends with a producer talking to a consumer. Here the scheduler and
// components come with the library, and a link does the postman's job:
// delivery goes straight into the consumer's inbox.
//
// Then the same two components again, joined by a pipeline, with a
// transformer in between.
//
// smoke-expect: Hello World 1 \(message 1\).*Hello World 5 \(message 5\).*consumer: 5 messages.*HELLO WORLD 3.*consumer: 3 messages
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <cctype>
#include <iostream>
#include <string>

using namespace kamaelia;

// Sends its message `count` times, then says it has finished.
class producer : public component {
public:
    producer(std::string message, int count) : message_(std::move(message)), count_(count) {}

protected:
    task main() override {
        for (int i = 1; i <= count_; ++i) {
            std::string text = message_ + " " + std::to_string(i);
            co_await send(std::move(text)); // waits only if the consumer is full
        }
        co_await send(producer_finished(), "signal");
    }

private:
    std::string message_;
    int count_;
};

// Prints what arrives, counting, until its producer has finished.
class consumer : public component {
protected:
    task main() override {
        int count = 0;
        while (!shutdown_requested()) {
            while (auto data = recv<std::string>()) std::cout << *data << " (message " << ++count << ")\n";
            co_await wait_any(); // sleeps until something arrives
        }
        std::cout << "consumer: " << count << " messages, then " << to_string(shutdown_kind()) << "\n";
    }
};

int main() {
    // By hand: two components, two links, one scheduler.
    scheduler s;
    producer p("Hello World", 5);
    consumer c;
    component::link({p, "outbox"}, {c, "inbox"});   // data
    component::link({p, "signal"}, {c, "control"}); // "I have finished"
    p.activate(s);
    c.activate(s);
    s.run(); // returns when every component has ended

    // The same with a pipeline (which makes those links) and a transformer.
    pipeline(producer("Hello World", 3), pure_transformer([](std::string m) {
                 for (auto& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                 return m;
             }),
             consumer())
        .run();
}
