#include "godwit/vhd/vhd_image.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

#include "godwit/error.hpp"

namespace godwit::vhd {
namespace fs = std::filesystem;
namespace {

constexpr int max_chain_depth = 32;
constexpr std::uint64_t header_offset = 512;
constexpr std::uint64_t bat_offset = 1536; // after the footer copy and the dynamic header

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) / a * a;
}

Error bad(const std::string& path, const std::string& what) {
    return Error(ErrorCode::invalid_input, path + ": " + what);
}

std::array<std::uint8_t, 16> random_uuid() {
    std::random_device rd;
    std::array<std::uint8_t, 16> u{};
    for (auto& b : u)
        b = static_cast<std::uint8_t>(rd());
    u[6] = static_cast<std::uint8_t>((u[6] & 0x0F) | 0x40);
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3F) | 0x80);
    return u;
}

std::u16string read_locator(const BlockFile& f, const ParentLocator& l) {
    if (l.data_length == 0 || l.data_length > 4096 || l.data_length % 2 != 0)
        return {};
    if (l.data_offset + l.data_length > f.size())
        return {};
    std::vector<std::uint8_t> raw(l.data_length);
    f.read_at(raw.data(), raw.size(), l.data_offset);
    std::u16string s;
    for (std::size_t i = 0; i + 1 < raw.size(); i += 2) {
        char16_t c = static_cast<char16_t>(raw[i] | (raw[i + 1] << 8)); // UTF-16LE
        if (c == 0)
            break;
        s.push_back(c);
    }
    return s;
}

} // namespace

VhdImage::~VhdImage() {
    if (writable_) {
        try {
            std::unique_lock lock(mutex_);
            flush_locked();
        } catch (...) {
            // Destructors must not throw; an explicit flush() reports errors.
        }
    }
}

std::uint64_t VhdImage::bitmap_bytes() const {
    return round_up(header_.block_size / sector_size / 8, sector_size);
}

std::uint64_t VhdImage::block_offset(std::uint32_t block) const {
    if (block >= bat_.size() || bat_[block] == bat_unused)
        return 0;
    return std::uint64_t{bat_[block]} * sector_size + bitmap_bytes();
}

bool is_vhd_file(const std::string& path) {
    auto f = open_posix_file(path, OpenMode::read_only);
    std::uint64_t size = f->size();
    std::uint8_t b[512];
    if (size >= 512) {
        f->read_at(b, 512, size - 512);
        if (looks_like_footer(b))
            return true;
        f->read_at(b, 512, 0);
        if (looks_like_footer(b))
            return true;
    }
    return false;
}

std::unique_ptr<VhdImage> VhdImage::open(const std::string& path, bool writable, FileStore& store) {
    std::unique_ptr<VhdImage> img(new VhdImage());
    std::set<std::string> seen;
    img->load(store, path, writable, 0, seen);
    return img;
}

void VhdImage::load(FileStore& store, const std::string& path, bool writable, int depth,
                    std::set<std::string>& seen) {
    if (!seen.insert(store.canonical(path)).second) {
        throw bad(path, "differencing parent chain loops back to this file");
    }
    if (depth > max_chain_depth)
        throw bad(path, "differencing chain deeper than 32 disks");
    file_ = store.open(path, writable ? OpenMode::read_write : OpenMode::read_only);
    writable_ = writable;
    std::uint64_t file_size = file_->size();
    if (file_size < 512)
        throw bad(path, "file too small to be a VHD (" + std::to_string(file_size) + " bytes)");
    std::uint8_t b[1024];
    file_->read_at(b, 512, file_size - 512);
    if (looks_like_footer(b)) {
        footer_ = parse_footer(b);
        footer_offset_ = file_size - 512;
    } else {
        // The footer copy at offset 0 (dynamic/differencing) lets us open a file whose end
        // was cut off; check() reports it.
        file_->read_at(b, 512, 0);
        if (!looks_like_footer(b))
            throw bad(path, "not a VHD file (no 'conectix' footer at the end or start)");
        footer_ = parse_footer(b);
        if (footer_.type == DiskType::fixed)
            throw bad(path, "fixed VHD without its trailing footer");
        footer_from_copy_ = true;
        footer_offset_ = file_size;
    }
    if (!footer_.checksum_ok && footer_from_copy_)
        throw bad(path, "footer checksum mismatch");
    if (footer_.type == DiskType::fixed) {
        if (footer_.current_size + 512 > file_size) {
            throw bad(path, "fixed VHD is shorter than its declared size (truncated?)");
        }
        return;
    }
    if (footer_.data_offset != header_offset || file_size < header_offset + 1024) {
        if (footer_.data_offset >= file_size || footer_.data_offset + 1024 > file_size) {
            throw bad(path, "dynamic header offset " + std::to_string(footer_.data_offset) +
                                " lies outside the file");
        }
    }
    file_->read_at(b, 1024, footer_.data_offset);
    header_ = parse_dynamic_header(b);
    std::uint64_t blocks_needed =
        (footer_.current_size + header_.block_size - 1) / header_.block_size;
    if (header_.max_table_entries < blocks_needed) {
        throw bad(path, "BAT has " + std::to_string(header_.max_table_entries) +
                            " entries but the disk needs " + std::to_string(blocks_needed));
    }
    if (header_.max_table_entries > (max_disk_size / 4096) + 1)
        throw bad(path, "absurd BAT size");
    std::uint64_t bat_bytes = round_up(std::uint64_t{header_.max_table_entries} * 4, sector_size);
    if (header_.table_offset % sector_size != 0 || header_.table_offset + bat_bytes > file_size) {
        throw bad(path, "BAT lies outside the file");
    }
    std::vector<std::uint8_t> raw(header_.max_table_entries * 4ull);
    file_->read_at(raw.data(), raw.size(), header_.table_offset);
    bat_.resize(header_.max_table_entries);
    for (std::size_t i = 0; i < bat_.size(); ++i) {
        bat_[i] = (std::uint32_t{raw[4 * i]} << 24) | (std::uint32_t{raw[4 * i + 1]} << 16) |
                  (std::uint32_t{raw[4 * i + 2]} << 8) | raw[4 * i + 3];
    }
    // Every allocated block lies inside the file, after the metadata, and blocks never overlap.
    std::uint64_t block_span = bitmap_bytes() + header_.block_size;
    std::uint64_t metadata_end =
        std::max(header_.table_offset + bat_bytes, footer_.data_offset + 1024);
    std::vector<std::uint64_t> starts;
    for (std::size_t i = 0; i < bat_.size(); ++i) {
        if (bat_[i] == bat_unused)
            continue;
        if (i >= blocks_needed)
            throw bad(path, "BAT entry " + std::to_string(i) + " is beyond the disk size");
        std::uint64_t start = std::uint64_t{bat_[i]} * sector_size;
        // The last block may end at the footer (allocated blocks are written up to it).
        if (start < metadata_end || start + block_span > footer_offset_) {
            throw bad(path, "BAT entry " + std::to_string(i) +
                                " points outside the data area (offset " + std::to_string(start) +
                                ")");
        }
        starts.push_back(start);
    }
    std::sort(starts.begin(), starts.end());
    for (std::size_t i = 1; i < starts.size(); ++i) {
        if (starts[i] < starts[i - 1] + block_span)
            throw bad(path, "two BAT entries overlap");
    }
    if (footer_.type == DiskType::differencing) {
        // Relative locator first (a chain copied elsewhere keeps working), then absolute.
        fs::path dir = fs::path(path).parent_path();
        std::string candidate;
        for (LocatorPlatform want : {LocatorPlatform::w2ru, LocatorPlatform::w2ku}) {
            for (const ParentLocator& l : header_.locators) {
                if (l.platform != want || !candidate.empty())
                    continue;
                std::string p = utf16_to_utf8(read_locator(*file_, l));
                std::replace(p.begin(), p.end(), '\\', '/');
                if (p.empty())
                    continue;
                fs::path resolved = want == LocatorPlatform::w2ru && fs::path(p).is_relative()
                                        ? dir / p
                                        : fs::path(p);
                if (store.exists(resolved.string()))
                    candidate = resolved.string();
            }
        }
        if (candidate.empty()) {
            throw Error(ErrorCode::not_found, path + ": parent disk '" +
                                                  utf16_to_utf8(header_.parent_name) +
                                                  "' not found through its parent locators");
        }
        parent_.reset(new VhdImage());
        parent_->load(store, candidate, false, depth + 1, seen);
        parent_path_ = candidate;
        if (parent_->footer_.unique_id != header_.parent_uuid) {
            throw bad(path,
                      "parent " + candidate + " has a different unique id than this disk expects");
        }
        if (parent_->size() != footer_.current_size)
            throw bad(path, "parent size differs from this disk's size");
    }
}

void VhdImage::create(const std::string& path, const CreateOptions& o, FileStore& store) {
    Footer f;
    f.timestamp = vhd_timestamp_now();
    f.unique_id = random_uuid();
    f.type = o.type;
    std::unique_ptr<VhdImage> parent;
    std::uint64_t size = o.size;
    if (o.type == DiskType::differencing) {
        if (o.parent.empty())
            throw Error(ErrorCode::usage, "a differencing disk needs a parent (-b PARENT)");
        parent = open(o.parent, false, store);
        size = parent->size();
    }
    if (size == 0 || size % sector_size != 0) {
        throw Error(ErrorCode::usage, "disk size must be a positive multiple of 512 bytes");
    }
    if (size > max_disk_size)
        throw Error(ErrorCode::usage, "disk size exceeds the VHD limit of 2040 GiB");
    if (o.block_size < 8 * sector_size || (o.block_size & (o.block_size - 1)) != 0 ||
        o.block_size > (256u << 20)) {
        throw Error(ErrorCode::usage,
                    "block size must be a power of two between 4 KiB and 256 MiB");
    }
    // Size = current_size (the spec/Hyper-V rule). QEMU and Bochs size files from unknown
    // creators by their CHS geometry unless it is the maximum, libvhdi by current_size. So
    // Godwit ("gdwt") writes the spec's CHS when it describes the size exactly, and the
    // maximum CHS otherwise: every reader then agrees on current_size (docs/vhd.md).
    f.original_size = f.current_size = size;
    f.geometry = geometry_for(size);
    if (f.geometry.bytes() != size)
        f.geometry = Geometry{65535, 16, 255};
    auto file = store.open(path, OpenMode::create_new);
    try {
        if (o.type == DiskType::fixed) {
            f.data_offset = ~0ull;
            file->truncate(size); // sparse: reads as zeros
            auto fb = serialize_footer(f);
            file->write_at(fb.data(), fb.size(), size);
            file->sync();
            return;
        }
        DynamicHeader h;
        h.block_size = o.block_size;
        h.max_table_entries = static_cast<std::uint32_t>((size + o.block_size - 1) / o.block_size);
        h.table_offset = bat_offset;
        std::uint64_t bat_bytes = round_up(std::uint64_t{h.max_table_entries} * 4, sector_size);
        std::uint64_t end = bat_offset + bat_bytes;
        std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> locator_data;
        if (parent) {
            h.parent_uuid = parent->footer().unique_id;
            h.parent_timestamp = parent->footer().timestamp;
            fs::path abs = store.absolute(o.parent);
            fs::path rel =
                store.relative(o.parent, fs::path(store.absolute(path)).parent_path().string());
            h.parent_name = utf8_to_utf16(abs.filename().string());
            int slot = 0;
            for (auto [platform, text] :
                 {std::pair{LocatorPlatform::w2ru, (fs::path(".") / rel).string()},
                  std::pair{LocatorPlatform::w2ku, abs.string()}}) {
                std::u16string u = utf8_to_utf16(text);
                std::vector<std::uint8_t> bytes;
                for (char16_t c : u) {
                    bytes.push_back(static_cast<std::uint8_t>(c));
                    bytes.push_back(static_cast<std::uint8_t>(c >> 8));
                }
                std::uint64_t space =
                    round_up(std::max<std::uint64_t>(bytes.size(), 1), sector_size);
                h.locators[slot++] = ParentLocator{platform, static_cast<std::uint32_t>(space),
                                                   static_cast<std::uint32_t>(bytes.size()), end};
                bytes.resize(space, 0);
                locator_data.emplace_back(end, std::move(bytes));
                end += space;
            }
        }
        f.data_offset = header_offset;
        auto fb = serialize_footer(f);
        auto hb = serialize_dynamic_header(h);
        std::vector<std::uint8_t> bat(bat_bytes, 0xFF);
        file->write_at(fb.data(), fb.size(), 0);
        file->write_at(hb.data(), hb.size(), header_offset);
        file->write_at(bat.data(), bat.size(), bat_offset);
        for (auto& [offset, bytes] : locator_data)
            file->write_at(bytes.data(), bytes.size(), offset);
        file->write_at(fb.data(), fb.size(), end);
        file->sync();
    } catch (...) {
        store.remove(path); // never leave a half-made disk behind
        throw;
    }
}

std::vector<std::uint8_t>& VhdImage::bitmap_for(std::uint32_t block) const {
    std::lock_guard cache_lock(bitmap_cache_mutex_);
    auto it = bitmaps_.find(block);
    if (it != bitmaps_.end())
        return it->second;
    std::vector<std::uint8_t> bm(bitmap_bytes(), 0);
    if (block < bat_.size() && bat_[block] != bat_unused) {
        file_->read_at(bm.data(), bm.size(), std::uint64_t{bat_[block]} * sector_size);
    }
    return bitmaps_.emplace(block, std::move(bm)).first->second;
}

bool VhdImage::sector_present(std::uint64_t sector) const {
    if (footer_.type == DiskType::fixed)
        return true;
    std::uint32_t block = static_cast<std::uint32_t>(sector * sector_size / header_.block_size);
    if (bat_[block] == bat_unused)
        return false;
    if (footer_.type == DiskType::dynamic)
        return true;
    std::uint64_t index = sector - std::uint64_t{block} * (header_.block_size / sector_size);
    const auto& bm = bitmap_for(block);
    return (bm[index / 8] >> (7 - index % 8)) & 1; // most significant bit first
}

void VhdImage::read_sectors(std::uint64_t sector, std::uint8_t* out, std::uint64_t count) const {
    if (footer_.type == DiskType::fixed) {
        file_->read_at(out, count * sector_size, sector * sector_size);
        return;
    }
    std::uint64_t per_block = header_.block_size / sector_size;
    while (count > 0) {
        std::uint32_t block = static_cast<std::uint32_t>(sector / per_block);
        std::uint64_t in_block = sector % per_block;
        std::uint64_t n = std::min(count, per_block - in_block);
        std::uint64_t data = block_offset(block);
        if (footer_.type == DiskType::dynamic) {
            if (data == 0)
                std::memset(out, 0, n * sector_size);
            else
                file_->read_at(out, n * sector_size, data + in_block * sector_size);
        } else {
            // Differencing: runs of present sectors from this file, the rest from the parent.
            std::uint64_t i = 0;
            while (i < n) {
                bool here = data != 0 && sector_present(sector + i);
                std::uint64_t run = 1;
                while (i + run < n && (data != 0 && sector_present(sector + i + run)) == here)
                    ++run;
                std::uint8_t* dst = out + i * sector_size;
                if (here)
                    file_->read_at(dst, run * sector_size, data + (in_block + i) * sector_size);
                else
                    parent_->read_sectors(sector + i, dst, run);
                i += run;
            }
        }
        sector += n;
        out += n * sector_size;
        count -= n;
    }
}

void VhdImage::read(std::uint64_t offset, void* buffer, std::size_t length) const {
    if (offset > size() || length > size() - offset) {
        throw Error(ErrorCode::invalid_input,
                    "read of " + std::to_string(length) + " bytes at " + std::to_string(offset) +
                        " is beyond the disk size " + std::to_string(size()));
    }
    std::shared_lock lock(mutex_);
    auto* out = static_cast<std::uint8_t*>(buffer);
    std::uint64_t head = offset % sector_size;
    if (head != 0 || length % sector_size != 0) {
        // Unaligned: go through whole sectors.
        std::uint64_t first = offset / sector_size;
        std::uint64_t last = (offset + length + sector_size - 1) / sector_size;
        std::vector<std::uint8_t> tmp((last - first) * sector_size);
        read_sectors(first, tmp.data(), last - first);
        std::memcpy(out, tmp.data() + head, length);
        return;
    }
    read_sectors(offset / sector_size, out, length / sector_size);
}

std::uint32_t VhdImage::allocate_block(std::uint32_t block) {
    std::uint64_t start = round_up(footer_offset_, sector_size);
    std::uint64_t span = bitmap_bytes() + header_.block_size;
    if ((start / sector_size) >= bat_unused)
        throw Error(ErrorCode::unsupported, "VHD file would exceed 2 TiB of sectors");
    // 1. The footer moves to the new end first, so the file always ends with a footer.
    auto fb = serialize_footer(footer_);
    file_->write_at(fb.data(), fb.size(), start + span);
    // 2. The sector bitmap: all present for dynamic disks, none yet for differencing ones.
    std::vector<std::uint8_t> bm(bitmap_bytes(), footer_.type == DiskType::dynamic ? 0xFF : 0x00);
    file_->write_at(bm.data(), bm.size(), start);
    if (footer_.type == DiskType::differencing) {
        std::lock_guard cache_lock(bitmap_cache_mutex_);
        bitmaps_[block] = std::move(bm);
    }
    footer_offset_ = start + span;
    bat_[block] = static_cast<std::uint32_t>(start / sector_size);
    dirty_bat_.insert(block); // 3. reaches the disk in flush(), after the data
    return bat_[block];
}

void VhdImage::write_sectors(std::uint64_t sector, const std::uint8_t* in, std::uint64_t count) {
    if (footer_.type == DiskType::fixed) {
        file_->write_at(in, count * sector_size, sector * sector_size);
        return;
    }
    std::uint64_t per_block = header_.block_size / sector_size;
    while (count > 0) {
        std::uint32_t block = static_cast<std::uint32_t>(sector / per_block);
        std::uint64_t in_block = sector % per_block;
        std::uint64_t n = std::min(count, per_block - in_block);
        if (bat_[block] == bat_unused)
            allocate_block(block);
        file_->write_at(in, n * sector_size, block_offset(block) + in_block * sector_size);
        if (footer_.type == DiskType::differencing) {
            auto& bm = bitmap_for(block);
            for (std::uint64_t i = in_block; i < in_block + n; ++i)
                bm[i / 8] |= static_cast<std::uint8_t>(0x80 >> (i % 8));
            dirty_bitmaps_.insert(block);
        }
        sector += n;
        in += n * sector_size;
        count -= n;
    }
}

void VhdImage::write(std::uint64_t offset, const void* buffer, std::size_t length) {
    if (!writable_)
        throw Error(ErrorCode::conflict, path() + " is open read-only");
    if (offset > size() || length > size() - offset) {
        throw Error(ErrorCode::invalid_input, "write of " + std::to_string(length) + " bytes at " +
                                                  std::to_string(offset) +
                                                  " is beyond the disk size");
    }
    std::unique_lock lock(mutex_);
    const auto* in = static_cast<const std::uint8_t*>(buffer);
    std::uint64_t head = offset % sector_size;
    if (head != 0 || length % sector_size != 0) {
        // Read-modify-write of the partial sectors at the edges.
        std::uint64_t first = offset / sector_size;
        std::uint64_t last = (offset + length + sector_size - 1) / sector_size;
        std::vector<std::uint8_t> tmp((last - first) * sector_size);
        read_sectors(first, tmp.data(), 1);
        if (last - first > 1)
            read_sectors(last - 1, tmp.data() + tmp.size() - sector_size, 1);
        std::memcpy(tmp.data() + head, in, length);
        write_sectors(first, tmp.data(), last - first);
        return;
    }
    write_sectors(offset / sector_size, in, length / sector_size);
}

void VhdImage::flush_locked() {
    if (!writable_)
        return;
    if (dirty_bat_.empty() && dirty_bitmaps_.empty()) {
        file_->sync();
        return;
    }
    file_->sync(); // data first
    for (std::uint32_t block : dirty_bitmaps_) {
        const auto& bm = bitmap_for(block);
        file_->write_at(bm.data(), bm.size(), std::uint64_t{bat_[block]} * sector_size);
    }
    // BAT sectors holding changed entries.
    std::set<std::uint64_t> sectors;
    for (std::uint32_t block : dirty_bat_)
        sectors.insert(std::uint64_t{block} * 4 / sector_size);
    for (std::uint64_t s : sectors) {
        std::uint8_t raw[sector_size];
        std::memset(raw, 0xFF, sizeof raw);
        for (std::uint64_t i = 0; i < sector_size / 4; ++i) {
            std::uint64_t e = s * (sector_size / 4) + i;
            if (e >= bat_.size())
                break;
            raw[4 * i] = static_cast<std::uint8_t>(bat_[e] >> 24);
            raw[4 * i + 1] = static_cast<std::uint8_t>(bat_[e] >> 16);
            raw[4 * i + 2] = static_cast<std::uint8_t>(bat_[e] >> 8);
            raw[4 * i + 3] = static_cast<std::uint8_t>(bat_[e]);
        }
        file_->write_at(raw, sizeof raw, header_.table_offset + s * sector_size);
    }
    file_->sync(); // then metadata
    dirty_bat_.clear();
    dirty_bitmaps_.clear();
}

void VhdImage::flush() {
    std::unique_lock lock(mutex_);
    flush_locked();
}

void VhdImage::discard(std::uint64_t offset, std::uint64_t length) {
    if (!writable_)
        throw Error(ErrorCode::conflict, path() + " is open read-only");
    if (footer_.type != DiskType::dynamic)
        return;
    std::unique_lock lock(mutex_);
    std::uint64_t first = (offset + header_.block_size - 1) / header_.block_size;
    std::uint64_t end =
        std::min<std::uint64_t>((offset + length) / header_.block_size, bat_.size());
    for (std::uint64_t b = first; b < end; ++b) {
        std::uint64_t data = block_offset(static_cast<std::uint32_t>(b));
        if (data == 0)
            continue;
        if (!file_->punch_hole(data, header_.block_size)) {
            std::vector<std::uint8_t> zeros(header_.block_size, 0);
            file_->write_at(zeros.data(), zeros.size(), data);
        }
    }
}

std::uint64_t VhdImage::allocated_bytes() const {
    if (footer_.type == DiskType::fixed)
        return size();
    std::shared_lock lock(mutex_);
    std::uint64_t n = 0;
    for (std::uint32_t e : bat_)
        n += e != bat_unused ? header_.block_size : 0;
    return n;
}

std::vector<AllocationRun> VhdImage::allocation_map() const {
    std::vector<AllocationRun> runs;
    if (footer_.type == DiskType::fixed)
        return {{0, size(), true}};
    std::shared_lock lock(mutex_);
    for (std::size_t b = 0; b * std::uint64_t{header_.block_size} < size(); ++b) {
        std::uint64_t off = b * std::uint64_t{header_.block_size};
        std::uint64_t len = std::min<std::uint64_t>(header_.block_size, size() - off);
        bool allocated = bat_[b] != bat_unused;
        if (!runs.empty() && runs.back().allocated == allocated)
            runs.back().length += len;
        else
            runs.push_back({off, len, allocated});
    }
    return runs;
}

void VhdImage::commit_to_parent() {
    if (footer_.type != DiskType::differencing)
        throw Error(ErrorCode::usage, path() + " is not a differencing disk");
    std::unique_lock lock(mutex_);
    auto target = open(parent_path_, true);
    std::uint64_t per_block = header_.block_size / sector_size;
    std::vector<std::uint8_t> buf(header_.block_size);
    for (std::uint32_t b = 0; b < bat_.size(); ++b) {
        if (bat_[b] == bat_unused)
            continue;
        std::uint64_t base = std::uint64_t{b} * per_block;
        std::uint64_t sectors = std::min(per_block, size() / sector_size - base);
        for (std::uint64_t i = 0; i < sectors;) {
            if (!sector_present(base + i)) {
                ++i;
                continue;
            }
            std::uint64_t run = 1;
            while (i + run < sectors && sector_present(base + i + run))
                ++run;
            file_->read_at(buf.data(), run * sector_size, block_offset(b) + i * sector_size);
            target->write((base + i) * sector_size, buf.data(), run * sector_size);
            i += run;
        }
    }
    target->flush();
}

std::vector<std::string> VhdImage::check(const std::string& path) {
    std::vector<std::string> problems;
    try {
        auto img = open(path, false);
        if (!img->footer_.checksum_ok)
            problems.push_back("footer checksum mismatch");
        if (img->footer_from_copy_)
            problems.push_back("trailing footer missing (only the copy at offset 0 is valid)");
        if (img->footer_.type != DiskType::fixed) {
            if (!img->header_.checksum_ok)
                problems.push_back("dynamic header checksum mismatch");
            std::uint8_t copy[512], trailing[512];
            img->file_->read_at(copy, 512, 0);
            if (!img->footer_from_copy_)
                img->file_->read_at(trailing, 512, img->file_->size() - 512);
            if (!img->footer_from_copy_ && std::memcmp(copy, trailing, 512) != 0) {
                problems.push_back("footer copy at offset 0 differs from the trailing footer");
            }
        }
        for (const VhdImage* p = img->parent(); p != nullptr; p = p->parent()) {
            if (!p->footer_.checksum_ok)
                problems.push_back("parent " + p->path() + ": footer checksum mismatch");
        }
    } catch (const Error& e) {
        problems.push_back(e.what());
    }
    return problems;
}

// ---- format-independent reading ----

namespace {

class RawReader final : public DiskReader {
  public:
    explicit RawReader(const std::string& path)
        : file_(open_posix_file(path, OpenMode::read_only)) {}
    std::uint64_t size() const override { return file_->size(); }
    void read(std::uint64_t offset, void* buffer, std::size_t length) const override {
        file_->read_at(buffer, length, offset);
    }
    std::string format() const override { return "raw"; }

  private:
    std::unique_ptr<BlockFile> file_;
};

class VhdReader final : public DiskReader {
  public:
    explicit VhdReader(const std::string& path) : image_(VhdImage::open(path, false)) {}
    std::uint64_t size() const override { return image_->size(); }
    void read(std::uint64_t offset, void* buffer, std::size_t length) const override {
        image_->read(offset, buffer, length);
    }
    std::string format() const override { return std::string("vhd-") + to_string(image_->type()); }

  private:
    std::unique_ptr<VhdImage> image_;
};

} // namespace

std::unique_ptr<DiskReader> DiskReader::open(const std::string& path) {
    if (is_vhd_file(path))
        return std::make_unique<VhdReader>(path);
    return std::make_unique<RawReader>(path);
}

} // namespace godwit::vhd
