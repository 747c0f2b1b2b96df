#include "godwit/csv/channel.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string ssl_error(int code) {
    char text[256] = {};
    const unsigned long detail = ERR_get_error();
    if (detail != 0) {
        ERR_error_string_n(detail, text, sizeof text);
    }
    ERR_clear_error();
    return "SSL error " + std::to_string(code) + (detail != 0 ? std::string(" ") + text : "") +
           (code == SSL_ERROR_SYSCALL ? std::string(" ") + std::strerror(errno) : "");
}

} // namespace

TlsContext make_tls_context(const TlsOptions& options) {
    if (options.ca_file.empty() || options.cert_file.empty() || options.key_file.empty()) {
        throw Error(ErrorCode::usage, "CSV TLS needs the cluster CA, this node's certificate "
                                      "and its key (or plaintext, explicitly)");
    }
    // OpenSSL writes to the socket with write(2): a peer that went away would raise SIGPIPE
    // and kill the node; the failed write is reported as an error instead.
    std::signal(SIGPIPE, SIG_IGN);
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
    ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                     asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                     SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // No session tickets: a TLS 1.3 ticket is a record without application data, and a
    // receive must never wait inside OpenSSL for data that is not a frame (see receive).
    SSL_CTX_set_num_tickets(ctx->native_handle(), 0);
    boost::system::error_code ec;
    ctx->load_verify_file(options.ca_file, ec);
    if (!ec) {
        ctx->use_certificate_chain_file(options.cert_file, ec);
    }
    if (!ec) {
        ctx->use_private_key_file(options.key_file, asio::ssl::context::pem, ec);
    }
    if (ec) {
        throw Error(ErrorCode::invalid_input,
                    "CSV TLS configuration (" + options.cert_file + "): " + ec.message());
    }
    return ctx;
}

// TLS runs on OpenSSL directly over the socket (no read-ahead): bytes OpenSSL has not yet
// consumed stay in the socket, where poll() sees them, and decrypted bytes not yet read are
// SSL_pending(). Asio's ssl::stream buffers socket input of its own, invisible to both.
struct Channel::Impl {
    TlsContext ctx;
    tcp::socket socket;
    SSL* ssl = nullptr;
    int fd = -1;
    std::mutex send_mutex;
    std::mutex stream_mutex; // TLS: OpenSSL's SSL object is used by one thread at a time
    std::string payload;     // receive buffer, reused (only the receiving thread uses it)

    explicit Impl(tcp::socket s) : socket(std::move(s)), fd(socket.native_handle()) {}
    ~Impl() {
        if (ssl != nullptr) {
            SSL_free(ssl);
        }
    }

    // Reads exactly `length` bytes; false on an orderly close before the first byte.
    bool read_exact(void* data, std::size_t length) {
        auto* p = static_cast<char*>(data);
        std::size_t done = 0;
        while (done < length) {
            if (ssl != nullptr) {
                const int n = SSL_read(ssl, p + done, static_cast<int>(length - done));
                if (n <= 0) {
                    const int err = SSL_get_error(ssl, n);
                    if (err == SSL_ERROR_ZERO_RETURN && done == 0) {
                        return false;
                    }
                    throw Error(ErrorCode::io,
                                "CSV connection: TLS receive failed: " + ssl_error(err));
                }
                done += static_cast<std::size_t>(n);
            } else {
                const ssize_t n = ::recv(fd, p + done, length - done, 0);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n == 0 && done == 0) {
                    return false;
                }
                if (n <= 0) {
                    throw Error(ErrorCode::io, std::string("CSV connection: receive failed: ") +
                                                   (n == 0 ? "closed" : std::strerror(errno)));
                }
                done += static_cast<std::size_t>(n);
            }
        }
        return true;
    }

    void write_all(const std::string& frame) {
        std::size_t done = 0;
        while (done < frame.size()) {
            if (ssl != nullptr) {
                const int n =
                    SSL_write(ssl, frame.data() + done, static_cast<int>(frame.size() - done));
                if (n <= 0) {
                    throw Error(ErrorCode::io, "CSV connection: TLS send failed: " +
                                                   ssl_error(SSL_get_error(ssl, n)));
                }
                done += static_cast<std::size_t>(n);
            } else {
                const ssize_t n =
                    ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    throw Error(ErrorCode::io, std::string("CSV connection: send failed: ") +
                                                   std::strerror(errno));
                }
                done += static_cast<std::size_t>(n);
            }
        }
    }

    bool read_frame(google::protobuf::MessageLite& message) {
        std::uint32_t length = 0;
        if (!read_exact(&length, 4)) {
            return false;
        }
        if (length > kMaxFrameBytes) {
            throw Error(ErrorCode::protocol, "CSV connection: frame of " + std::to_string(length) +
                                                 " bytes exceeds the limit");
        }
        payload.resize(length);
        if (length > 0 && !read_exact(payload.data(), length)) {
            throw Error(ErrorCode::io, "CSV connection: closed inside a frame");
        }
        if (!message.ParseFromString(payload)) {
            throw Error(ErrorCode::protocol, "CSV connection: malformed message");
        }
        return true;
    }

    // Waits until the socket is readable (or closed); false on timeout.
    bool wait_readable(std::chrono::milliseconds timeout) const {
        pollfd p{fd, POLLIN, 0};
        for (;;) {
            const int n =
                ::poll(&p, 1, timeout.count() > 0 ? static_cast<int>(timeout.count()) : -1);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n != 0;
        }
    }
};

Channel::Channel(tcp::socket socket, const TlsContext& tls, bool server,
                 std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(std::move(socket))) {
    Impl& c = *impl_;
    c.ctx = tls;
    if (!tls) {
        return;
    }
    set_timeouts(c.fd, timeout); // the handshake must not hang on a silent peer
    c.ssl = SSL_new(tls->native_handle());
    if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) {
        throw Error(ErrorCode::internal, "cannot set up a TLS connection");
    }
    SSL_set_verify(c.ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    const int rc = server ? SSL_accept(c.ssl) : SSL_connect(c.ssl);
    if (rc != 1) {
        const long verify = SSL_get_verify_result(c.ssl);
        throw Error(ErrorCode::protocol,
                    std::string("CSV TLS handshake failed") +
                        (verify != X509_V_OK
                             ? std::string(": ") + X509_verify_cert_error_string(verify)
                             : std::string()) +
                        " (both nodes need certificates signed by the cluster CA)");
    }
    set_timeouts(c.fd, std::chrono::milliseconds(0));
}

Channel::~Channel() = default;

bool Channel::secure() const noexcept {
    return impl_->ssl != nullptr;
}

void Channel::send(const google::protobuf::MessageLite& message) {
    std::string frame;
    frame.reserve(4 + message.ByteSizeLong());
    frame.resize(4);
    if (!message.AppendToString(&frame) || frame.size() - 4 > kMaxFrameBytes) {
        throw Error(ErrorCode::internal, "cannot encode a CSV protocol message");
    }
    const auto length = static_cast<std::uint32_t>(frame.size() - 4);
    std::memcpy(frame.data(), &length, 4);
    Impl& c = *impl_;
    std::lock_guard lock(c.send_mutex);
    if (c.ssl != nullptr) {
        std::lock_guard stream_lock(c.stream_mutex);
        c.write_all(frame);
    } else {
        c.write_all(frame);
    }
}

bool Channel::receive(google::protobuf::MessageLite& message, std::chrono::milliseconds timeout) {
    Impl& c = *impl_;
    if (c.ssl == nullptr) {
        if (timeout.count() > 0 && !c.wait_readable(timeout)) {
            throw Error(ErrorCode::io, "CSV connection: no answer in time");
        }
        return c.read_frame(message);
    }
    // Take the stream (which blocks senders) only once a frame has started to arrive:
    // either OpenSSL holds decrypted bytes already or the socket is readable.
    {
        std::lock_guard lock(c.stream_mutex);
        if (SSL_pending(c.ssl) > 0) {
            return c.read_frame(message);
        }
    }
    if (!c.wait_readable(timeout)) {
        throw Error(ErrorCode::io, "CSV connection: no answer in time");
    }
    std::lock_guard lock(c.stream_mutex);
    return c.read_frame(message);
}

void Channel::shutdown() noexcept {
    ::shutdown(impl_->fd, SHUT_RDWR);
}

std::unique_ptr<Channel> connect_channel(const Endpoint& peer, const TlsContext& tls,
                                         std::chrono::milliseconds timeout) {
    // The socket needs an executor for its lifetime: a static one serves every outgoing
    // connection (synchronous calls never run it).
    static asio::io_context io;
    tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect(tcp::endpoint(asio::ip::make_address(peer.address, ec), peer.port), ec);
    if (ec) {
        throw Error(ErrorCode::io, "cannot reach CSV node " + peer.text() + ": " + ec.message());
    }
    socket.set_option(tcp::no_delay(true));
    return std::make_unique<Channel>(std::move(socket), tls, false, timeout);
}

void request_once(const Endpoint& peer, const TlsContext& tls,
                  const google::protobuf::MessageLite& request,
                  google::protobuf::MessageLite& reply, std::chrono::milliseconds timeout) {
    auto channel = connect_channel(peer, tls, timeout);
    channel->send(request);
    if (!channel->receive(reply, timeout)) {
        throw Error(ErrorCode::io, "CSV node " + peer.text() + " closed the connection");
    }
}

} // namespace godwit::csv
