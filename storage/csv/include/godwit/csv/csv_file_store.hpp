// The direct API of a cluster shared volume for the VHD library: a vhd::FileStore whose
// files are opened, grown and read/written through a NodeClient. Data goes to the shared LUN
// directly by block map (O_DIRECT), or through the coordinator when the node is Redirected;
// no FUSE mount and no kernel round trip in between. This is how the VMM opens a VM's disk on
// a CSV (as Hyper-V's VMs reach CSV files through the CSV filter, not a network share).
#pragma once

#include <string>

#include "godwit/csv/node_client.hpp"
#include "godwit/vhd/block_file.hpp"

namespace godwit::csv {

class CsvFileStore final : public vhd::FileStore {
  public:
    // Paths are absolute within the volume ("/vms/a.vhd"); the node must outlive the store
    // and every file it opened.
    explicit CsvFileStore(NodeClient& node) : node_(node) {}

    std::unique_ptr<vhd::BlockFile> open(const std::string& path, vhd::OpenMode mode) override;
    bool exists(const std::string& path) override;
    std::string canonical(const std::string& path) override { return normalize(path); }
    std::string absolute(const std::string& path) override { return normalize(path); }
    std::string relative(const std::string& target, const std::string& base_dir) override;
    void remove(const std::string& path) noexcept override;

    // "/" + the path with "." and ".." resolved lexically (the volume has no links).
    static std::string normalize(const std::string& path);

  private:
    NodeClient& node_;
};

} // namespace godwit::csv
