// godwitd's control socket: accepts local connections and answers framed protobuf
// requests (tools/control/control.proto), one at a time per connection.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "control.pb.h"

namespace godwit::daemon {

// Produces the response to one request; throwing godwit::Error yields an error response.
using RequestHandler = std::function<control::Response(const control::Request&)>;

class ControlServer {
  public:
    // Binds `socket_path` (mode 0660; a stale socket file from a dead daemon is replaced,
    // a live one is an Error(conflict)).
    ControlServer(boost::asio::io_context& io, std::string socket_path, RequestHandler handler);
    ~ControlServer();

  private:
    void accept();
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::string socket_path_;
    RequestHandler handler_;
};

} // namespace godwit::daemon
