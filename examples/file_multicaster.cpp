// The tutorial's first real system, the file multicaster (spec section 7.3):
//
//   pipeline(file_reader → packetiser → multicast_sender)          sender
//   pipeline(multicast_receiver → depacketiser → report)           receiver
//
// made reliable: every datagram carries a sequence number, a CRC and the
// file's SHA-256, the file goes round a data carousel twice, and the
// receiver writes nothing it has not verified. Both ends run here on one
// scheduler, on the loopback interface only (127.0.0.1, TTL 0). The reader
// is paced by a timer (2 MB/s), never by spinning on the clock.
//
// smoke-expect: received 588890 bytes, SHA-256 verified
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/multicast/depacketiser.hpp>
#include <kamaelia/multicast/file_reader.hpp>
#include <kamaelia/multicast/packetiser.hpp>
#include <kamaelia/net/multicast_receiver.hpp>
#include <kamaelia/net/multicast_sender.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

using namespace kamaelia;
namespace km = kamaelia::multicast;

// Prints what arrives (a real receiver would write it to disk).
class report : public component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto f = recv<km::received_file>())
                std::cout << "received " << f->data.size() << " bytes, SHA-256 verified" << std::endl;
            co_await wait_any();
        }
    }
};

int main() {
    std::string path = "/tmp/kamaelia_example_multicast_" + std::to_string(::getpid());
    {
        std::ofstream out(path, std::ios::binary);
        for (int i = 0; i < 100000; ++i) out << i << ' ';
    }
    multicast_options group; // 224.168.2.9 on 127.0.0.1, TTL 0: this host only
    group.port = static_cast<std::uint16_t>(20000 + ::getpid() % 20000); // not 1600: tests run side by side
    auto meta = km::describe_file(path, static_cast<std::uint16_t>(km::chunk_size_for(1400)));

    pipeline receiver{multicast_receiver(group), km::depacketiser(), report()};
    pipeline sender{km::file_reader({.path = path, .chunk_size = meta.chunk_size, .rate = 2'000'000, .repeat = 2}),
                    km::packetiser(meta), multicast_sender(group)};
    receiver.activate();
    sender.activate();
    scheduler::default_scheduler().run();
    std::remove(path.c_str());
}
