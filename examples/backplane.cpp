// backplane: publishers and subscribers that meet by name.
//
// A backplane is a named hub: whatever a publish_to("NEWS") receives, every
// subscribe_to("NEWS") then passes on — one shared payload, never a copy.
// Nobody holds a link to anybody else; a subscriber that comes late simply
// misses what was said before, and a slow one loses its oldest messages
// instead of holding the others up.
//
// Here two news desks publish, two readers subscribe. The desks finish on
// their own; that does not stop the backplane. A timed_shutdown stops it
// after a moment, and that ends every reader.
//
// smoke-expect: reader 1 heard: weather: sunny.*reader 2 heard: sport: 3-1.*backplane NEWS: 4 published, 8 delivered, 0 dropped
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/console_echoer.hpp>
#include <kamaelia/util/data_source.hpp>
#include <kamaelia/util/timed_shutdown.hpp>

#include <chrono>
#include <iostream>

using namespace kamaelia;
using namespace std::chrono_literals;

int main() {
    scheduler s;

    // The hub. Activating it registers the name on this scheduler, so it
    // comes first; a second "NEWS" would fail with service_already_exists.
    backplane news("NEWS");
    news.activate(s);

    // Readers: whatever reaches "NEWS" from now on, printed with a tag.
    auto reader1 = pipeline(subscribe_to("NEWS"), console_echoer("reader 1 heard: "));
    auto reader2 = pipeline(subscribe_to("NEWS"), console_echoer("reader 2 heard: "));
    reader1.activate(s);
    reader2.activate(s);

    // Desks: each publishes a few items and ends (producer_finished).
    auto weather = pipeline(data_source{"weather: sunny\n", "weather: rain later\n"}, publish_to("NEWS"));
    auto sport = pipeline(data_source{"sport: 3-1\n", "sport: a draw\n"}, publish_to("NEWS"));
    weather.activate(s);
    sport.activate(s);

    // In a moment, shutdown_microprocess to the backplane: it ends, and
    // tells every subscriber, so the readers end too and run() returns.
    timed_shutdown later(100ms);
    component::link({later, "signal"}, {news, "control"});
    later.activate(s);

    s.run();
    std::cout << "backplane NEWS: " << news.published() << " published, " << news.delivered() << " delivered, "
              << news.dropped() << " dropped\n";
}
