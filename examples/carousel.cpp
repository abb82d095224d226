// carousel: one child at a time, made on demand. Each message on the
// carousel's "next" inbox is given to a factory that builds the child; when
// that child ends by itself the carousel sends "NEXT" on "requestNext" to
// ask for more. A new "next" while a child runs stops that child first.
//
// Joined to a chooser that answers each "NEXT" with the next item of a list
// (Kamaelia's JoinChooserToCarousel), it plays a playlist: here, "tracks"
// that are just counted-out lines.
//
// smoke-expect: intro: 1/2.*intro: 2/2.*main theme: 3/3.*credits: 1/1.*playlist over: producer_finished
#include <kamaelia/chassis/carousel.hpp>
#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

using namespace kamaelia;

struct track {
    std::string title;
    int length;
};

// Plays one track: a line per beat, then ends of its own accord.
class player : public component {
public:
    explicit player(track t) : t_(std::move(t)) {}

protected:
    task main() override {
        for (int i = 1; i <= t_.length && !shutdown_requested(); ++i) {
            std::string line = t_.title + ": " + std::to_string(i) + "/" + std::to_string(t_.length);
            co_await send(std::move(line));
        }
    }

private:
    track t_;
};

// Answers each "NEXT" with the next track; at the end of the list, finishes.
class chooser : public component {
public:
    explicit chooser(std::vector<track> l) : list_(std::move(l)) {}

protected:
    task main() override {
        std::size_t i = 0;
        for (;;) {
            while (recv<std::string>()) {
                if (i == list_.size()) {
                    co_await send(producer_finished(), "signal");
                    co_return;
                }
                track t = list_[i++];
                co_await send(std::move(t));
            }
            co_await wait_for("inbox");
        }
    }

private:
    std::vector<track> list_;
};

class printer : public component {
protected:
    task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>()) std::cout << *line << "\n";
            co_await wait_any();
        }
        std::cout << "playlist over: " << to_string(shutdown_kind()) << std::endl;
    }
};

int main() {
    auto play = [](message& m) { return std::make_unique<player>(m.take<track>()); };
    graphline jukebox(
        {
            {{"CHOOSER", "outbox"}, {"CAROUSEL", "next"}},
            {{"CAROUSEL", "requestNext"}, {"CHOOSER", "inbox"}},
            {{"CHOOSER", "signal"}, {"CAROUSEL", "control"}},
            {{"CAROUSEL", "outbox"}, {"self", "outbox"}},
            {{"CAROUSEL", "signal"}, {"self", "signal"}},
        },
        named("CHOOSER", chooser({{"intro", 2}, {"main theme", 3}, {"credits", 1}})),
        named("CAROUSEL", carousel(play, /*make_first_request=*/true)));
    pipeline(std::move(jukebox), printer()).run();
}
