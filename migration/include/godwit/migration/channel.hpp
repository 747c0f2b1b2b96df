// A byte stream between two hosts: TCP, with mutually authenticated TLS by default
// (OpenSSL through Boost.Asio), plaintext only when asked for. Blocking calls with a
// timeout; every failure is a godwit::Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace godwit::migration {

struct TlsConfig {
    bool enabled = true;
    std::string ca_file;   // trusted CA for the peer's certificate
    std::string cert_file; // this host's certificate
    std::string key_file;  // this host's private key
};

class Channel {
  public:
    virtual ~Channel() = default;
    virtual void write_all(const void* data, std::size_t length) = 0;
    virtual void read_exact(void* data, std::size_t length) = 0;
    virtual void close() = 0;
    virtual std::string peer() const = 0;
    // False for a file (quick migration's saved state): nobody answers, so no ACK.
    virtual bool has_peer() const { return true; }
    // Bytes write_all accepted that the peer has not acknowledged yet (queued in this host's
    // socket): the engine measures what the link delivered, not what the kernel buffered.
    // 0 where nothing is queued or it is unknown (files, in-process pipes).
    virtual std::uint64_t unsent_bytes() const { return 0; }
    std::uint64_t bytes_written = 0;
    std::uint64_t bytes_read = 0;
};

// Connects to host:port, host an address or a name (the caller restricts addresses; tests
// use 127.0.0.1 and link-local addresses only).
std::unique_ptr<Channel> connect_channel(const std::string& host, std::uint16_t port,
                                         const TlsConfig& tls, std::chrono::seconds timeout);

class Listener {
  public:
    Listener(const std::string& address, std::uint16_t port); // port 0 = any free port
    ~Listener();
    std::uint16_t port() const;
    std::unique_ptr<Channel> accept(const TlsConfig& tls, std::chrono::seconds timeout);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The server side of a connection accepted by another process (godwitd accepts, the VM
// worker that receives the VM speaks TLS on it): takes ownership of `fd`, closing it on
// error, and completes the handshake as the server.
std::unique_ptr<Channel> adopt_server_channel(int fd, const TlsConfig& tls,
                                              std::chrono::seconds timeout);

// A channel over a file (quick migration: save state to / restore from a file).
std::unique_ptr<Channel> file_channel(const std::string& path, bool write);

} // namespace godwit::migration
