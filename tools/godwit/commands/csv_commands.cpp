// `godwit csv format|check|ls`: create, verify and inspect cluster shared volumes
// (docs/csv-format.md). The networked commands (add, list, status, move, snapshot) come
// with the coordinator service.
#include "../cli.hpp"

#include <cctype>
#include <filesystem>
#include <memory>
#include <ostream>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/logging.hpp"

namespace godwit::cli {
namespace {

using namespace godwit::csv;

// "10G", "512M", "4096" -> bytes.
std::uint64_t parse_size(const std::string& text) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception&) {
        throw Error(ErrorCode::usage, "invalid size '" + text + "'");
    }
    std::string suffix = text.substr(used);
    static const std::pair<const char*, int> units[] = {
        {"", 0}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}};
    for (auto [name, shift] : units) {
        if (suffix == name ||
            (suffix.size() == 3 && suffix.substr(0, 1) == name && suffix.substr(1) == "iB")) {
            return static_cast<std::uint64_t>(value) << shift;
        }
    }
    throw Error(ErrorCode::usage, "invalid size suffix in '" + text + "' (use K, M, G or T)");
}

// Opens the LUN with O_DIRECT, falling back to buffered I/O where the file system has none.
std::unique_ptr<PosixBlockDevice> open_device(const std::string& path, bool writable,
                                              bool buffered) {
    auto access =
        writable ? PosixBlockDevice::Access::read_write : PosixBlockDevice::Access::read_only;
    if (!buffered) {
        try {
            return std::make_unique<PosixBlockDevice>(path, access, true);
        } catch (const Error& e) {
            if (e.code() != ErrorCode::unsupported) {
                throw;
            }
            spdlog::warn("{}: no O_DIRECT on this file system, using buffered I/O", path);
        }
    }
    return std::make_unique<PosixBlockDevice>(path, access, false);
}

int run_format(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")(
        "label", po::value<std::string>()->default_value(""), "volume label (up to 63 bytes)")(
        "size", po::value<std::string>(),
        "volume size (K/M/G/T); creates the image file if missing")(
        "journal-blocks", po::value<std::uint64_t>()->default_value(0),
        "journal size in 4 KiB blocks")("inodes", po::value<std::uint64_t>()->default_value(0),
                                        "number of inodes")("buffered", po::bool_switch(),
                                                            "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const auto path = vm["device"].as<std::string>();
    FormatOptions f;
    f.label = vm["label"].as<std::string>();
    f.journal_blocks = vm["journal-blocks"].as<std::uint64_t>();
    f.inode_count = vm["inodes"].as<std::uint64_t>();
    if (vm.count("size")) {
        f.size_bytes = parse_size(vm["size"].as<std::string>());
        if (!std::filesystem::exists(path)) {
            PosixBlockDevice::create_image(path, f.size_bytes);
        }
    }
    auto device = open_device(path, true, vm["buffered"].as<bool>());
    Superblock sb = format_volume(*device, f);
    const std::uint64_t data_bytes = (sb.data_end - sb.data_start) * kBlockSize;
    if (inv.json) {
        print_json(*inv.out, Json{{"device", path},
                                  {"label", f.label},
                                  {"total_blocks", sb.total_blocks},
                                  {"block_size", kBlockSize},
                                  {"data_bytes", data_bytes},
                                  {"inodes", sb.inode_count},
                                  {"journal_blocks", sb.journal_blocks}});
    } else {
        *inv.out << "formatted " << path << ": " << format_bytes(sb.total_blocks * kBlockSize)
                 << ", " << format_bytes(data_bytes) << " for data, " << sb.inode_count
                 << " inodes\n";
    }
    return 0;
}

int run_check(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")("buffered", po::bool_switch(),
                                                        "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    const auto path = vm["device"].as<std::string>();
    auto device = open_device(path, false, vm["buffered"].as<bool>());
    CheckReport report = check_volume(*device);
    if (inv.json) {
        Json problems = Json::array();
        for (const auto& p : report.problems) {
            problems.push_back(p);
        }
        print_json(*inv.out, Json{{"device", path},
                                  {"clean", report.clean()},
                                  {"problems", problems},
                                  {"total_blocks", report.total_blocks},
                                  {"free_blocks", report.free_blocks},
                                  {"files", report.files},
                                  {"directories", report.directories},
                                  {"pending_transaction", report.pending_txn_seq}});
    } else {
        for (const auto& p : report.problems) {
            *inv.out << "problem: " << p << '\n';
        }
        *inv.out << path << ": " << (report.clean() ? "clean" : "NOT clean") << ", " << report.files
                 << " files, " << report.directories << " directories, "
                 << format_bytes(report.free_blocks * kBlockSize) << " free\n";
    }
    return report.clean() ? 0 : exit_code_for(ErrorCode::failed);
}

int run_ls(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("device", po::value<std::string>()->required(),
                          "block device or image file")(
        "path", po::value<std::string>()->default_value("/"),
        "directory on the volume")("buffered", po::bool_switch(), "do not use O_DIRECT");
    po::positional_options_description positional;
    positional.add("device", 1).add("path", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm)) {
        return 0;
    }
    auto device = open_device(vm["device"].as<std::string>(), false, vm["buffered"].as<bool>());
    MountOptions mount;
    mount.read_only = true; // no lease, nothing written: safe while a coordinator runs
    auto volume = Volume::mount(*device, mount);
    auto entries = volume->list(vm["path"].as<std::string>());
    if (inv.json) {
        Json list = Json::array();
        for (const auto& e : entries) {
            list.push_back({{"name", e.name},
                            {"type", e.type == InodeType::directory ? "directory" : "file"},
                            {"size", e.size},
                            {"inode", e.inode},
                            {"extents", e.extent_count}});
        }
        print_json(*inv.out, Json{{"path", vm["path"].as<std::string>()}, {"entries", list}});
    } else {
        for (const auto& e : entries) {
            *inv.out << (e.type == InodeType::directory ? 'd' : '-') << ' ' << e.size << '\t'
                     << e.name << (e.type == InodeType::directory ? "/" : "") << '\n';
        }
    }
    return 0;
}

const Registration format_registration{{"csv", "format", "DEVICE [--label L] [--size SIZE]",
                                        "create an empty cluster shared volume", run_format}};
const Registration check_registration{
    {"csv", "check", "DEVICE", "verify a cluster shared volume (exit 0 when clean)", run_check}};
const Registration ls_registration{
    {"csv", "ls", "DEVICE [PATH]", "list a directory of a cluster shared volume", run_ls}};

} // namespace
} // namespace godwit::cli
