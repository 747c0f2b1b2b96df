#include "godwit/csv/framing.hpp"

#include <cstring>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;

void send_frame(asio::ip::tcp::socket& socket, const google::protobuf::MessageLite& message) {
    std::string payload;
    if (!message.SerializeToString(&payload) || payload.size() > kMaxFrameBytes) {
        throw Error(ErrorCode::internal, "cannot encode a CSV protocol message");
    }
    const auto length = static_cast<std::uint32_t>(payload.size());
    std::string frame(4, '\0');
    std::memcpy(frame.data(), &length, 4);
    frame += payload;
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(frame), ec);
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: send failed: " + ec.message());
    }
}

bool receive_frame(asio::ip::tcp::socket& socket, google::protobuf::MessageLite& message) {
    std::uint32_t length = 0;
    boost::system::error_code ec;
    asio::read(socket, asio::buffer(&length, 4), ec);
    if (ec == asio::error::eof) {
        return false;
    }
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: receive failed: " + ec.message());
    }
    if (length > kMaxFrameBytes) {
        throw Error(ErrorCode::protocol, "CSV connection: frame of " + std::to_string(length) +
                                             " bytes exceeds the limit");
    }
    std::string payload(length, '\0');
    asio::read(socket, asio::buffer(payload), ec);
    if (ec) {
        throw Error(ErrorCode::io, "CSV connection: receive failed: " + ec.message());
    }
    if (!message.ParseFromString(payload)) {
        throw Error(ErrorCode::protocol, "CSV connection: malformed message");
    }
    return true;
}

} // namespace godwit::csv
