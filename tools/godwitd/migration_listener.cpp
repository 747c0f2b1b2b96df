#include "migration_listener.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "godwit/error.hpp"
#include "godwit/vmm/migration_control.hpp"

namespace godwit::daemon {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

MigrationListener::MigrationListener(asio::io_context& io, const std::string& address,
                                     Handler handler)
    : acceptor_(io), handler_(std::move(handler)) {
    vmm::Destination where = vmm::parse_destination(address);
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(where.host, ec);
    if (ec) {
        throw Error(ErrorCode::usage,
                    fmt::format("--migration-listen needs an IP address, not '{}'", where.host));
    }
    tcp::endpoint endpoint(ip, where.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor_.listen(8, ec);
    }
    if (ec) {
        throw Error(ErrorCode::io, fmt::format("cannot listen for migrations on {}: {}",
                                               where.to_string(), ec.message()));
    }
    accept();
}

std::string MigrationListener::local_endpoint() const {
    auto ep = acceptor_.local_endpoint();
    return vmm::Destination{ep.address().to_string(), ep.port()}.to_string();
}

void MigrationListener::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) {
            return;
        }
        if (!ec) {
            boost::system::error_code ignored;
            auto peer = socket.remote_endpoint(ignored);
            std::string who =
                ignored ? std::string("unknown peer")
                        : vmm::Destination{peer.address().to_string(), peer.port()}.to_string();
            handler_(socket.release(), who);
        } else {
            spdlog::warn("migration listener: accept failed: {}", ec.message());
        }
        accept();
    });
}

} // namespace godwit::daemon
