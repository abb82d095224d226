// pipeline: components in a row, each one's outbox feeding the next one's
// inbox, each one's signal the next one's control. The hello world of
// Kamaelia: a producer, two transformers and a consumer.
//
// A pipeline is used like any component, so pipelines nest; when the
// producer says producer_finished, the message travels down the row and
// every stage ends after its input, then the pipeline ends.
//
// smoke-expect: HELLO, WORLD!.*FROM A PIPELINE!.*printer: 3 lines, then producer_finished
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <cctype>
#include <iostream>
#include <string>
#include <vector>

using namespace kamaelia;

// A producer: sends its lines, then says it has finished.
class lines : public component {
public:
    explicit lines(std::vector<std::string> l) : lines_(std::move(l)) {}

protected:
    task main() override {
        for (auto& l : lines_) co_await send(l);
        co_await send(producer_finished(), "signal");
    }

private:
    std::vector<std::string> lines_;
};

// A transformer: the canonical loop. Drain the inbox, then sleep until
// something arrives; end (passing the end message on) when told.
class upper : public component {
protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                for (auto& c : *line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                co_await send(std::move(*line));
            }
            co_await wait_any();
        }
        forward_shutdown();
    }
};

class exclaim : public component {
protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                std::string out = *line + "!";
                co_await send(std::move(out));
            }
            co_await wait_any();
        }
        forward_shutdown();
    }
};

// A consumer: prints what it gets.
class printer : public component {
protected:
    task main() override {
        int n = 0;
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                std::cout << *line << "\n";
                ++n;
            }
            co_await wait_any();
        }
        std::cout << "printer: " << n << " lines, then " << to_string(shutdown_kind()) << std::endl;
    }
};

int main() {
    // The middle stage is itself a pipeline.
    pipeline(lines({"hello, world", "from a pipeline", "goodbye"}), pipeline(upper(), exclaim()), printer()).run();
}
