#include "godwit/migration/channel.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "godwit/error.hpp"

namespace godwit::migration {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

void set_timeouts(int fd, std::chrono::seconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count());
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
}

Error io_error(const std::string& what, const boost::system::error_code& ec) {
    if (ec == asio::error::eof)
        return Error(ErrorCode::protocol, what + ": peer closed the connection");
    if (ec == asio::error::would_block || ec == asio::error::try_again ||
        ec == asio::error::timed_out) {
        return Error(ErrorCode::timeout, what + ": peer did not answer in time");
    }
    return Error(ErrorCode::io, what + ": " + ec.message());
}

// Asio's blocking reads and writes poll internally and ignore SO_RCVTIMEO/SO_SNDTIMEO, so a
// peer that stops reading or writing would block us forever. The watchdog shuts the socket
// down when one operation has made no progress for `timeout`; the operation then fails.
class Watchdog {
  public:
    Watchdog(int fd, std::chrono::seconds timeout) : fd_(fd), timeout_(timeout) {
        thread_ = std::thread([this] { loop(); });
    }
    ~Watchdog() {
        stop_ = true;
        thread_.join();
    }
    void begin() { started_ = now_ms(); }
    void end() { started_ = 0; }
    bool fired() const { return fired_; }

  private:
    static std::int64_t now_ms() {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    void loop() {
        while (!stop_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            std::int64_t s = started_;
            if (s != 0 &&
                now_ms() - s >
                    std::chrono::duration_cast<std::chrono::milliseconds>(timeout_).count()) {
                fired_ = true;
                ::shutdown(fd_, SHUT_RDWR);
                return;
            }
        }
    }
    int fd_;
    std::chrono::seconds timeout_;
    std::atomic<std::int64_t> started_{0};
    std::atomic<bool> stop_{false}, fired_{false};
    std::thread thread_;
};

struct WatchdogScope {
    Watchdog& w;
    explicit WatchdogScope(Watchdog& d) : w(d) { w.begin(); }
    ~WatchdogScope() { w.end(); }
};

// One implementation for plain TCP (Stream = tcp::socket) and TLS (an ssl::stream over it):
// whole reads and writes under the stall watchdog, errors turned into godwit::Error.
template <typename Stream>
class StreamChannel : public Channel {
  public:
    template <typename... Args>
    StreamChannel(std::unique_ptr<asio::io_context> io, std::chrono::seconds timeout,
                  Args&&... stream_args)
        : io_(std::move(io)), stream_(std::forward<Args>(stream_args)...),
          watchdog_(stream_.lowest_layer().native_handle(), timeout) {}
    void write_all(const void* data, std::size_t length) override {
        boost::system::error_code ec;
        {
            WatchdogScope scope(watchdog_);
            asio::write(stream_, asio::buffer(data, length), ec);
        }
        check("send to ", ec, "peer made no progress (stalled)");
        bytes_written += length;
    }
    void read_exact(void* data, std::size_t length) override {
        boost::system::error_code ec;
        {
            WatchdogScope scope(watchdog_);
            asio::read(stream_, asio::buffer(data, length), ec);
        }
        check("receive from ", ec, "peer sent nothing (stalled)");
        bytes_read += length;
    }
    void close() override {
        boost::system::error_code ec;
        stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
        stream_.lowest_layer().close(ec);
    }
    std::uint64_t unsent_bytes() const override {
        // SIOCOUTQ: the TCP send queue, sent or not, that the peer has not acknowledged.
        int queued = 0;
        auto& socket = const_cast<Stream&>(stream_).lowest_layer();
        if (::ioctl(socket.native_handle(), SIOCOUTQ, &queued) != 0 || queued < 0) {
            return 0;
        }
        return static_cast<std::uint64_t>(queued);
    }
    std::string peer() const override {
        boost::system::error_code ec;
        auto ep = stream_.lowest_layer().remote_endpoint(ec);
        return ec ? "peer" : ep.address().to_string() + ":" + std::to_string(ep.port());
    }

  protected:
    void check(const char* what, const boost::system::error_code& ec, const char* stalled) {
        if (watchdog_.fired()) {
            throw Error(ErrorCode::timeout, what + peer() + ": " + stalled);
        }
        if (ec) {
            throw io_error(what + peer(), ec);
        }
    }
    std::unique_ptr<asio::io_context> io_;
    Stream stream_;
    Watchdog watchdog_;
};

using TcpChannel = StreamChannel<tcp::socket>;

class TlsChannel final : public StreamChannel<asio::ssl::stream<tcp::socket>> {
  public:
    TlsChannel(std::unique_ptr<asio::io_context> io, std::unique_ptr<asio::ssl::context> ctx,
               tcp::socket socket, bool server, std::chrono::seconds timeout)
        : StreamChannel(std::move(io), timeout, std::move(socket), *ctx), ctx_(std::move(ctx)) {
        stream_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
        boost::system::error_code ec;
        {
            WatchdogScope scope(watchdog_);
            stream_.handshake(
                server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client, ec);
        }
        if (ec) {
            throw Error(ErrorCode::protocol,
                        "TLS handshake with " + peer() + " failed: " + ec.message() +
                            " (both hosts need certificates signed by the configured CA, "
                            "valid by both hosts' clocks)");
        }
    }

  private:
    // Destroyed before the base's stream; safe because the stream's SSL object holds its own
    // reference to the SSL_CTX (OpenSSL reference-counts it).
    std::unique_ptr<asio::ssl::context> ctx_;
};

std::unique_ptr<asio::ssl::context> make_tls_context(const TlsConfig& tls) {
    if (tls.ca_file.empty() || tls.cert_file.empty() || tls.key_file.empty()) {
        throw Error(ErrorCode::usage,
                    "TLS needs a CA, a certificate and a key (or explicitly request plaintext)");
    }
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls);
    ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                     asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    ctx->load_verify_file(tls.ca_file, ec);
    if (!ec)
        ctx->use_certificate_chain_file(tls.cert_file, ec);
    if (!ec)
        ctx->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
    if (ec)
        throw Error(ErrorCode::invalid_input, "TLS configuration: " + ec.message());
    return ctx;
}

std::unique_ptr<Channel> wrap(std::unique_ptr<asio::io_context> io, tcp::socket socket,
                              const TlsConfig& tls, bool server, std::chrono::seconds timeout) {
    set_timeouts(socket.native_handle(), timeout);
    if (!tls.enabled)
        return std::make_unique<TcpChannel>(std::move(io), timeout, std::move(socket));
    return std::make_unique<TlsChannel>(std::move(io), make_tls_context(tls), std::move(socket),
                                        server, timeout);
}

class FileChannel final : public Channel {
  public:
    FileChannel(const std::string& path, bool write) : path_(path) {
        fd_ = ::open(path.c_str(),
                     write ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC),
                     0600);
        if (fd_ < 0)
            throw system_error("open " + path, errno);
    }
    ~FileChannel() override { close(); }
    void write_all(const void* data, std::size_t length) override {
        const auto* p = static_cast<const char*>(data);
        while (length > 0) {
            ssize_t n = ::write(fd_, p, length);
            if (n < 0)
                throw system_error("write " + path_, errno);
            p += n;
            length -= static_cast<std::size_t>(n);
            bytes_written += static_cast<std::uint64_t>(n);
        }
    }
    void read_exact(void* data, std::size_t length) override {
        auto* p = static_cast<char*>(data);
        while (length > 0) {
            ssize_t n = ::read(fd_, p, length);
            if (n < 0)
                throw system_error("read " + path_, errno);
            if (n == 0)
                throw Error(ErrorCode::protocol,
                            path_ + ": saved state ends early (truncated file?)");
            p += n;
            length -= static_cast<std::size_t>(n);
            bytes_read += static_cast<std::uint64_t>(n);
        }
    }
    void close() override {
        if (fd_ >= 0) {
            ::fsync(fd_);
            ::close(fd_);
            fd_ = -1;
        }
    }
    std::string peer() const override { return path_; }
    bool has_peer() const override { return false; }

  private:
    std::string path_;
    int fd_ = -1;
};

} // namespace

std::unique_ptr<Channel> connect_channel(const std::string& host, std::uint16_t port,
                                         const TlsConfig& tls, std::chrono::seconds timeout) {
    auto io = std::make_unique<asio::io_context>();
    tcp::socket socket(*io);
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) {
        // A host name: the first address it resolves to.
        tcp::resolver resolver(*io);
        auto found = resolver.resolve(host, std::to_string(port), ec);
        if (ec || found.empty()) {
            throw Error(ErrorCode::usage,
                        "bad destination '" + host + "': " + (ec ? ec.message() : "no address"));
        }
        address = found.begin()->endpoint().address();
    }
    socket.connect(tcp::endpoint(address, port), ec);
    if (ec) {
        throw Error(ec == asio::error::connection_refused ? ErrorCode::not_found : ErrorCode::io,
                    "cannot connect to " + host + ":" + std::to_string(port) + ": " + ec.message());
    }
    return wrap(std::move(io), std::move(socket), tls, false, timeout);
}

struct Listener::Impl {
    asio::io_context io;
    tcp::acceptor acceptor{io};
};

Listener::Listener(const std::string& address, std::uint16_t port)
    : impl_(std::make_unique<Impl>()) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(address, ec);
    if (ec)
        throw Error(ErrorCode::usage, "bad listen address '" + address + "'");
    tcp::endpoint ep(addr, port);
    impl_->acceptor.open(ep.protocol(), ec);
    if (!ec)
        impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec)
        impl_->acceptor.bind(ep, ec);
    if (!ec)
        impl_->acceptor.listen(4, ec);
    if (ec)
        throw Error(ErrorCode::io, "cannot listen on " + address + ":" + std::to_string(port) +
                                       ": " + ec.message());
}

Listener::~Listener() = default;

std::uint16_t Listener::port() const {
    return impl_->acceptor.local_endpoint().port();
}

std::unique_ptr<Channel> Listener::accept(const TlsConfig& tls, std::chrono::seconds timeout) {
    auto io = std::make_unique<asio::io_context>();
    tcp::socket socket(*io);
    boost::system::error_code ec;
    // Wait at most `timeout` for a source (a source that never comes, e.g. because its
    // connection failed on the way, must not leave the destination waiting forever).
    pollfd waiting{impl_->acceptor.native_handle(), POLLIN, 0};
    int ms = timeout.count() > 0 ? static_cast<int>(timeout.count() * 1000) : -1;
    int ready = 0;
    do {
        ready = ::poll(&waiting, 1, ms);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0)
        throw system_error("poll on the migration listener", errno);
    if (ready == 0)
        throw Error(ErrorCode::timeout, "no migration source connected within " +
                                            std::to_string(timeout.count()) + " s");
    // Blocking accept into a socket bound to its own io_context: the channel owns both.
    int fd = ::accept(impl_->acceptor.native_handle(), nullptr, nullptr);
    if (fd < 0)
        throw system_error("accept", errno);
    socket.assign(tcp::v4(), fd, ec);
    if (ec)
        throw Error(ErrorCode::io, "accept: " + ec.message());
    return wrap(std::move(io), std::move(socket), tls, true, timeout);
}

std::unique_ptr<Channel> adopt_server_channel(int fd, const TlsConfig& tls,
                                              std::chrono::seconds timeout) {
    auto io = std::make_unique<asio::io_context>();
    tcp::socket socket(*io);
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
        int err = errno;
        ::close(fd);
        throw system_error("the inherited migration connection", err);
    }
    boost::system::error_code ec;
    socket.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
        ::close(fd);
        throw Error(ErrorCode::io, "the inherited migration connection: " + ec.message());
    }
    return wrap(std::move(io), std::move(socket), tls, true, timeout);
}

std::unique_ptr<Channel> file_channel(const std::string& path, bool write) {
    return std::make_unique<FileChannel>(path, write);
}

} // namespace godwit::migration
