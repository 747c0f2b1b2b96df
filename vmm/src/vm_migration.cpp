#include "godwit/vmm/vm_migration.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "godwit/error.hpp"
#include "godwit/migration/channel.hpp"

namespace godwit::vmm {

namespace {
static_assert(migration::page_size == page_size);

Error stream_error(const std::string& what) {
    return Error(ErrorCode::protocol, "migration stream: " + what);
}

std::uint64_t pages_for(const std::vector<RamRange>& ranges) {
    return ranges.back().end() / page_size;
}
} // namespace

std::uint64_t MigrationMemory::page_count() const {
    return pages_for(memory_.ranges());
}

void MigrationMemory::read_page(std::uint64_t pfn, std::uint8_t* out) const {
    if (!memory_.contains(pfn * page_size, page_size)) {
        std::memset(out, 0, page_size); // a hole: nothing backs it
        return;
    }
    auto span = memory_.host_span(pfn * page_size, page_size);
    std::memcpy(out, span.data(), page_size);
}

void MigrationMemory::write_page(std::uint64_t pfn, const std::uint8_t* in) {
    if (!memory_.contains(pfn * page_size, page_size)) {
        for (std::size_t i = 0; i < page_size; ++i) {
            if (in[i] != 0) {
                throw stream_error(fmt::format("page {:#x} lies in a hole of the VM's RAM", pfn));
            }
        }
        return;
    }
    auto span = memory_.host_span(pfn * page_size, page_size);
    std::memcpy(span.data(), in, page_size);
}

void RunnerControl::pause() {
    if (!runner_.pause()) {
        runner_.resume(); // nothing parked: leave the runner as it was
        throw Error(ErrorCode::conflict, "the VM stopped while it was being paused");
    }
}

std::vector<migration::StateBlob> VmStateSaver::save_state() {
    std::vector<migration::StateBlob> blobs;
    auto bytes = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
    blobs.push_back(
        {state_kind::definition, "definition", bytes(vm_definition_to_json(definition_))});
    for (unsigned v = 0; v < definition_.vcpus; ++v) {
        blobs.push_back({state_kind::vcpu, std::to_string(v),
                         bytes(serialize_vcpu_state(partition_.get_state(v)))});
        blobs.push_back({state_kind::vcpu_extra, std::to_string(v), partition_.get_vcpu_extra(v)});
    }
    blobs.push_back({state_kind::irqchip, "ioapic", partition_.get_irqchip()});
    blobs.push_back({state_kind::device, "platform", bytes(platform_.save_device_state())});
    return blobs;
}

void VmStateSaver::restore_state(const std::vector<migration::StateBlob>&) {
    throw Error(ErrorCode::unsupported,
                "a running VM's state is not replaced in place; restore into a new VM");
}

// Anonymous memory for the incoming pages: untouched pages stay unbacked zeros.
class StagingMemory : public migration::GuestMemory {
  public:
    explicit StagingMemory(std::uint64_t pages) : pages_(pages) {
        void* p = ::mmap(nullptr, pages * page_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            throw system_error(
                fmt::format("reserving {} MiB for the incoming VM", pages * page_size >> 20),
                errno);
        }
        base_ = static_cast<std::uint8_t*>(p);
    }
    ~StagingMemory() override { ::munmap(base_, pages_ * page_size); }
    std::uint64_t page_count() const override { return pages_; }
    void read_page(std::uint64_t pfn, std::uint8_t* out) const override {
        std::memcpy(out, at(pfn), page_size);
    }
    void write_page(std::uint64_t pfn, const std::uint8_t* in) override {
        std::memcpy(at(pfn), in, page_size);
    }
    std::uint8_t* at(std::uint64_t pfn) const {
        if (pfn >= pages_) {
            throw stream_error(fmt::format("page {:#x} is outside the VM", pfn));
        }
        return base_ + pfn * page_size;
    }

  private:
    std::uint64_t pages_;
    std::uint8_t* base_ = nullptr;
};

class VmReceiver::Staging final : public StagingMemory {
  public:
    using StagingMemory::StagingMemory;
};

namespace {
// Receives a whole saved state (checking it as a restore would) and keeps only the
// definition.
class DefinitionPeek final : public migration::IncomingVm {
  public:
    migration::GuestMemory& create(const std::string&, std::uint64_t page_count) override {
        staging_ = std::make_unique<StagingMemory>(page_count);
        return *staging_;
    }
    void restore(const std::vector<migration::StateBlob>& state) override {
        for (const auto& b : state) {
            if (b.kind == state_kind::definition && b.id == "definition") {
                definition = parse_vm_definition(std::string(b.data.begin(), b.data.end()),
                                                 "the saved state's VM definition");
                return;
            }
        }
        throw stream_error("no VM definition in the saved state");
    }
    void start() override {}
    void discard() override { staging_.reset(); }
    VmDefinition definition;

  private:
    std::unique_ptr<StagingMemory> staging_;
};
} // namespace

VmDefinition inspect_saved_vm(const std::string& path) {
    auto channel = migration::file_channel(path, false);
    DefinitionPeek peek;
    migration::IncomingResult in = migration::migrate_in(*channel, peek);
    if (!in.ok) {
        throw Error(ErrorCode::invalid_input, path + ": not a usable saved VM: " + in.error);
    }
    return peek.definition;
}

VmReceiver::VmReceiver(Options options) : options_(std::move(options)) {}
VmReceiver::~VmReceiver() = default;

migration::GuestMemory& VmReceiver::create(const std::string& name, std::uint64_t page_count) {
    // The largest VM a definition allows, with the PCI hole it skips.
    const std::uint64_t max_pages =
        pages_for(vmm::GuestMemory::pc_layout(VmDefinition::max_memory_mib << 20));
    if (page_count == 0 || page_count > max_pages) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("incoming VM '{}' has {} pages; a VM has 1 to {}", name, page_count,
                                max_pages));
    }
    staging_ = std::make_unique<Staging>(page_count);
    return *staging_;
}

void VmReceiver::restore(const std::vector<migration::StateBlob>& state) {
    if (!staging_) {
        throw stream_error("VM state before the VM's memory");
    }
    std::map<std::pair<std::string, std::string>, const migration::StateBlob*> by_key;
    for (const auto& b : state) {
        if (!by_key.emplace(std::pair{b.kind, b.id}, &b).second) {
            throw stream_error(fmt::format("two '{}' state records for '{}'", b.kind, b.id));
        }
    }
    auto take = [&](const char* kind, const std::string& id) -> const std::vector<std::uint8_t>& {
        auto it = by_key.find({kind, id});
        if (it == by_key.end()) {
            throw stream_error(fmt::format("no '{}' state record for '{}'", kind, id));
        }
        const auto& data = it->second->data;
        by_key.erase(it);
        return data;
    };
    auto text = [](const std::vector<std::uint8_t>& d) { return std::string(d.begin(), d.end()); };

    definition_ = parse_vm_definition(text(take(state_kind::definition, "definition")),
                                      "the migration stream's VM definition");
    if (!options_.rename.empty()) {
        definition_.name = options_.rename;
    }
    std::uint64_t pages = pages_for(vmm::GuestMemory::pc_layout(definition_.memory_mib << 20));
    if (pages != staging_->page_count()) {
        throw stream_error(fmt::format("the definition's {} MiB make {} pages, the stream has {}",
                                       definition_.memory_mib, pages, staging_->page_count()));
    }
    // Collect every blob before building anything, so a short stream fails cheaply.
    std::vector<VcpuState> vcpus;
    std::vector<std::vector<std::uint8_t>> extras;
    for (unsigned v = 0; v < definition_.vcpus; ++v) {
        vcpus.push_back(parse_vcpu_state(text(take(state_kind::vcpu, std::to_string(v)))));
        extras.push_back(take(state_kind::vcpu_extra, std::to_string(v)));
    }
    const auto irqchip = take(state_kind::irqchip, "ioapic");
    const auto devices = text(take(state_kind::device, "platform"));
    if (!by_key.empty()) {
        throw stream_error(fmt::format("unexpected '{}' state record '{}'",
                                       by_key.begin()->first.first, by_key.begin()->first.second));
    }

    using clock = std::chrono::steady_clock;
    auto mark = clock::now();
    auto lap = [&mark] {
        auto now = clock::now();
        double ms = std::chrono::duration<double, std::milli>(now - mark).count();
        mark = now;
        return ms;
    };
    VmPlatform::Options popts = options_.platform;
    if (options_.check) {
        options_.check(definition_, popts); // may refuse, or place the console elsewhere
    }
    timings_.check_ms = lap();
    popts.restoring = true;
    platform_ = std::make_unique<VmPlatform>(definition_, popts);
    platform_->restore_device_state(devices);
    timings_.devices_ms = lap();
    for (const RamRange& r : platform_->memory().ranges()) {
        platform_->memory().adopt(r.guest_base, staging_->at(r.guest_base / page_size), r.size);
    }
    staging_.reset(); // pages in holes are not kept (MigrationMemory sends them as zeros)
    timings_.memory_ms = lap();
    PartitionAccess& partition = options_.make_partition(*platform_, definition_);
    for (unsigned v = 0; v < definition_.vcpus; ++v) {
        partition.set_state(v, vcpus[v]); // registers first: the extra blob builds on them
        partition.set_vcpu_extra(v, extras[v]);
    }
    partition.set_irqchip(irqchip);
    timings_.partition_ms = lap();
}

void VmReceiver::discard() {
    staging_.reset();
    platform_.reset();
    started_ = false;
}

} // namespace godwit::vmm
