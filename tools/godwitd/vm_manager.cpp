#include "vm_manager.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "abi/godwit_hypercall.h"
#include "godwit/error.hpp"
#include "godwit/vmm/vm_migration.hpp"
#include "godwit/vmm/vm_platform.hpp"
#include "godwit/vmm/vm_result.hpp"
#include "godwit/vmm/vm_run_files.hpp"
#include "host_memory.hpp"
#include "worker_process.hpp"

namespace godwit::daemon {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr std::uint32_t default_console_chunk = 64 * 1024;
constexpr std::uint32_t max_console_chunk = 1024 * 1024;

namespace {

void fill_result(control::VmResult& out, const vmm::VmResult& r) {
    out.set_kind(std::string(to_string(r.kind)));
    out.set_exit_code(r.exit_code);
    out.set_address(r.address);
    out.set_error_code(r.error_code);
    out.set_message(r.message);
}

// Limits of the hypervisor itself, before anything about this host's free memory.
void check_hypervisor_limits(const vmm::VmDefinition& d) {
    if (d.vcpus < 1 || d.vcpus > GODWIT_MAX_VCPUS) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("VM '{}' asks for {} vCPUs; Godwit partitions have 1 to {} "
                                "(GODWIT_MAX_VCPUS)",
                                d.name, d.vcpus, GODWIT_MAX_VCPUS));
    }
    if (d.memory_mib > partition_memory_limit_mib) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("VM '{}' asks for {} MiB of memory; a Godwit partition has at "
                                "most {} MiB (hypercall ABI limit)",
                                d.name, d.memory_mib, partition_memory_limit_mib));
    }
}

} // namespace

VmManager::VmManager(asio::io_context& io, VmManagerOptions options)
    : io_(io), options_(std::move(options)), child_signals_(io, SIGCHLD) {
    if (options_.worker.empty()) {
        options_.worker = default_worker_program();
    }
    watch_children();
    // Nothing is created until the first VM is: a host that only answers `godwit host`
    // commands gets no directories.
    std::error_code ec;
    if (!fs::exists(options_.state_dir, ec)) {
        spdlog::info("no VM definitions yet ({} does not exist); worker {}",
                     options_.state_dir.string(), options_.worker.string());
        return;
    }
    try {
        store_.emplace(options_.state_dir);
        store_->names();
    } catch (const Error& e) {
        store_.reset();
        store_error_ = fmt::format("VM management is unavailable: {} (godwitd --state-dir "
                                   "chooses another directory)",
                                   e.what());
        spdlog::warn("{}", store_error_);
        return;
    }
    for (const std::string& name : store_->names()) {
        try {
            auto vm = std::make_unique<Vm>(store_->get(name));
            std::optional<vmm::VmResult> last;
            const vmm::VmRunFiles run = files(name);
            try {
                last = vmm::read_vm_result(run.result());
            } catch (const Error& e) {
                spdlog::warn("VM '{}': ignoring its last result: {}", name, e.what());
            }
            std::ifstream pid_file(run.worker_pid());
            std::string pid;
            if (!last && pid_file >> pid) {
                last = vmm::VmResult{vmm::VmResult::Kind::killed, 0, 0, 0,
                                     fmt::format("godwitd ended while the VM ran; its worker "
                                                 "(pid {}) ended with it",
                                                 pid)};
                spdlog::warn("VM '{}': {}", name, last->message);
                std::error_code ec;
                fs::remove(run.worker_pid(), ec);
                vmm::write_vm_result(run.result(), *last);
            }
            vm->life.restore(last);
            vms_.emplace(name, std::move(vm));
        } catch (const Error& e) {
            spdlog::error("VM definition '{}' not loaded: {}", name, e.what());
        }
    }
    spdlog::info("{} VM definition(s) loaded from {}; worker {}", vms_.size(),
                 options_.state_dir.string(), options_.worker.string());
}

VmManager::~VmManager() = default;

void VmManager::check_available() const {
    if (!store_error_.empty()) {
        throw Error(ErrorCode::io, store_error_);
    }
}

vmm::VmDefinitionStore& VmManager::store() {
    check_available();
    if (!store_) {
        try {
            store_.emplace(options_.state_dir);
        } catch (const Error& e) {
            throw Error(e.code(), fmt::format("cannot keep VM definitions: {} (godwitd "
                                              "--state-dir chooses another directory)",
                                              e.what()));
        }
    }
    return *store_;
}

vmm::VmRunFiles VmManager::files(const std::string& name) const {
    return {options_.run_dir / name};
}

VmManager::Vm& VmManager::find(const std::string& name) {
    check_available();
    auto it = vms_.find(name);
    if (it == vms_.end()) {
        throw Error(ErrorCode::not_found,
                    fmt::format("no VM named '{}' on this host (see `godwit vm list`)", name));
    }
    return *it->second;
}

std::uint64_t VmManager::available_memory_mib() const {
    std::uint64_t available = read_mem_available_mib();
    return available > options_.reserve_mib ? available - options_.reserve_mib : 0;
}

control::VmInfo VmManager::info(const Vm& vm) const {
    control::VmInfo out;
    out.set_name(vm.definition.name);
    out.set_state(std::string(to_string(vm.life.state())));
    out.set_pid(static_cast<std::uint32_t>(vm.life.pid()));
    out.set_definition_json(vmm::vm_definition_to_json(vm.definition));
    if (vm.life.started_at() != std::chrono::system_clock::time_point{}) {
        out.set_started_at_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       vm.life.started_at().time_since_epoch())
                                       .count());
    }
    out.set_uptime_ms(static_cast<std::uint64_t>(vm.life.uptime().count()));
    if (vm.life.last_result()) {
        out.set_has_result(true);
        fill_result(*out.mutable_last_result(), *vm.life.last_result());
    }
    out.set_console_log(files(vm.definition.name).console().string());
    out.set_result_file(files(vm.definition.name).result().string());
    out.set_incoming(vm.incoming);
    // A failed save leaves the VM running; the worker's outcome file says why.
    std::ifstream outcome(files(vm.definition.name).save_outcome());
    if (outcome) {
        auto doc = nlohmann::json::parse(outcome, nullptr, false);
        if (doc.is_object() && doc.value("ok", false) == false) {
            out.set_save_error(doc.value("error", std::string("the save failed")));
        }
    }
    return out;
}

control::VmInfo VmManager::create(const std::string& definition_json) {
    // The schema allows up to 254 vCPUs, this hypervisor fewer: name its range for a zero.
    auto doc = nlohmann::json::parse(definition_json, nullptr, false);
    if (doc.is_object() && doc.contains("vcpus") && doc["vcpus"].is_number_integer() &&
        doc["vcpus"].get<std::int64_t>() < 1) {
        throw Error(ErrorCode::invalid_input,
                    fmt::format("a VM has 1 to {} vCPUs, not {}", GODWIT_MAX_VCPUS,
                                doc["vcpus"].get<std::int64_t>()));
    }
    vmm::VmDefinition def = vmm::parse_vm_definition(definition_json, "in the create request");
    return info(register_vm(def, true));
}

void VmManager::refuse_name_in_use(const std::string& name) const {
    if (vms_.contains(name)) {
        throw Error(ErrorCode::conflict,
                    fmt::format("a VM named '{}' already exists (`godwit vm delete {}` first, or "
                                "choose another name)",
                                name, name));
    }
}

VmManager::Vm& VmManager::register_vm(const vmm::VmDefinition& def, bool validate_kernel) {
    vmm::VmDefinitionStore& definitions = store();
    refuse_name_in_use(def.name);
    check_hypervisor_limits(def);
    std::uint64_t available = available_memory_mib();
    if (!validate_kernel) {
        // Arriving by migration: its memory is already here, in the receiving worker (it
        // came in the stream), so MemAvailable no longer counts it; its kernel is not loaded
        // again (its image needs to exist here only for a later cold boot).
        definitions.create(def, std::numeric_limits<std::uint64_t>::max());
    } else {
        if (def.memory_mib > available) {
            throw Error(ErrorCode::conflict,
                        fmt::format("VM '{}' needs {} MiB of memory but the root partition can "
                                    "give only {} MiB now (MemAvailable less the {} MiB kept for "
                                    "the root, godwitd --reserve-mib)",
                                    def.name, def.memory_mib, available, options_.reserve_mib));
        }
        // Files exist, the kernel has a Multiboot header; then the loader itself places it
        // in a VM of this size, so a kernel that cannot boot is refused now, not at start.
        vmm::KernelFormat format = vmm::validate_vm_definition(def, {available, {}});
        try {
            vmm::VmPlatform dry_run(def, {});
        } catch (const Error& e) {
            throw Error(e.code(), fmt::format("kernel {} of VM '{}' cannot be loaded: {}",
                                              def.kernel, def.name, e.what()));
        }
        definitions.create(def, available);
        spdlog::info("VM '{}' created: {} vCPU, {} MiB, kernel {} ({})", def.name, def.vcpus,
                     def.memory_mib, def.kernel, vmm::to_string(format));
    }
    auto vm = std::make_unique<Vm>(def);
    Vm& ref = *vm;
    vms_.emplace(def.name, std::move(vm));
    return ref;
}

control::VmInfo VmManager::restore(const std::string& path, const std::string& name) {
    if (path.empty() || !fs::path(path).is_absolute()) {
        throw Error(ErrorCode::usage, fmt::format("restore from an absolute path, not '{}'", path));
    }
    // A name in use is refused before the file is read: checking all of it takes a while.
    if (!name.empty()) {
        refuse_name_in_use(name);
    }
    // Reads and checks the whole file now (blocking the daemon meanwhile): a damaged saved
    // state is refused before anything is registered.
    vmm::VmDefinition def = vmm::inspect_saved_vm(path);
    if (!name.empty()) {
        def.name = name;
    }
    create(vmm::vm_definition_to_json(def));
    try {
        return start(def.name, path);
    } catch (const Error&) {
        remove(def.name); // not left half-restored: the same restore can be retried
        throw;
    }
}

control::VmInfo VmManager::start(const std::string& name, const std::string& restore_from) {
    Vm& vm = find(name);
    vm.life.check_can_start();
    if (!fs::exists(options_.device)) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("{} does not exist: this host is not running on the Godwit "
                                "hypervisor, or the root driver godwit.ko is not loaded (see "
                                "`dmesg | grep godwit`); VM '{}' cannot start",
                                options_.device, name));
    }
    auto running = std::count_if(vms_.begin(), vms_.end(),
                                 [](const auto& entry) { return entry.second->life.active(); });
    if (running >= static_cast<long>(GODWIT_MAX_PARTITIONS)) {
        throw Error(ErrorCode::conflict,
                    fmt::format("{} VMs are running, the hypervisor's limit "
                                "(GODWIT_MAX_PARTITIONS); stop one before starting '{}'",
                                running, name));
    }
    // VMs still starting have not allocated their RAM yet: MemAvailable does not show them.
    std::uint64_t available = available_memory_mib(), starting = 0;
    for (const auto& [other, entry] : vms_) {
        if (entry->life.state() == VmState::starting) {
            starting += entry->definition.memory_mib;
        }
    }
    available = available > starting ? available - starting : 0;
    if (vm.definition.memory_mib > available) {
        throw Error(ErrorCode::conflict,
                    fmt::format("VM '{}' needs {} MiB of memory but the root partition can give "
                                "only {} MiB now (MemAvailable less the {} MiB reserve and {} MiB "
                                "for VMs still starting)",
                                name, vm.definition.memory_mib, available, options_.reserve_mib,
                                starting));
    }
    const vmm::VmRunFiles run = files(name);
    std::error_code ec;
    fs::create_directories(run.dir, ec);
    if (ec) {
        throw Error(ErrorCode::io, fmt::format("creating {} for VM '{}': {}", run.dir.string(),
                                               name, ec.message()));
    }
    fs::remove(run.result(), ec);
    fs::remove(run.migration_status(), ec);        // a new run has not been migrated yet
    std::ofstream(run.console(), std::ios::trunc); // a fresh console per run
    WorkerCommand command{.program = options_.worker,
                          .definition = options_.state_dir / (name + ".json"),
                          .run_dir = run.dir,
                          .log = run.worker_log(),
                          .device = options_.device,
                          .tls_dir = options_.tls_dir,
                          .restore_from = restore_from,
                          .name = name};
    fs::remove(run.save_outcome(), ec);
    SpawnedWorker worker = spawn_worker(command);
    vm.life.started(worker.pid);
    std::ofstream(run.worker_pid()) << worker.pid << '\n';
    vm.ready = std::make_unique<asio::posix::stream_descriptor>(io_, worker.ready_fd);
    watch_ready(vm);
    spdlog::info("VM '{}' starting: worker pid {}", name, worker.pid);
    return info(vm);
}

void VmManager::watch_ready(Vm& vm) {
    asio::async_read(*vm.ready, asio::buffer(vm.ready_byte),
                     [this, name = vm.definition.name,
                      pid = vm.life.pid()](boost::system::error_code ec, std::size_t) {
                         auto it = vms_.find(name);
                         if (ec || it == vms_.end() || it->second->life.pid() != pid) {
                             return; // EOF: the worker ended before running; reap says why
                         }
                         it->second->life.ready();
                         it->second->incoming = false; // arrived: it runs here now
                         spdlog::info("VM '{}' running (worker pid {})", name, pid);
                     });
}

control::VmInfo VmManager::stop(const std::string& name, std::chrono::seconds timeout) {
    Vm& vm = find(name);
    if (!vm.life.stop_requested()) {
        return info(vm); // already stopping
    }
    pid_t pid = vm.life.pid();
    vm.stop_timeout = timeout.count() > 0 ? timeout : options_.stop_timeout;
    ::kill(pid, SIGTERM);
    spdlog::info("VM '{}': SIGTERM to worker pid {}, SIGKILL in {} s if it is still there", name,
                 pid, vm.stop_timeout.count());
    vm.stop_timer = std::make_unique<asio::steady_timer>(io_, vm.stop_timeout);
    vm.stop_timer->async_wait([this, name, pid](boost::system::error_code ec) {
        auto it = vms_.find(name);
        if (ec || it == vms_.end() || it->second->life.pid() != pid) {
            return;
        }
        spdlog::warn("VM '{}': worker pid {} ignored SIGTERM; killing it", name, pid);
        it->second->life.stop_timed_out();
        ::kill(pid, SIGKILL);
    });
    return info(vm);
}

control::VmInfo VmManager::save(const std::string& name, const std::string& path) {
    Vm& vm = find(name);
    if (vm.life.state() != VmState::running) {
        throw Error(ErrorCode::conflict, fmt::format("VM '{}' is {}, not running: only a running "
                                                     "VM can be saved",
                                                     name, to_string(vm.life.state())));
    }
    if (path.empty() || !fs::path(path).is_absolute()) {
        throw Error(ErrorCode::usage, fmt::format("save to an absolute path, not '{}'", path));
    }
    if (fs::exists(path)) {
        throw Error(ErrorCode::conflict,
                    fmt::format("{} exists; not overwriting it with VM '{}'", path, name));
    }
    const vmm::VmRunFiles run = files(name);
    std::error_code ec;
    fs::remove(run.save_outcome(), ec);
    {
        std::ofstream request(run.save_request(), std::ios::trunc);
        request << path << '\n';
        if (!request.flush()) {
            throw Error(ErrorCode::io, fmt::format("writing {}", run.save_request().string()));
        }
    }
    ::kill(vm.life.pid(), SIGUSR2);
    spdlog::info("VM '{}': save to {} requested (SIGUSR2 to worker pid {})", name, path,
                 vm.life.pid());
    return info(vm);
}

control::VmInfo VmManager::kill(const std::string& name) {
    Vm& vm = find(name);
    vm.life.kill_requested();
    ::kill(vm.life.pid(), SIGKILL);
    spdlog::info("VM '{}': SIGKILL to worker pid {}", name, vm.life.pid());
    return info(vm);
}

control::VmInfo VmManager::remove(const std::string& name) {
    Vm& vm = find(name);
    vm.life.check_can_delete();
    control::VmInfo last = info(vm);
    store().remove(name);
    std::error_code ec;
    fs::remove_all(files(name).dir, ec);
    vms_.erase(name);
    spdlog::info("VM '{}' deleted", name);
    return last;
}

control::VmConsole VmManager::console(const std::string& name, std::uint64_t from,
                                      std::uint32_t max) {
    Vm& vm = find(name);
    max = max == 0 ? default_console_chunk : std::min(max, max_console_chunk);
    control::VmConsole out;
    out.set_active(vm.life.active());
    std::ifstream in(files(name).console(), std::ios::binary);
    if (!in) {
        return out; // never started: an empty console
    }
    in.seekg(0, std::ios::end);
    auto size = static_cast<std::uint64_t>(in.tellg());
    std::uint64_t start = from <= size ? from : 0; // a restart truncated the log
    std::string text(static_cast<std::size_t>(std::min<std::uint64_t>(size - start, max)), '\0');
    in.seekg(static_cast<std::streamoff>(start));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    out.set_start(start);
    out.set_end(size);
    out.set_text(std::move(text));
    return out;
}

void VmManager::watch_children() {
    child_signals_.async_wait([this](boost::system::error_code ec, int) {
        if (ec) {
            return;
        }
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            reap(pid, status);
        }
        watch_children();
    });
}

void VmManager::reap(pid_t pid, int status) {
    if (reap_incoming(pid)) {
        return;
    }
    auto it = std::find_if(vms_.begin(), vms_.end(),
                           [pid](const auto& entry) { return entry.second->life.pid() == pid; });
    if (it == vms_.end()) {
        return;
    }
    Vm& vm = *it->second;
    const std::string& name = vm.definition.name;
    const vmm::VmRunFiles run = files(name);
    WorkerExit exit;
    exit.wait_status = status;
    try {
        exit.reported = vmm::read_vm_result(run.result());
    } catch (const Error& e) {
        spdlog::warn("VM '{}': {}", name, e.what());
    }
    exit.log_tail = last_log_line(run.worker_log());
    std::error_code ec;
    fs::remove(run.worker_pid(), ec);
    bool reported = exit.reported.has_value();
    const vmm::VmResult& result = vm.life.exited(exit, vm.stop_timeout);
    if (!reported || result.kind == vmm::VmResult::Kind::killed) {
        try {
            vmm::write_vm_result(run.result(), result); // kept across godwitd restarts
        } catch (const Error& e) {
            spdlog::warn("VM '{}': {}", name, e.what());
        }
    }
    if (vm.stop_timer) {
        vm.stop_timer->cancel();
        vm.stop_timer.reset();
    }
    if (vm.ready) {
        boost::system::error_code ignored;
        vm.ready->close(ignored);
        vm.ready.reset();
    }
    spdlog::info("VM '{}' stopped (worker pid {}): {}: {}", name, pid, to_string(result.kind),
                 result.message);
    if (vm.incoming || result.message.starts_with("migrated to ")) {
        forget(std::string(name)); // it never arrived, or it runs on another host now
    }
}

void VmManager::shutdown(std::chrono::seconds grace) {
    std::vector<pid_t> workers;
    for (auto& [name, vm] : vms_) {
        if (vm->life.active()) {
            workers.push_back(vm->life.pid());
            vm->life.stop_requested();
            vm->stop_timeout = grace;
            ::kill(vm->life.pid(), SIGTERM);
        }
    }
    if (workers.empty()) {
        return;
    }
    spdlog::info("stopping {} VM worker(s) before godwitd exits", workers.size());
    auto deadline = std::chrono::steady_clock::now() + grace;
    bool killed = false;
    while (!workers.empty()) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            reap(pid, status);
            std::erase(workers, pid);
            continue;
        }
        if (pid < 0) {
            break; // no children left
        }
        if (!killed && std::chrono::steady_clock::now() > deadline) {
            for (auto& [name, vm] : vms_) {
                if (vm->life.active()) {
                    vm->life.stop_timed_out();
                    ::kill(vm->life.pid(), SIGKILL);
                }
            }
            killed = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

std::optional<control::Response> VmManager::handle(const control::Request& request) {
    control::Response response;
    using Body = control::Request::BodyCase;
    switch (request.body_case()) {
    case Body::kVmCreate:
        *response.mutable_vm() = create(request.vm_create().definition_json());
        break;
    case Body::kVmStart:
        *response.mutable_vm() = start(request.vm_start().name());
        break;
    case Body::kVmStop:
        *response.mutable_vm() = stop(request.vm_stop().name(),
                                      std::chrono::seconds(request.vm_stop().timeout_seconds()));
        break;
    case Body::kVmRestore:
        *response.mutable_vm() = restore(request.vm_restore().path(), request.vm_restore().name());
        break;
    case Body::kVmSave:
        *response.mutable_vm() = save(request.vm_save().name(), request.vm_save().path());
        break;
    case Body::kVmKill:
        *response.mutable_vm() = kill(request.vm_kill().name());
        break;
    case Body::kVmDelete:
        *response.mutable_vm() = remove(request.vm_delete().name());
        break;
    case Body::kVmShow:
        *response.mutable_vm() = info(find(request.vm_show().name()));
        break;
    case Body::kVmList:
        check_available();
        for (const auto& [name, vm] : vms_) {
            *response.mutable_vm_list()->add_vms() = info(*vm);
        }
        response.mutable_vm_list(); // present even when empty
        break;
    case Body::kVmMigrate:
        *response.mutable_vm_migration() = migrate(request.vm_migrate());
        break;
    case Body::kVmMigrateCancel:
        *response.mutable_vm_migration() = migrate_cancel(request.vm_migrate_cancel().name());
        break;
    case Body::kVmMigrationStatus:
        *response.mutable_vm_migration() = migration_status(request.vm_migration_status().name());
        break;
    case Body::kVmAdopt:
        *response.mutable_vm() = adopt(request.vm_adopt());
        break;
    case Body::kVmConsole:
        *response.mutable_vm_console() =
            console(request.vm_console().name(), request.vm_console().from(),
                    request.vm_console().max_bytes());
        break;
    default:
        return std::nullopt;
    }
    return response;
}

} // namespace godwit::daemon
