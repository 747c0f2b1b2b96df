# Flags for every host-side (hosted C++) target. Link a target to godwit_host_flags
# to get them; the freestanding hypervisor never does.
add_library(godwit_host_flags INTERFACE)
target_compile_options(godwit_host_flags INTERFACE -Wall -Wextra)
# Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>, which
# GCC 12 in C++20 mode no longer pulls in transitively: pre-include it for all host code.
target_compile_options(godwit_host_flags INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:SHELL:-include utility>")
if(GODWIT_WERROR)
  target_compile_options(godwit_host_flags INTERFACE -Werror)
endif()
if(GODWIT_SANITIZE)
  target_compile_options(godwit_host_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(godwit_host_flags INTERFACE -fsanitize=address,undefined)
endif()

# Third-party packages, all from Debian (tools/bootstrap installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(GTest REQUIRED)
