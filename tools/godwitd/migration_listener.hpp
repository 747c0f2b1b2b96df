// godwitd's migration listener: accepts TCP connections from other hosts' VM workers and
// hands each one to `on_connection` (VmManager::accept_incoming, which gives it to a new
// worker that authenticates the peer with TLS). Plain TCP here on purpose: the TLS
// session must live in the worker that receives the VM, and godwitd never reads the stream.
#pragma once

#include <functional>
#include <string>

#include <boost/asio.hpp>

namespace godwit::daemon {

class MigrationListener {
  public:
    using Handler = std::function<void(int fd, const std::string& peer)>;
    // `address` is "ADDR" or "ADDR:PORT" ([V6]:PORT), default port 6600. Error(io) when it
    // cannot listen there, Error(usage) for a bad address.
    MigrationListener(boost::asio::io_context& io, const std::string& address, Handler handler);
    std::string local_endpoint() const;

  private:
    void accept();
    boost::asio::ip::tcp::acceptor acceptor_;
    Handler handler_;
};

} // namespace godwit::daemon
