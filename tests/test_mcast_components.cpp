// The file multicaster's components: the file reader's pacing on a manual
// clock, loss and reordering injected between packetiser and depacketiser,
// the carousel healing loss and serving a late receiver, and the UDP
// components on the loopback interface (127.0.0.1, TTL 0) only.
#include <kamaelia/multicast/depacketiser.hpp>
#include <kamaelia/multicast/file_reader.hpp>
#include <kamaelia/multicast/packetiser.hpp>
#include <kamaelia/net/multicast_receiver.hpp>
#include <kamaelia/net/multicast_sender.hpp>
#include <kamaelia/net/multicast_transceiver.hpp>

#include "fixture.hpp"

#include "mcast_support.hpp"

#include <catch2/catch.hpp>

#include <asio/ip/udp.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>

using namespace kamaelia;
using namespace kamaelia::multicast;
using namespace std::chrono_literals;

namespace {

using test::random_bytes;

// A file in the temporary directory, removed at the end of the test.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string& data) {
        char name[] = "/tmp/kamaelia_mcast_XXXXXX";
        int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
        ::close(fd);
        path = name;
    }
    ~temp_file() { std::remove(path.c_str()); }
};

void chain(component& a, component& b) {
    component::link({a, "outbox"}, {b, "inbox"});
    component::link({a, "signal"}, {b, "control"});
}

// Between the packetiser and the depacketiser: drops the datagrams `drop`
// picks (by their index in the whole stream, all passes counted) and
// reverses the order within every batch and of every pair of batches.
struct lossy : component {
    std::function<bool(std::uint64_t)> drop;
    bool reorder = false;
    std::uint64_t seen = 0, dropped = 0;
    task main() override {
        std::optional<datagram_batch> held;
        for (;;) {
            while (auto b = recv<datagram_batch>()) {
                std::vector<std::string_view> keep;
                for (std::size_t i = 0; i < b->size(); ++i, ++seen) {
                    if (drop && drop(seen)) {
                        ++dropped;
                        continue;
                    }
                    keep.push_back((*b)[i]);
                }
                if (reorder) std::reverse(keep.begin(), keep.end());
                datagram_batch out;
                for (auto d : keep) out.add(d);
                if (!reorder) {
                    co_await send(std::move(out));
                } else if (held) {
                    co_await send(std::move(out)); // the later batch first
                    datagram_batch h = std::move(*held);
                    held.reset();
                    co_await send(std::move(h));
                } else {
                    held = std::move(out);
                }
            }
            if (shutdown_requested()) break;
            co_await wait_any();
        }
        if (held) {
            datagram_batch h = std::move(*held);
            co_await send(std::move(h));
        }
        forward_shutdown();
    }
};

struct chain_result {
    std::vector<received_file> files;
    reassembler::options unused;
};

// file_reader → packetiser → lossy → depacketiser → collector on the
// deterministic fixture (rate 0: no timers involved).
struct file_chain {
    test::fixture f;
    temp_file file;
    file_meta meta;
    file_reader* reader;
    packetiser* pack;
    lossy* loss;
    depacketiser* depack;
    test::collector* sink;

    file_chain(const std::string& data, std::uint64_t repeat, std::function<bool(std::uint64_t)> drop,
               bool reorder = false, std::uint16_t chunk = 1000)
        : file(data) {
        meta = describe_file(file.path, chunk);
        reader = &f.spawn<file_reader>(
            file_reader_options{.path = file.path, .chunk_size = chunk, .repeat = repeat, .chunks_per_message = 7});
        pack = &f.spawn<packetiser>(meta);
        loss = &f.spawn<lossy>();
        loss->drop = std::move(drop);
        loss->reorder = reorder;
        depack = &f.spawn<depacketiser>();
        sink = &f.spawn<test::collector>();
        chain(*reader, *pack);
        chain(*pack, *loss);
        chain(*loss, *depack);
        chain(*depack, *sink);
        f.settle();
    }
    std::vector<received_file> files() const { return sink->values<received_file>(); }
};

std::uint16_t free_udp_port() {
    asio::io_context io;
    asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    return s.local_endpoint().port();
}

// Steps the fixture until `done` or a generous real-time deadline (liveness only).
template <class F>
bool step_until(test::fixture& f, F done, std::chrono::seconds limit = 30s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        if (!f.step()) ::usleep(200);
    }
    return true;
}

} // namespace

TEST_CASE("a file goes through packetiser and depacketiser byte for byte", "[mcast]") {
    std::string data = random_bytes(50'000, 11);
    file_chain c(data, 1, nullptr);
    auto files = c.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
    CHECK(files[0].meta.sha256 == sha256(data));
    CHECK(c.depack->rejected_total() == 0);
    CHECK(c.sink->controls.size() == 1); // producer_finished after the file
    CHECK(c.reader->finished());
}

TEST_CASE("reordered datagrams still assemble the file", "[mcast]") {
    std::string data = random_bytes(64'123, 12);
    file_chain c(data, 1, nullptr, true);
    auto files = c.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
}

TEST_CASE("loss without a carousel is detected and reported as byte ranges", "[mcast]") {
    std::string data = random_bytes(10'500, 13); // 11 packets of 1000
    std::set<std::uint64_t> lost{0, 4, 5, 10};
    file_chain c(data, 1, [&](std::uint64_t i) { return lost.count(i) > 0; });
    CHECK(c.files().empty());
    CHECK(c.depack->finished()); // it ended with its input
    const reassembler& r = c.depack->assembly();
    REQUIRE(r.locked());
    CHECK_FALSE(r.complete());
    CHECK(r.missing() == std::vector<byte_range>{{0, 1000}, {4000, 6000}, {10'000, 10'500}});
    CHECK(format_ranges(r.missing()) == "0-999, 4000-5999, 10000-10499");
}

TEST_CASE("the carousel's second pass heals loss in the first", "[mcast]") {
    std::string data = random_bytes(30'000, 14); // 30 packets
    // Every third packet of the first pass is lost, and the order is scrambled.
    file_chain c(
        data, 3, [](std::uint64_t i) { return i < 30 && i % 3 == 0; }, true);
    auto files = c.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
    CHECK(c.loss->dropped == 10);
    // The second pass repeats the 20 it had; the third is not listened to.
    CHECK(c.depack->assembly().duplicates() == 20);
}

TEST_CASE("a receiver that joins late completes the file from a later pass", "[mcast]") {
    std::string data = random_bytes(40'000, 15); // 40 packets a pass
    // Joins 25 packets into the first pass: it has heard nothing before.
    file_chain c(data, 2, [](std::uint64_t i) { return i < 25; });
    auto files = c.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
    CHECK(c.loss->dropped == 25);
}

TEST_CASE("a datagram damaged on the way is dropped and healed by the carousel", "[mcast]") {
    std::string data = random_bytes(5'000, 16);
    test::fixture f;
    temp_file file(data);
    file_meta meta = describe_file(file.path, 1000);
    auto& reader = f.spawn<file_reader>(file_reader_options{.path = file.path, .chunk_size = 1000, .repeat = 2});
    auto& pack = f.spawn<packetiser>(meta);
    // Flips a payload bit in the first datagram of the first batch.
    struct corrupter : component {
        bool done = false;
        task main() override {
            for (;;) {
                while (auto b = recv<datagram_batch>()) {
                    datagram_batch out;
                    for (std::size_t i = 0; i < b->size(); ++i) {
                        std::string d((*b)[i]);
                        if (!done) d[header_size + 3] ^= 4, done = true;
                        out.add(d);
                    }
                    co_await send(std::move(out));
                }
                if (shutdown_requested()) break;
                co_await wait_any();
            }
            forward_shutdown();
        }
    };
    auto& bad = f.spawn<corrupter>();
    auto& depack = f.spawn<depacketiser>();
    auto& sink = f.spawn<test::collector>();
    chain(reader, pack);
    chain(pack, bad);
    chain(bad, depack);
    chain(depack, sink);
    f.settle();
    auto files = sink.values<received_file>();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
    CHECK(depack.rejected()[static_cast<std::size_t>(decode_error::bad_crc)] == 1);
}

TEST_CASE("the file reader paces by timer at its byte rate, without spinning", "[mcast]") {
    std::string data = random_bytes(100'000, 17);
    temp_file file(data);
    test::fixture f;
    // 10,000 bytes/s in 100-byte chunks, at most 4 a message: the bucket holds 800.
    auto& reader = f.spawn<file_reader>(
        file_reader_options{.path = file.path, .chunk_size = 100, .rate = 10'000, .chunks_per_message = 4});
    auto& sink = f.spawn<test::collector>();
    chain(reader, sink);
    f.settle();
    CHECK(reader.bytes_read() == 800); // the saved-up burst, then it sleeps
    std::uint32_t wakes = reader.wakeups();
    f.settle(); // nothing is due: it does not run again
    CHECK(reader.wakeups() == wakes);
    for (int i = 0; i < 100; ++i) f.advance(10ms); // one second in 10 ms steps
    CHECK(reader.bytes_read() == 800 + 10'000);
    CHECK(reader.wakeups() - wakes <= 101); // one wake-up per timer at most
    // Chunks arrive in order, aligned to the chunk size.
    auto chunks = sink.values<file_chunk>();
    std::uint64_t at = 0;
    for (auto& c : chunks) {
        CHECK(c.offset == at);
        CHECK(c.data == data.substr(c.offset, c.data.size()));
        at += c.data.size();
    }
    // Stopping it ends it at once, timer or not.
    deliver(reader, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(reader.finished());
}

TEST_CASE("the file reader repeats the file and ends, a missing file fails it", "[mcast]") {
    std::string data = random_bytes(2'500, 18);
    temp_file file(data);
    test::fixture f;
    auto& reader = f.spawn<file_reader>(file_reader_options{.path = file.path, .chunk_size = 1000, .repeat = 3});
    auto& sink = f.spawn<test::collector>();
    chain(reader, sink);
    f.settle();
    CHECK(reader.finished());
    CHECK(reader.passes_done() == 3);
    CHECK(reader.bytes_read() == 7'500);
    REQUIRE(sink.controls.size() == 1);
    CHECK(sink.controls[0].kind == ipc_kind::producer_finished);

    auto& missing = f.spawn<file_reader>(file_reader_options{.path = "/nonexistent/kamaelia/file"});
    f.settle();
    CHECK(missing.failed());
    CHECK_THAT(missing.error_text(), Catch::Contains("/nonexistent/kamaelia/file"));
}

TEST_CASE("multicast sender to receiver on the loopback interface", "[mcast]") {
    test::fixture f;
    multicast_options o;
    o.port = free_udp_port();
    o.interface = "127.0.0.1";
    o.ttl = 0;
    std::vector<std::string> sent;
    for (int i = 0; i < 200; ++i) sent.push_back("datagram " + std::to_string(i) + std::string(i * 5, 'x'));

    auto& rx = f.spawn<multicast_receiver>(o);
    auto& sink = f.spawn<test::collector>();
    component::link({rx, "outbox"}, {sink, "inbox"});
    f.settle(); // joined before anything is sent
    auto& feed = f.spawn<test::feeder<std::string>>(sent);
    auto& tx = f.spawn<multicast_sender>(o);
    chain(feed, tx);
    auto received = [&] {
        std::size_t n = 0;
        for (auto& b : sink.values<datagram_batch>()) n += b.size();
        return n;
    };
    REQUIRE(step_until(f, [&] { return received() >= sent.size() && tx.finished(); }));
    CHECK(tx.stats().datagrams_sent == sent.size());
    CHECK(tx.stats().send_errors == 0);
    std::vector<std::string> got;
    for (auto& b : sink.values<datagram_batch>())
        for (std::size_t i = 0; i < b.size(); ++i) {
            got.emplace_back(b[i]);
            CHECK(b.source(i).address().to_string() == "127.0.0.1");
            CHECK(b.source(i).port() == tx.local_endpoint().port());
        }
    CHECK(got == sent);
    CHECK(rx.stats().datagrams_received == sent.size());

    deliver(rx, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(rx.finished());
    CHECK_FALSE(rx.failed());
}

TEST_CASE("a transceiver hears its own datagrams through loopback, bad settings fail at open", "[mcast]") {
    test::fixture f;
    multicast_options o;
    o.port = free_udp_port();
    auto& feed = f.spawn<test::feeder<std::string>>(std::vector<std::string>{"one", "two", "three"}, false);
    auto& trx = f.spawn<multicast_transceiver>(o);
    auto& sink = f.spawn<test::collector>();
    component::link({feed, "outbox"}, {trx, "inbox"});
    component::link({trx, "outbox"}, {sink, "inbox"});
    std::vector<std::string> got;
    REQUIRE(step_until(f, [&] {
        got.clear();
        for (auto& b : sink.values<datagram_batch>())
            for (std::size_t i = 0; i < b.size(); ++i) got.emplace_back(b[i]);
        return got.size() >= 3;
    }));
    CHECK(got == std::vector<std::string>{"one", "two", "three"});
    deliver(trx, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(trx.finished());

    multicast_options bad = o;
    bad.group = "10.0.0.1"; // not a multicast group
    multicast_sender s1(bad);
    CHECK_THROWS_WITH(s1.open(f.sched), Catch::Contains("not a multicast group"));
    bad = o;
    bad.interface = "not-an-address";
    multicast_receiver r1(bad);
    CHECK_THROWS_WITH(r1.open(f.sched), Catch::Contains("bad interface"));
    bad = o;
    bad.ttl = 300;
    multicast_sender s2(bad);
    CHECK_THROWS_WITH(s2.open(f.sched), Catch::Contains("TTL"));
}

TEST_CASE("a file over real loopback multicast, a lossy first pass healed by the carousel", "[mcast]") {
    std::string data = random_bytes(300'000, 19);
    temp_file file(data);
    test::fixture f;
    multicast_options o;
    o.port = free_udp_port();
    auto& rx = f.spawn<multicast_receiver>(o);
    auto& loss = f.spawn<lossy>();
    loss.drop = [](std::uint64_t i) { return i < 224 && i % 5 == 1; }; // in the first pass (224 packets)
    auto& depack = f.spawn<depacketiser>();
    auto& sink = f.spawn<test::collector>();
    component::link({rx, "outbox"}, {loss, "inbox"});
    chain(loss, depack);
    chain(depack, sink);
    f.settle();

    std::uint16_t chunk = static_cast<std::uint16_t>(chunk_size_for(default_datagram_size));
    file_meta meta = describe_file(file.path, chunk);
    REQUIRE(meta.packet_count() == 224);
    auto& reader = f.spawn<file_reader>(file_reader_options{.path = file.path, .chunk_size = chunk, .repeat = 2});
    auto& pack = f.spawn<packetiser>(meta);
    auto& tx = f.spawn<multicast_sender>(o);
    chain(reader, pack);
    chain(pack, tx);
    REQUIRE(step_until(f, [&] { return !sink.values<received_file>().empty(); }));
    auto files = sink.values<received_file>();
    CHECK(files[0].data == data);
    CHECK(loss.dropped > 0);
    deliver(rx, "control", message(shutdown_microprocess()));
    REQUIRE(step_until(f, [&] { return tx.finished() && rx.finished(); }));
    CHECK(tx.stats().datagrams_sent == 2 * 224);
}

TEST_CASE("an empty file goes through as one empty packet, and its carousel is paced too", "[mcast]") {
    {
        file_chain c("", 1, nullptr);
        auto files = c.files();
        REQUIRE(files.size() == 1);
        CHECK(files[0].data.size() == 0);
        CHECK(files[0].meta.sha256 == sha256(""));
    }
    temp_file file("");
    test::fixture f;
    auto& reader = f.spawn<file_reader>(
        file_reader_options{.path = file.path, .chunk_size = 100, .rate = 1000, .repeat = 0, .chunks_per_message = 1});
    auto& sink = f.spawn<test::collector>();
    chain(reader, sink);
    f.settle();
    CHECK(sink.items.size() == 2); // the bucket's two saved-up packets, then one per 100 ms
    f.advance(std::chrono::milliseconds(100));
    CHECK(sink.items.size() == 3);
    deliver(reader, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(reader.finished());
}

// ---- hostile packets (issue 14, defect 4) -------------------------------------

namespace {
// A depacketiser fed one datagram at a time, its files collected.
struct depack_rig {
    test::fixture f;
    depacketiser* dp;
    test::collector* sink;
    explicit depack_rig(depacketiser_options o = {}) {
        dp = &f.spawn<depacketiser>(o);
        sink = &f.spawn<test::collector>();
        component::link({*dp, "outbox"}, {*sink, "inbox"});
        f.settle();
    }
    void feed(std::string d) {
        deliver(*dp, "inbox", message(std::move(d)));
        f.settle();
    }
    void feed(const file_meta& m, std::string_view data, std::uint32_t seq) {
        feed(encode(m, seq, data.substr(m.offset_of(seq), m.payload_size(seq))));
    }
    std::vector<received_file> files() const { return sink->values<received_file>(); }
};
} // namespace

TEST_CASE("asked to, the depacketiser hashes in slices while its inbox is empty, a lying file is still refused",
          "[mcast]") {
    std::string data = random_bytes(300'000, 31); // 300 packets of 1000
    temp_file real(data);
    file_meta m = describe_file(real.path, 1000);
    auto batch = [&](std::uint32_t from, std::uint32_t to, const std::string& bytes) {
        datagram_batch b;
        for (std::uint32_t seq = from; seq < to; ++seq)
            b.add(encode(m, seq, std::string_view(bytes).substr(m.offset_of(seq), m.payload_size(seq))));
        return b;
    };
    SECTION("placed first, hashed after, a slice a cycle") {
        depack_rig r(depacketiser_options{.hash_when_idle = true});
        deliver(*r.dp, "inbox", message(batch(0, 150, data)));
        r.f.step(); // places all 150, then hashes one 64 KiB slice and yields
        CHECK(r.dp->assembly().packets_have() == 150);
        CHECK(r.dp->assembly().packets_hashed() > 0);
        CHECK(r.dp->assembly().packets_hashed() < 150);
        r.f.settle(); // idle: the digest catches up with the data
        CHECK(r.dp->assembly().packets_hashed() == 150);
        deliver(*r.dp, "inbox", message(batch(150, 300, data)));
        r.f.settle();
        auto files = r.files();
        REQUIRE(files.size() == 1);
        CHECK(files[0].data == data);
    }
    SECTION("the digest is still checked: a byte that differs, CRCs right, is refused") {
        depack_rig r(depacketiser_options{.hash_when_idle = true});
        std::string bad = data;
        bad[123'456] ^= 1;
        deliver(*r.dp, "inbox", message(batch(0, 300, bad)));
        r.f.settle();
        CHECK(r.files().empty());
        CHECK(r.dp->digest_mismatches() == 1);
    }
    SECTION("hashing as placed (the default)") {
        depack_rig r;
        deliver(*r.dp, "inbox", message(batch(0, 150, data)));
        r.f.step();
        CHECK(r.dp->assembly().packets_hashed() >= 144); // in stretches of 16, as they were placed
        deliver(*r.dp, "inbox", message(batch(150, 300, data)));
        r.f.settle();
        REQUIRE(r.files().size() == 1);
        CHECK(r.files()[0].data == data);
    }
}

TEST_CASE("a stray datagram of another file, sent first, never makes the receiver ignore the real transfer",
          "[mcast][hostile]") {
    std::string data = random_bytes(20'000, 21); // 20 packets
    std::string stray_data = random_bytes(50'000, 22);
    file_meta stray = describe_file(temp_file(stray_data).path, 1000);
    stray.file_id = 0x5742a7; // another id
    depack_rig r;
    r.feed(stray, stray_data, 3);
    CHECK(r.dp->candidates() == 1);
    CHECK_FALSE(r.dp->following());
    // The real sender: two passes of its carousel.
    temp_file real(data);
    file_meta m = describe_file(real.path, 1000);
    for (int pass = 0; pass < 2 && r.sink->items.empty(); ++pass)
        for (std::uint32_t seq = 0; seq < m.packet_count() && r.sink->items.empty(); ++seq) r.feed(m, data, seq);
    auto files = r.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].meta.file_id == m.file_id);
    CHECK(files[0].data == data);
}

TEST_CASE("a forged packet reusing the real file id with other sizes does not lock the real file out",
          "[mcast][hostile]") {
    std::string data = random_bytes(5'000, 23);
    temp_file real(data);
    file_meta m = describe_file(real.path, 1000);
    file_meta forged = m;
    forged.total_size = 1'000'000;
    depack_rig r;
    r.feed(encode(forged, 7, std::string(1000, 'z')));
    for (std::uint32_t seq = 0; seq < m.packet_count(); ++seq) r.feed(m, data, seq);
    auto files = r.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);
}

TEST_CASE("with a file id the receiver takes only that file, a flood of ids cannot evict a transfer that is moving",
          "[mcast][hostile]") {
    std::string data = random_bytes(8'000, 24);
    temp_file real(data);
    file_meta m = describe_file(real.path, 1000);
    depacketiser_options o;
    o.max_candidates = 2;
    depack_rig r(o);
    for (std::uint32_t seq = 0; seq < m.packet_count(); ++seq) {
        // Between every real packet, a stray of a new file id.
        file_meta s = m;
        s.file_id = 0x1000 + seq;
        r.feed(s, data, 0);
        r.feed(m, data, seq);
        CHECK(r.dp->candidates() <= 2);
    }
    auto files = r.files();
    REQUIRE(files.size() == 1);
    CHECK(files[0].data == data);

    depacketiser_options only;
    only.assembly.file_id = 0x77;
    depack_rig other(only);
    other.feed(m, data, 0);
    CHECK(other.dp->candidates() == 0);
}
