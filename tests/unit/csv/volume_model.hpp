// An in-memory model of a CSV namespace and a deterministic generator of random
// operations against it; the stress and crash tests drive a real Volume with the same
// operations and compare.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "godwit/csv/volume.hpp"

namespace godwit::csv::testing {

struct ModelNode {
    bool directory = false;
    std::vector<std::byte> content;
    bool operator==(const ModelNode&) const = default;
};

using Model = std::map<std::string, ModelNode>; // absolute path ("/a/b") -> node

enum class OpKind { mkdir, create, write, resize, rename, remove };

struct Op {
    OpKind kind{};
    std::string path;
    std::string target;          // rename
    std::uint64_t offset = 0;    // write
    std::uint64_t size = 0;      // create/resize size, write length
    std::uint32_t data_seed = 0; // write pattern
    std::string describe() const;
};

std::vector<std::byte> pattern(std::uint32_t seed, std::size_t length);

class OpGenerator {
  public:
    explicit OpGenerator(std::uint64_t seed, std::uint64_t max_file_bytes = 256 * 1024)
        : rng_(seed), max_file_bytes_(max_file_bytes) {}
    // An operation that is valid in `model`.
    Op next(const Model& model);

  private:
    std::mt19937_64 rng_;
    std::uint64_t max_file_bytes_;
    std::uint64_t counter_ = 0;
};

void apply(Model& model, const Op& op);
void apply(Volume& volume, const Op& op);

// The namespace and file contents of a mounted volume, as a Model (without /.snapshots);
// with `root` ("/.snapshots/NAME"), of that directory's tree, paths relative to it.
Model snapshot(Volume& volume, const std::string& root = "/");

// Differences between two models (empty when equal); `loose` paths compare type only.
std::vector<std::string> compare(const Model& expected, const Model& actual,
                                 const std::vector<std::string>& loose = {});

} // namespace godwit::csv::testing
