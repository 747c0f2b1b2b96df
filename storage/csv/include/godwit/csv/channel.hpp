// A framed message connection between CSV nodes (docs/csv-protocol.md §2): TCP, with
// mutually authenticated TLS (OpenSSL through Boost.Asio) unless plaintext was explicitly
// chosen. One thread may receive while others send: sends are serialized, and with TLS a
// receive takes the stream only once bytes are waiting, so it never blocks a sender for
// longer than the arrival of one frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <google/protobuf/message_lite.h>

#include "godwit/csv/framing.hpp"

namespace boost::asio::ssl {
class context;
}

namespace godwit::csv {

struct TlsOptions {
    std::string ca_file;   // the cluster CA: a peer is a member iff the CA signed its cert
    std::string cert_file; // this node's certificate (PEM)
    std::string key_file;  // its private key (PEM)
};

// Null = plaintext.
using TlsContext = std::shared_ptr<boost::asio::ssl::context>;
// Loads the CA, certificate and key; throws Error(usage) when one is missing and
// Error(invalid_input) when OpenSSL refuses them.
TlsContext make_tls_context(const TlsOptions& options);

class Channel {
  public:
    // Takes a connected socket; with `tls`, completes the handshake (as server or client)
    // within `timeout`, requiring a certificate from the peer either way.
    Channel(boost::asio::ip::tcp::socket socket, const TlsContext& tls, bool server,
            std::chrono::milliseconds timeout);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    // Throws Error(io) when the connection fails.
    void send(const google::protobuf::MessageLite& message);
    // False on an orderly close; Error(io) on failure or when nothing arrived within
    // `timeout` (0 = wait for ever), Error(protocol) on an oversized or malformed frame.
    bool receive(google::protobuf::MessageLite& message,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
    // Wakes a blocked receive and fails later calls (any thread).
    void shutdown() noexcept;
    bool secure() const noexcept;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// Connects to `peer` and wraps the socket (handshake included) within `timeout`.
std::unique_ptr<Channel> connect_channel(const Endpoint& peer, const TlsContext& tls,
                                         std::chrono::milliseconds timeout);

// One request on a fresh connection, one reply (status, move, take-over). Throws Error(io)
// when the peer cannot be reached or does not answer within `timeout`.
void request_once(const Endpoint& peer, const TlsContext& tls,
                  const google::protobuf::MessageLite& request,
                  google::protobuf::MessageLite& reply, std::chrono::milliseconds timeout);

} // namespace godwit::csv
