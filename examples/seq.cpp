// seq: a protocol in stages. Each stage is a component that runs, ends, and
// hands the conversation to the next one; seq's inbox always feeds the stage
// that runs, and the stage's outbox always comes out of seq.
//
// The stages share typed state through a std::shared_ptr (it is yours, not
// seq's). What the user typed ahead is not lost: a stage's unread input
// moves to the next stage. And control reaches the stage that runs, so when
// the connection goes away (producer_finished on seq's control) the stage
// waiting for input ends, and seq with it, without starting later stages.
//
// smoke-expect: > welcome, alice.*> alice said hello.*> bye alice, 2 lines.*> welcome, bob.*connection closed; goodbye stage never ran
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/chassis/seq.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using namespace kamaelia;

// What the stages of one session share.
struct session {
    std::string name;
    int lines = 0;
};

// Plays a user typing ahead: sends all its lines at once. If `hang_up`, it
// then, a little later, says producer_finished, as a socket does when the
// peer goes away.
class user : public component {
public:
    user(std::vector<std::string> l, bool hang_up) : lines_(std::move(l)), hang_up_(hang_up) {}

protected:
    task main() override {
        for (auto& l : lines_) co_await send(l);
        if (hang_up_) {
            co_await sleep_for(std::chrono::milliseconds(10));
            co_await send(producer_finished(), "signal");
        }
    }

private:
    std::vector<std::string> lines_;
    bool hang_up_;
};

// Stage 1: the first line is the user's name.
class login : public component {
public:
    explicit login(std::shared_ptr<session> s) : s_(std::move(s)) {}

protected:
    task main() override {
        while (!shutdown_requested()) {
            if (auto name = recv<std::string>()) {
                s_->name = *name;
                std::string hello = "welcome, " + s_->name;
                co_await send(std::move(hello));
                co_return; // the next stage takes over
            }
            co_await wait_any();
        }
    }

private:
    std::shared_ptr<session> s_;
};

// Stage 2: chat until "bye".
class chat : public component {
public:
    explicit chat(std::shared_ptr<session> s) : s_(std::move(s)) {}

protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) {
                if (*line == "bye") co_return;
                ++s_->lines;
                std::string echo = s_->name + " said " + *line;
                co_await send(std::move(echo));
            }
            co_await wait_any();
        }
        // Told to stop while waiting for input (the connection closed).
        std::string note = "(connection closed; goodbye stage never ran)";
        co_await send(std::move(note));
    }

private:
    std::shared_ptr<session> s_;
};

// Stage 3: says goodbye with what the session learnt.
class goodbye : public component {
public:
    explicit goodbye(std::shared_ptr<session> s) : s_(std::move(s)) {}

protected:
    task main() override {
        std::string bye = "bye " + s_->name + ", " + std::to_string(s_->lines) + " lines";
        co_await send(std::move(bye));
    }

private:
    std::shared_ptr<session> s_;
};

class printer : public component {
protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) std::cout << "> " << *line << "\n";
            co_await wait_any();
        }
        std::cout << "(seq said " << to_string(shutdown_kind()) << ")" << std::endl;
    }
};

// One session: the seq in a pipeline, between the user and the printer.
// The last stage is made by a factory, only when its turn comes.
pipeline session_for(std::vector<std::string> typed, bool hang_up) {
    auto state = std::make_shared<session>();
    return pipeline(user(std::move(typed), hang_up), seq(login(state), chat(state), [state] { return goodbye(state); }),
                    printer());
}

int main() {
    // Everything typed at once; the chat stage reads what login left.
    session_for({"alice", "hello", "again", "bye"}, false).run();
    // Bob hangs up while the chat stage waits for him.
    session_for({"bob"}, true).run();
}
