#pragma once

#include <string_view>

namespace godwit {

// "MAJOR.MINOR.PATCH[+gCOMMIT]", fixed at configure time.
std::string_view version() noexcept;

} // namespace godwit
