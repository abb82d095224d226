#include <kamaelia/multicast/packetiser.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <openssl/evp.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace kamaelia::multicast {

datagram_batch packetise(const file_meta& meta, const file_chunk& chunk) {
    if (meta.chunk_size == 0 || chunk.offset % meta.chunk_size != 0)
        throw std::invalid_argument("packetiser: a chunk at offset " + std::to_string(chunk.offset) +
                                    " is not aligned to the chunk size");
    datagram_batch b;
    std::size_t packets = (chunk.data.size() + meta.chunk_size - 1) / meta.chunk_size;
    if (packets == 0) packets = 1; // the empty file's one packet
    b.reserve(packets, chunk.data.size() + packets * header_size);
    std::uint64_t seq = chunk.offset / meta.chunk_size;
    std::string_view rest = chunk.data;
    for (std::size_t i = 0; i < packets; ++i, ++seq) {
        std::string_view payload = rest.substr(0, meta.chunk_size);
        rest.remove_prefix(payload.size());
        if (seq >= meta.packet_count() || payload.size() != meta.payload_size(seq))
            throw std::invalid_argument("packetiser: the chunk at offset " + std::to_string(chunk.offset) +
                                        " does not fit a " + std::to_string(meta.total_size) + "-byte file");
        char* out = b.append(header_size + payload.size());
        encode_into(meta, static_cast<std::uint32_t>(seq), payload, out);
    }
    return b;
}

file_meta describe_file(const std::string& path, std::uint16_t chunk_size) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + path);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    std::vector<char> buf(1 << 20);
    file_meta m;
    m.chunk_size = chunk_size;
    for (;;) {
        ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "cannot read " + path);
        }
        if (r == 0) break;
        EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(r));
        m.total_size += static_cast<std::uint64_t>(r);
    }
    ::close(fd);
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), m.sha256.data(), &n);
    m.file_id = file_id_from(m.sha256);
    if (m.file_id == 0) m.file_id = 1; // 0 means "any file" to a receiver
    if (chunk_size == 0 || m.packet_count() > (std::uint64_t(1) << 32))
        throw std::invalid_argument(path + " is too large for " + std::to_string(chunk_size) + "-byte packets");
    return m;
}

task packetiser::main() {
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto c = recv<file_chunk>()) {
            datagram_batch b = packetise(meta_, *c);
            packets_ += b.size();
            co_await send(std::move(b));
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia::multicast
