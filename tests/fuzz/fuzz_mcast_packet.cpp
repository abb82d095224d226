// fuzz-sources: protocols/src/multicast/packet.cpp protocols/src/multicast/reassembler.cpp -lcrypto
// libFuzzer target for the multicaster's datagram decoder and reassembler
// (pure code: no sockets, no coroutines, no scheduler). scripts/fuzz builds
// and runs it (the line above lists its sources); its seeds in
// tests/fuzz/corpus/fuzz_mcast_packet/ come from tests/fuzz/mcast_seeds.py.
//
// The input is split into datagrams (a 2-byte length before each); every
// datagram is decoded and, if valid, fed to one reassembler whose size limit
// keeps memory small. Whatever comes in, nothing may crash, and the
// reassembler's accounting must stay consistent.
#include <kamaelia/multicast/reassembler.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace kamaelia::multicast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reassembler r({.file_id = 0, .max_size = 1 << 20});
    std::string_view in(reinterpret_cast<const char*>(data), size);
    while (in.size() >= 2) {
        std::size_t n = (static_cast<unsigned char>(in[0]) << 8) | static_cast<unsigned char>(in[1]);
        in.remove_prefix(2);
        std::string_view d = in.substr(0, n);
        in.remove_prefix(d.size());
        packet_view p;
        if (decode(d, p) != decode_error::none) continue;
        if (p.payload.size() != p.meta.payload_size(p.seq)) std::abort();
        r.add(p);
        if (r.locked() && r.packets_have() > r.meta().packet_count()) std::abort();
        std::uint64_t missing = r.missing_bytes();
        if (r.locked() && missing > r.meta().total_size) std::abort();
        if (r.complete()) {
            if (missing != 0) std::abort();
            (void)r.verified();
        }
    }
    return 0;
}
