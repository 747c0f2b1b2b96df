#include "godwit/csv/framing.hpp"

#include <cstring>
#include <stdexcept>

#include <boost/asio/ip/address.hpp>

#include "godwit/error.hpp"

namespace godwit::csv {

namespace asio = boost::asio;

Endpoint parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        throw Error(ErrorCode::usage, "invalid endpoint '" + text + "' (want ADDRESS:PORT)");
    }
    Endpoint e;
    e.address = text.substr(0, colon);
    try {
        std::size_t used = 0;
        const unsigned long port = std::stoul(text.substr(colon + 1), &used);
        if (used != text.size() - colon - 1 || port == 0 || port > 65535) {
            throw std::out_of_range("port");
        }
        e.port = static_cast<std::uint16_t>(port);
    } catch (const std::exception&) {
        throw Error(ErrorCode::usage, "invalid port in '" + text + "'");
    }
    boost::system::error_code ec;
    asio::ip::make_address(e.address, ec);
    if (ec) {
        throw Error(ErrorCode::usage, "invalid address in '" + text + "'");
    }
    return e;
}

} // namespace godwit::csv
