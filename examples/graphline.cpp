// graphline: named children wired by an explicit map of links, for shapes a
// pipeline cannot make (a component with two outputs, here).
//
// "self" (or "") in the map is the graphline itself: {"self", "inbox"} as a
// source passes the graphline's inbox into a child, {"self", "outbox"} as a
// destination surfaces a child's outbox. Boxes named on self that do not
// exist yet ("rejected" below) are created on that graphline. A graphline
// whose control is not linked forwards every control message to its
// children, and says producer_finished (or the shutdown it received) once
// its last child has ended.
//
// smoke-expect: 1: apples.*2: pears.*done: 2 kept, 1 rejected
#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <iostream>
#include <string>
#include <vector>

using namespace kamaelia;

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

// Two outputs: lines worth keeping on "outbox", blank ones on "rejected".
class blank_filter : public component {
public:
    blank_filter() { declare_outbox("rejected", "lines with nothing but spaces"); }

protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                if (line->find_first_not_of(' ') == std::string::npos) {
                    co_await send(std::move(*line), "rejected");
                } else {
                    co_await send(std::move(*line));
                }
            }
            co_await wait_any();
        }
        forward_shutdown();
    }
};

// Numbers the lines it passes on.
class numberer : public component {
protected:
    task main() override {
        int n = 0;
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                std::string out = std::to_string(++n) + ": " + *line;
                co_await send(std::move(out));
            }
            co_await wait_any();
        }
        forward_shutdown();
    }
};

// Prints what it gets (in quotes, if asked, to see blanks) and counts it.
class printer : public component {
public:
    printer(std::string prefix, int& count, bool quote = false)
        : prefix_(std::move(prefix)),
          count_(&count),
          quote_(quote) {}

protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                std::cout << prefix_ << (quote_ ? "\"" + *line + "\"" : *line) << "\n";
                ++*count_;
            }
            co_await wait_any();
        }
        forward_shutdown();
    }

private:
    std::string prefix_;
    int* count_;
    bool quote_;
};

int main() {
    int kept = 0, rejected = 0;

    // A reusable part: clean and number lines; two outputs.
    graphline text(
        {
            {{"self", "inbox"}, {"CLEAN", "inbox"}},
            {{"CLEAN", "outbox"}, {"NUMBER", "inbox"}},
            {{"CLEAN", "rejected"}, {"self", "rejected"}}, // creates text."rejected"
            {{"CLEAN", "signal"}, {"NUMBER", "control"}},
            {{"NUMBER", "outbox"}, {"self", "outbox"}},
        },
        named("CLEAN", blank_filter()), named("NUMBER", numberer()));

    // The whole program: another graphline, with the first one inside.
    graphline program(
        {
            {{"SOURCE", "outbox"}, {"TEXT", "inbox"}},
            {{"SOURCE", "signal"}, {"TEXT", "control"}},
            {{"TEXT", "outbox"}, {"OUT", "inbox"}},
            {{"TEXT", "rejected"}, {"REJECTS", "inbox"}},
            {{"TEXT", "signal"}, {"OUT", "control"}},
            {{"OUT", "signal"}, {"REJECTS", "control"}},
        },
        named("SOURCE", lines({"apples", "  ", "pears"})), named("TEXT", std::move(text)),
        named("OUT", printer("", kept)), named("REJECTS", printer("rejected: ", rejected, true)));
    program.run();
    std::cout << "done: " << kept << " kept, " << rejected << " rejected" << std::endl;
}
