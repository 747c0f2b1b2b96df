// Kills a real coordinator process (SIGKILL) at random points during metadata-heavy work on
// a shared image file opened with O_DIRECT, then mounts (journal replay) and requires the
// checker to pass and every operation the process reported complete to be present.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "godwit/csv/checker.hpp"
#include "godwit/csv/volume.hpp"
#include "godwit/error.hpp"
#include "volume_model.hpp"

using namespace godwit::csv;
namespace model = godwit::csv::testing;

namespace {

MountOptions coordinator() {
    MountOptions o;
    o.identity = {1, "coordinator"};
    o.lease.lease_duration_ms = 10;
    return o;
}

// Child: runs operations until killed, reporting each completed one on `fd`.
[[noreturn]] void worker(const std::string& image, std::uint64_t seed, int fd) {
    try {
        PosixBlockDevice dev(image, PosixBlockDevice::Access::read_write, true);
        auto v = Volume::mount(dev, coordinator());
        model::Model m;
        model::OpGenerator gen(seed, 128 * 1024);
        for (std::uint32_t i = 0;; ++i) {
            model::Op op = gen.next(m);
            model::apply(*v, op);
            model::apply(m, op);
            if (::write(fd, &i, sizeof i) != sizeof i) {
                _exit(3);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker: %s\n", e.what());
        _exit(2);
    }
}

} // namespace

TEST(CsvCrash, SigkillDuringMetadataWorkLosesNothingCommitted) {
    const std::string image = (std::filesystem::path(GODWIT_CSV_TEST_DIR) /
                               ("crash-" + std::to_string(::getpid()) + ".img"))
                                  .string();
    std::mt19937_64 rng(20261125);
    int total_ops = 0;
    for (int round = 0; round < 8; ++round) {
        PosixBlockDevice::create_image(image, 32ull << 20);
        {
            PosixBlockDevice dev(image, PosixBlockDevice::Access::read_write, true);
            FormatOptions f;
            f.inode_count = 2000;
            format_volume(dev, f);
        }
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        const std::uint64_t seed = rng();
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            worker(image, seed, fds[1]);
        }
        ::close(fds[1]);
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status))
            << "the worker stopped by itself (status " << status << ")";
        std::uint32_t completed = 0;
        std::uint32_t index = 0;
        while (::read(fds[0], &index, sizeof index) == sizeof index) {
            completed = index + 1;
        }
        ::close(fds[0]);
        total_ops += static_cast<int>(completed);

        // Rebuild what the worker did: `completed` operations, and maybe the one in flight.
        model::Model committed;
        model::OpGenerator gen(seed, 128 * 1024);
        for (std::uint32_t i = 0; i < completed; ++i) {
            model::apply(committed, gen.next(committed));
        }
        model::Op in_flight = gen.next(committed);
        model::Model attempted = committed;
        model::apply(attempted, in_flight);

        PosixBlockDevice dev(image, PosixBlockDevice::Access::read_write, true);
        auto before = check_volume(dev); // with the pending transaction overlaid
        ASSERT_TRUE(before.clean()) << "round " << round << ": " << before.problems.front();
        auto v = Volume::mount(dev, coordinator()); // replays the journal
        auto actual = model::snapshot(*v);
        const std::vector<std::string> loose{in_flight.path, in_flight.target};
        auto d1 = model::compare(committed, actual, loose);
        auto d2 = model::compare(attempted, actual, loose);
        ASSERT_TRUE(d1.empty() || d2.empty())
            << "round " << round << " after " << completed << " ops, in flight "
            << in_flight.describe() << ": " << (d1.empty() ? "" : d1.front());
        v.reset();
        auto after = check_volume(dev);
        ASSERT_TRUE(after.clean()) << after.problems.front();
    }
    std::filesystem::remove(image);
    EXPECT_GT(total_ops, 50) << "the workers hardly ran: the test proves little";
    std::printf("crash test: %d operations completed across 8 killed workers\n", total_ops);
}
