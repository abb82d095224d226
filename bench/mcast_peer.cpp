// The multicast benchmark's peer: a plain sendto() → recv() pair with the
// same datagram size, group, interface (127.0.0.1, TTL 0) and receive buffer
// as `kamaelia mcast-send` / `mcast-recv`, and the same pacing (a token
// bucket slept on, never spun). No header, no CRC, no reassembly: the
// ceiling a raw UDP stream reaches on this machine.
//
//   bench_mcast_peer recv PORT BYTES TIMEOUT_S [DATAGRAM]
//       counts datagram bytes until BYTES arrived or TIMEOUT_S passed, or
//       the stream went quiet for a second after it started; prints
//       "mcast_peer value=<B/s first to last datagram> unit=B/s bytes=N loss=<fraction>"
//   bench_mcast_peer send PORT BYTES RATE [DATAGRAM]
//       sends BYTES in DATAGRAM-byte datagrams (default 1400) at RATE B/s (0: unpaced)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* group = "224.168.2.9";
constexpr const char* iface = "127.0.0.1";
using clk = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
    std::perror(what);
    std::exit(2);
}

int recv_main(int port, std::uint64_t bytes, double timeout_s) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    int one = 1, buf = 4 * 1024 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, group, &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind");
    ip_mreq m{};
    ::inet_pton(AF_INET, group, &m.imr_multiaddr);
    ::inet_pton(AF_INET, iface, &m.imr_interface);
    if (::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) die("IP_ADD_MEMBERSHIP");
    std::fprintf(stderr, "listening on %s:%d\n", group, port);
    std::vector<char> data(65536);
    std::uint64_t got = 0;
    clk::time_point first{}, last{};
    auto end = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(timeout_s));
    while (got < bytes) {
        auto now = clk::now();
        if (now >= end) break;
        if (got > 0 && now - last > std::chrono::seconds(1)) break; // the stream is over
        pollfd p{fd, POLLIN, 0};
        int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count());
        if (::poll(&p, 1, std::min(wait_ms, 200)) <= 0) continue;
        for (;;) {
            ssize_t n = ::recv(fd, data.data(), data.size(), MSG_DONTWAIT);
            if (n < 0) break;
            if (got == 0) first = clk::now();
            got += static_cast<std::uint64_t>(n);
            last = clk::now();
            if (got >= bytes) break;
        }
    }
    double secs = std::chrono::duration<double>(last - first).count();
    double rate = secs > 0 ? static_cast<double>(got) / secs : 0;
    double loss = bytes > 0 ? 1.0 - static_cast<double>(std::min(got, bytes)) / static_cast<double>(bytes) : 0;
    std::printf("mcast_peer value=%.0f unit=B/s bytes=%llu loss=%.6f ok=%d\n", rate,
                static_cast<unsigned long long>(got), loss, got >= bytes ? 1 : 0);
    return got >= bytes ? 0 : 1;
}

int send_main(int port, std::uint64_t bytes, double rate, std::size_t dgram) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    in_addr ifa{};
    ::inet_pton(AF_INET, iface, &ifa);
    unsigned char ttl = 0, loop = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa);
    ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = ifa;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) die("bind");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, group, &to.sin_addr);
    std::vector<char> payload(dgram, 'x');
    // The same token bucket as the file reader: wakes for bursts of 2 ms of
    // the rate (16 datagrams at most), saves up 20 ms (two bursts at least).
    double per_message = 16.0 * static_cast<double>(dgram);
    double burst = std::clamp(std::floor(rate * 0.002 / static_cast<double>(dgram)) * static_cast<double>(dgram),
                              static_cast<double>(dgram), per_message);
    double capacity = std::max(2 * per_message, rate * 0.02), tokens = capacity;
    auto last = clk::now();
    std::uint64_t sent = 0;
    auto t0 = clk::now();
    while (sent < bytes) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(dgram, bytes - sent));
        if (rate > 0) {
            auto now = clk::now();
            tokens = std::min(capacity, tokens + std::chrono::duration<double>(now - last).count() * rate);
            last = now;
            double need = std::min(burst, static_cast<double>(bytes - sent));
            if (tokens < need) {
                auto wait = std::chrono::duration<double>((need - tokens) / rate);
                timespec ts{};
                auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
                ts.tv_sec = ns / 1'000'000'000;
                ts.tv_nsec = ns % 1'000'000'000;
                ::nanosleep(&ts, nullptr);
                continue;
            }
            // Spend what the tokens pay for, in whole datagrams.
            double spend = std::min(tokens, per_message);
            while (spend >= static_cast<double>(n) && sent < bytes) {
                n = static_cast<std::size_t>(std::min<std::uint64_t>(dgram, bytes - sent));
                if (::sendto(fd, payload.data(), n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
                    if (errno == EAGAIN || errno == ENOBUFS) continue;
                    die("sendto");
                }
                sent += n;
                spend -= static_cast<double>(n);
                tokens -= static_cast<double>(n);
            }
            continue;
        }
        if (::sendto(fd, payload.data(), n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
            if (errno == EAGAIN || errno == ENOBUFS) continue;
            die("sendto");
        }
        sent += n;
    }
    double secs = std::chrono::duration<double>(clk::now() - t0).count();
    std::printf("mcast_peer_send value=%.0f unit=B/s bytes=%llu\n", secs > 0 ? static_cast<double>(sent) / secs : 0,
                static_cast<unsigned long long>(sent));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s recv PORT BYTES TIMEOUT_S | send PORT BYTES RATE [DATAGRAM]\n", argv[0]);
        return 2;
    }
    std::string mode = argv[1];
    int port = std::atoi(argv[2]);
    std::uint64_t bytes = std::strtoull(argv[3], nullptr, 10);
    double x = std::atof(argv[4]);
    std::size_t dgram = argc > 5 ? std::strtoul(argv[5], nullptr, 10) : 1400;
    if (mode == "recv") return recv_main(port, bytes, x);
    if (mode == "send") return send_main(port, bytes, x, dgram);
    return 2;
}
