#include "control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "godwit/control_framing.hpp"
#include "godwit/error.hpp"

namespace godwit::daemon {

namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;

namespace {

// One client connection: read a frame, answer it, repeat until the client hangs up.
class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(local_stream::socket socket, const RequestHandler& handler)
        : socket_(std::move(socket)), handler_(handler) {}

    void start() { read_header(); }

  private:
    void read_header() {
        auto self = shared_from_this();
        asio::async_read(socket_, asio::buffer(header_),
                         [self](boost::system::error_code ec, std::size_t) {
                             if (!ec) {
                                 self->read_body();
                             }
                         });
    }

    void read_body() {
        std::uint32_t n = 0;
        try {
            n = control::decode_frame_length(header_.data());
        } catch (const Error& e) {
            spdlog::warn("control client sent a bad frame: {}", e.what());
            return; // drop the connection
        }
        body_.assign(n, '\0');
        auto self = shared_from_this();
        asio::async_read(socket_, asio::buffer(body_),
                         [self](boost::system::error_code ec, std::size_t) {
                             if (!ec) {
                                 self->respond();
                             }
                         });
    }

    void respond() {
        control::Request request;
        control::Response response;
        if (!request.ParseFromString(body_)) {
            auto* err = response.mutable_error();
            err->set_code(static_cast<int>(ErrorCode::protocol));
            err->set_message("malformed control request");
        } else {
            try {
                response = handler_(request);
            } catch (const Error& e) {
                response.Clear();
                response.mutable_error()->set_code(static_cast<int>(e.code()));
                response.mutable_error()->set_message(e.what());
            } catch (const std::exception& e) {
                spdlog::error("request handler failed: {}", e.what());
                response.Clear();
                response.mutable_error()->set_code(static_cast<int>(ErrorCode::internal));
                response.mutable_error()->set_message(std::string("internal error: ") + e.what());
            }
        }
        std::string payload;
        response.SerializeToString(&payload);
        out_ = control::encode_frame(payload);
        auto self = shared_from_this();
        asio::async_write(socket_, asio::buffer(out_),
                          [self](boost::system::error_code ec, std::size_t) {
                              if (!ec) {
                                  self->read_header();
                              }
                          });
    }

    local_stream::socket socket_;
    RequestHandler handler_;
    std::array<unsigned char, 4> header_{};
    std::string body_;
    std::string out_;
};

} // namespace

ControlServer::ControlServer(asio::io_context& io, std::string socket_path, RequestHandler handler)
    : acceptor_(io), socket_path_(std::move(socket_path)), handler_(std::move(handler)) {
    namespace fs = std::filesystem;
    std::error_code fec;
    fs::create_directories(fs::path(socket_path_).parent_path(), fec);
    if (fs::exists(socket_path_)) {
        // A socket file may be left by a daemon that died: replace it only if nobody answers.
        local_stream::socket probe(io);
        boost::system::error_code ec;
        probe.connect(local_stream::endpoint(socket_path_), ec);
        if (!ec) {
            throw Error(ErrorCode::conflict,
                        "another godwitd is already listening on " + socket_path_);
        }
        fs::remove(socket_path_, fec);
    }
    boost::system::error_code ec;
    acceptor_.open(local_stream(), ec);
    if (!ec) {
        acceptor_.bind(local_stream::endpoint(socket_path_), ec);
    }
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw Error(ErrorCode::io, "cannot listen on " + socket_path_ + ": " + ec.message());
    }
    ::chmod(socket_path_.c_str(), 0660);
    spdlog::info("control socket listening on {}", socket_path_);
    accept();
}

ControlServer::~ControlServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    ::unlink(socket_path_.c_str());
}

void ControlServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, local_stream::socket socket) {
        if (ec == asio::error::operation_aborted) {
            return;
        }
        if (!ec) {
            std::make_shared<Session>(std::move(socket), handler_)->start();
        } else {
            spdlog::warn("accept on {} failed: {}", socket_path_, ec.message());
        }
        accept();
    });
}

} // namespace godwit::daemon
