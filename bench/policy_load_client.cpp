// Load client for the policy benchmarks (scripts/bench-grey-policy): CONNS
// connections, each a blocking thread that sends one Postfix policy request
// and waits for its answer, as Postfix's smtpd does. Requests alternate
// between a never-seen triplet (must be deferred) and a known one (seeded
// an hour "earlier" through policy_test_time before the clock starts: must
// pass, PREPEND once then DUNNO). Every reply is checked; actions compare
// case-insensitively, as Postfix reads them (sqlgrey answers defer_if_permit).
//
//   bench_policy_client PORT CONNS SECONDS [KNOWN]   (KNOWN seeded triplets a connection, default 200)
//   -> policy_cN value=<req/s> unit=req/s ok=1 requests=R errors=E
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> go{false}, stop{false};
std::atomic<long> ready{0};
int known = 200;

int connect_to(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("connect");
        std::exit(1);
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

// One request, one answer; the answer's first line, or "" when the server closed.
std::string round_trip(int fd, const std::string& req, std::string& buf) {
    for (std::size_t off = 0; off < req.size();) {
        ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return {};
        off += static_cast<std::size_t>(n);
    }
    for (;;) {
        auto end = buf.find("\n\n");
        if (end != std::string::npos) {
            std::string line = buf.substr(0, buf.find('\n'));
            buf.erase(0, end + 2);
            return line;
        }
        char tmp[4096];
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return {};
        buf.append(tmp, static_cast<std::size_t>(n));
    }
}

std::string request(int conn, const std::string& sender, long test_time) {
    std::string r = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                    "client_address=198.51.100." +
                    std::to_string(conn + 1) + "\nclient_name=unknown\nhelo_name=bench.example\nsender=" + sender +
                    "\nrecipient=user" + std::to_string(conn) + "@example.net\n";
    if (test_time) r += "policy_test_time=" + std::to_string(test_time) + "\n";
    return r + "\n";
}

// Does `answer` start with `want` (ASCII case ignored)?
bool starts(const std::string& answer, const char* want) {
    return ::strncasecmp(answer.c_str(), want, std::strlen(want)) == 0;
}

struct result {
    long requests = 0, errors = 0;
};

void worker(int port, int conn, result& out) {
    int fd = connect_to(port);
    std::string buf;
    const long now = static_cast<long>(std::time(nullptr));
    const std::string tag = "p" + std::to_string(::getpid()) + "c" + std::to_string(conn);
    std::vector<std::string> known_senders;
    for (int i = 0; i < known; ++i) {
        known_senders.push_back("known" + tag + "k" + std::to_string(i) + "@bench.example");
        auto a = round_trip(fd, request(conn, known_senders.back(), now - 3600), buf);
        if (!starts(a, "action=DEFER_IF_PERMIT")) ++out.errors;
    }
    ++ready;
    while (!go.load()) std::this_thread::yield();
    long i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        bool fresh = (i & 1) == 0;
        std::string sender = fresh ? "new" + tag + "n" + std::to_string(i) + "@bench.example"
                                   : known_senders[static_cast<std::size_t>((i / 2) % known)];
        auto a = round_trip(fd, request(conn, sender, 0), buf);
        if (a.empty()) {
            ++out.errors;
            break;
        }
        bool ok = fresh ? starts(a, "action=DEFER_IF_PERMIT")
                        : ((starts(a, "action=DUNNO") && a.size() == 12) || starts(a, "action=PREPEND X-Greylist"));
        if (!ok) ++out.errors;
        ++out.requests;
        ++i;
    }
    ::close(fd);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s PORT CONNS SECONDS\n", argv[0]);
        return 2;
    }
    int port = std::atoi(argv[1]), conns = std::atoi(argv[2]);
    double secs = std::atof(argv[3]);
    if (argc > 4) known = std::max(1, std::atoi(argv[4]));
    std::vector<result> res(static_cast<std::size_t>(conns));
    std::vector<std::thread> th;
    for (int c = 0; c < conns; ++c) th.emplace_back(worker, port, c, std::ref(res[static_cast<std::size_t>(c)]));
    while (ready.load() < conns) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto t0 = std::chrono::steady_clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(secs));
    stop = true;
    for (auto& t : th) t.join();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    long n = 0, e = 0;
    for (auto& r : res) {
        n += r.requests;
        e += r.errors;
    }
    std::printf("policy_c%d value=%.1f unit=req/s ok=%d requests=%ld errors=%ld\n", conns, n / dt, e == 0 ? 1 : 0, n,
                e);
    return e == 0 ? 0 : 1;
}
