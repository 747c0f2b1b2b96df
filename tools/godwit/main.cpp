#include <iostream>

#include "cli.hpp"
#include "godwit/large_buffers.hpp"

int main(int argc, char** argv) {
    godwit::keep_large_buffers(); // csv node/mount move data in 1 MiB messages
    return godwit::cli::run(argc, argv, std::cout, std::cerr);
}
