// The host's registry of cluster shared volumes (`godwit csv add|list|remove`): for each
// volume, this host's path to its LUN, its node id, the cluster's members, the credentials
// and where the volume is mounted. With a volume added, `godwit csv mount|node|status|move`
// take its name instead of the whole cluster description. One JSON file per volume in a
// directory (default /etc/godwit/csv, or $GODWIT_CSV_REGISTRY), written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace godwit::csv {

struct RegisteredVolume {
    std::string name;   // the volume's label ("Volume1")
    std::string device; // this host's path to the LUN
    std::uint64_t node_id = 0;
    std::string members; // "ID=ADDRESS:PORT,..." (this node included)
    bool plaintext = false;
    std::string ca, cert, key; // PEM files (absolute paths)
    std::string mountpoint;    // where `godwit csv mount NAME` shows it
    std::uint32_t lease_ms = 10000;
    std::uint32_t map_lease_ms = 3000;
};

class VolumeRegistry {
  public:
    explicit VolumeRegistry(std::filesystem::path dir) : dir_(std::move(dir)) {}
    // $GODWIT_CSV_REGISTRY when set, else /etc/godwit/csv.
    static std::filesystem::path default_dir();

    // Error(conflict) when the name is taken (unless `replace`), Error(usage) for a name that
    // is no file name or an entry without device, node id or members.
    void add(const RegisteredVolume& volume, bool replace = false);
    // Error(not_found) for an unknown name.
    void remove(const std::string& name);
    std::optional<RegisteredVolume> find(const std::string& name) const;
    // Sorted by name; Error(invalid_input) names a file that is not a valid entry.
    std::vector<RegisteredVolume> list() const;
    const std::filesystem::path& dir() const { return dir_; }

  private:
    std::filesystem::path file_of(const std::string& name) const;
    std::filesystem::path dir_;
};

} // namespace godwit::csv
