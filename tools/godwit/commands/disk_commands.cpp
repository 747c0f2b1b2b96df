// `godwit disk`: create, inspect, check, convert, compare and commit VHD disks (a qemu-img
// for Godwit's disk format). docs/vhd.md.
#include "../cli.hpp"

#include <algorithm>
#include <cstring>
#include <ostream>
#include <vector>

#include "godwit/error.hpp"
#include "godwit/vhd/vhd_image.hpp"

namespace godwit::cli {
namespace {

using namespace godwit::vhd;

constexpr std::size_t chunk = 1u << 20;

std::uint64_t parse_size(const std::string& text) {
    std::size_t used = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(text, &used);
    } catch (const std::exception&) {
        throw Error(ErrorCode::usage, "bad size '" + text + "' (examples: 10G, 512M, 1048576)");
    }
    std::string suffix = text.substr(used);
    std::uint64_t mult = 1;
    if (suffix == "K" || suffix == "k" || suffix == "KiB")
        mult = 1ull << 10;
    else if (suffix == "M" || suffix == "MiB")
        mult = 1ull << 20;
    else if (suffix == "G" || suffix == "GiB")
        mult = 1ull << 30;
    else if (suffix == "T" || suffix == "TiB")
        mult = 1ull << 40;
    else if (!suffix.empty())
        throw Error(ErrorCode::usage, "bad size suffix in '" + text + "' (K, M, G, T)");
    return n * mult;
}

int run_create(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("type,t", po::value<std::string>()->default_value("dynamic"),
                          "fixed|dynamic|differencing")("backing,b", po::value<std::string>(),
                                                        "parent disk (differencing)")(
        "block-size", po::value<std::string>()->default_value("2M"),
        "dynamic/differencing block size")("file", po::value<std::string>()->required(),
                                           "the VHD to create")("size", po::value<std::string>(),
                                                                "e.g. 10G");
    po::positional_options_description positional;
    positional.add("file", 1).add("size", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    CreateOptions o;
    std::string type = vm["type"].as<std::string>();
    if (type == "fixed")
        o.type = DiskType::fixed;
    else if (type == "dynamic")
        o.type = DiskType::dynamic;
    else if (type == "differencing")
        o.type = DiskType::differencing;
    else
        throw Error(ErrorCode::usage,
                    "unknown disk type '" + type + "' (fixed|dynamic|differencing)");
    if (o.type == DiskType::differencing) {
        if (!vm.count("backing"))
            throw Error(ErrorCode::usage, "differencing disks need -b PARENT");
        o.parent = vm["backing"].as<std::string>();
    } else {
        if (!vm.count("size"))
            throw Error(ErrorCode::usage, "a size is required (e.g. 10G)");
        o.size = parse_size(vm["size"].as<std::string>());
    }
    o.block_size = static_cast<std::uint32_t>(parse_size(vm["block-size"].as<std::string>()));
    std::string file = vm["file"].as<std::string>();
    VhdImage::create(file, o);
    auto img = VhdImage::open(file, false);
    if (inv.json) {
        print_json(
            *inv.out,
            Json{{"file", file}, {"type", to_string(img->type())}, {"virtual_size", img->size()}});
    } else {
        *inv.out << "created " << file << ": " << to_string(img->type()) << ", "
                 << format_bytes(img->size()) << '\n';
    }
    return 0;
}

int run_info(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("file", po::value<std::string>()->required(), "the VHD");
    po::positional_options_description positional;
    positional.add("file", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    auto img = VhdImage::open(vm["file"].as<std::string>(), false);
    Json chain = Json::array();
    for (const VhdImage* p = img->parent(); p != nullptr; p = p->parent())
        chain.push_back(p->path());
    const Footer& f = img->footer();
    Json j{
        {"file", img->path()},
        {"type", to_string(img->type())},
        {"virtual_size", img->size()},
        {"allocated_bytes", img->allocated_bytes()},
        {"block_size", img->type() == DiskType::fixed ? 0u : img->block_size()},
        {"creator", f.creator()},
        {"geometry",
         {{"cylinders", f.geometry.cylinders},
          {"heads", f.geometry.heads},
          {"sectors", f.geometry.sectors_per_track}}},
        {"parent_chain", chain},
        {"footer_checksum_ok", f.checksum_ok},
        {"header_checksum_ok", img->type() == DiskType::fixed ? true : img->header_checksum_ok()}};
    if (inv.json) {
        print_json(*inv.out, j);
        return 0;
    }
    *inv.out << "file:            " << img->path() << '\n'
             << "type:            " << to_string(img->type()) << '\n'
             << "virtual size:    " << format_bytes(img->size()) << " (" << img->size()
             << " bytes)\n"
             << "allocated:       " << format_bytes(img->allocated_bytes()) << '\n';
    if (img->type() != DiskType::fixed)
        *inv.out << "block size:      " << format_bytes(img->block_size()) << '\n';
    *inv.out << "creator:         '" << f.creator() << "'\n"
             << "geometry (CHS):  " << f.geometry.cylinders << '/' << int{f.geometry.heads} << '/'
             << int{f.geometry.sectors_per_track} << '\n'
             << "checksums:       footer " << (f.checksum_ok ? "ok" : "BAD")
             << (img->type() == DiskType::fixed ? ""
                 : img->header_checksum_ok()    ? ", header ok"
                                                : ", header BAD")
             << '\n';
    for (const auto& p : chain)
        *inv.out << "parent:          " << p.get<std::string>() << '\n';
    return 0;
}

int run_check(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("file", po::value<std::string>()->required(), "the VHD");
    po::positional_options_description positional;
    positional.add("file", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    std::string file = vm["file"].as<std::string>();
    auto problems = VhdImage::check(file);
    if (inv.json) {
        print_json(*inv.out,
                   Json{{"file", file}, {"clean", problems.empty()}, {"problems", problems}});
    } else if (problems.empty()) {
        *inv.out << file << ": no problems found\n";
    } else {
        for (const auto& p : problems)
            *inv.out << file << ": " << p << '\n';
    }
    return problems.empty() ? 0 : exit_code_for(ErrorCode::failed);
}

bool all_zero(const std::uint8_t* p, std::size_t n) {
    return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; });
}

int run_convert(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("output-format,O", po::value<std::string>()->required(),
                          "raw|vhd-fixed|vhd-dynamic")("in", po::value<std::string>()->required(),
                                                       "input (raw or any VHD)")(
        "out", po::value<std::string>()->required(), "output file (must not exist)");
    po::positional_options_description positional;
    positional.add("in", 1).add("out", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    auto in = DiskReader::open(vm["in"].as<std::string>());
    std::string fmt = vm["output-format"].as<std::string>();
    std::string out = vm["out"].as<std::string>();
    std::uint64_t size = in->size();
    std::vector<std::uint8_t> buf(chunk);
    std::uint64_t written = 0;
    if (fmt == "raw") {
        auto f = open_posix_file(out, OpenMode::create_new);
        f->truncate(size); // zero chunks stay holes
        for (std::uint64_t off = 0; off < size; off += chunk) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
            in->read(off, buf.data(), n);
            if (!all_zero(buf.data(), n)) {
                f->write_at(buf.data(), n, off);
                written += n;
            }
        }
        f->sync();
    } else if (fmt == "vhd-fixed" || fmt == "vhd-dynamic") {
        if (size % sector_size != 0) {
            throw Error(ErrorCode::invalid_input,
                        "input size " + std::to_string(size) + " is not a multiple of 512");
        }
        CreateOptions o;
        o.type = fmt == "vhd-fixed" ? DiskType::fixed : DiskType::dynamic;
        o.size = size;
        VhdImage::create(out, o);
        auto img = VhdImage::open(out, true);
        for (std::uint64_t off = 0; off < size; off += chunk) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
            in->read(off, buf.data(), n);
            if (!all_zero(buf.data(), n)) { // sparse: zero chunks are not allocated
                img->write(off, buf.data(), n);
                written += n;
            }
        }
        img->flush();
    } else {
        throw Error(ErrorCode::usage,
                    "unknown output format '" + fmt + "' (raw|vhd-fixed|vhd-dynamic)");
    }
    if (inv.json) {
        print_json(*inv.out, Json{{"in", vm["in"].as<std::string>()},
                                  {"in_format", in->format()},
                                  {"out", out},
                                  {"out_format", fmt},
                                  {"size", size},
                                  {"data_bytes_written", written}});
    } else {
        *inv.out << "converted " << in->format() << " -> " << fmt << ": " << format_bytes(size)
                 << ", " << format_bytes(written) << " of data written\n";
    }
    return 0;
}

int run_compare(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("a", po::value<std::string>()->required(),
                          "first disk")("b", po::value<std::string>()->required(), "second disk");
    po::positional_options_description positional;
    positional.add("a", 1).add("b", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    auto a = DiskReader::open(vm["a"].as<std::string>());
    auto b = DiskReader::open(vm["b"].as<std::string>());
    std::string verdict = "identical";
    std::int64_t first_difference = -1;
    if (a->size() != b->size()) {
        verdict =
            "sizes differ (" + std::to_string(a->size()) + " vs " + std::to_string(b->size()) + ")";
    } else {
        std::vector<std::uint8_t> x(chunk), y(chunk);
        for (std::uint64_t off = 0; off < a->size() && first_difference < 0; off += chunk) {
            std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk, a->size() - off));
            a->read(off, x.data(), n);
            b->read(off, y.data(), n);
            if (std::memcmp(x.data(), y.data(), n) != 0) {
                std::size_t i = 0;
                while (x[i] == y[i])
                    ++i;
                first_difference = static_cast<std::int64_t>(off + i);
                verdict = "content differs at offset " + std::to_string(first_difference);
            }
        }
    }
    bool same = verdict == "identical";
    if (inv.json) {
        print_json(*inv.out, Json{{"a", vm["a"].as<std::string>()},
                                  {"b", vm["b"].as<std::string>()},
                                  {"identical", same},
                                  {"first_difference", first_difference},
                                  {"verdict", verdict}});
    } else {
        *inv.out << (same ? "Images are identical." : "Images differ: " + verdict) << '\n';
    }
    return same ? 0 : exit_code_for(ErrorCode::failed);
}

int run_commit(Invocation& inv) {
    po::options_description options("Options");
    options.add_options()("file", po::value<std::string>()->required(), "the differencing disk");
    po::positional_options_description positional;
    positional.add("file", 1);
    po::variables_map vm;
    if (!parse_options(inv, options, positional, vm))
        return 0;
    auto img = VhdImage::open(vm["file"].as<std::string>(), false);
    img->commit_to_parent();
    if (inv.json) {
        print_json(*inv.out, Json{{"file", img->path()}, {"committed_into", img->parent_path()}});
    } else {
        *inv.out << "committed " << img->path() << " into " << img->parent_path() << '\n';
    }
    return 0;
}

const Registration create_registration{{"disk", "create",
                                        "-t fixed|dynamic|differencing [-b PARENT] FILE [SIZE]",
                                        "create a VHD disk", run_create}};
const Registration info_registration{
    {"disk", "info", "FILE", "show a VHD's type, sizes, parent chain and checksums", run_info}};
const Registration check_registration{
    {"disk", "check", "FILE", "check a VHD's structure (exit 0 when clean)", run_check}};
const Registration convert_registration{{"disk", "convert", "-O raw|vhd-fixed|vhd-dynamic IN OUT",
                                         "convert between raw and VHD (sparse-aware)",
                                         run_convert}};
const Registration compare_registration{
    {"disk", "compare", "A B", "compare two disks' contents, any formats", run_compare}};
const Registration commit_registration{
    {"disk", "commit", "CHILD", "merge a differencing disk into its parent", run_commit}};

} // namespace
} // namespace godwit::cli
