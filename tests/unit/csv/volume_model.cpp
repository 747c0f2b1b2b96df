#include "volume_model.hpp"

#include <algorithm>

namespace godwit::csv::testing {

std::string Op::describe() const {
    static const char* names[] = {"mkdir", "create", "write", "resize", "rename", "remove"};
    return std::string(names[static_cast<int>(kind)]) + " " + path +
           (target.empty() ? "" : " -> " + target) + " off=" + std::to_string(offset) +
           " size=" + std::to_string(size);
}

std::vector<std::byte> pattern(std::uint32_t seed, std::size_t length) {
    std::vector<std::byte> out(length);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<std::byte>(x);
    }
    return out;
}

namespace {
bool is_below(const std::string& path, const std::string& dir) {
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
           path[dir.size()] == '/';
}
} // namespace

Op OpGenerator::next(const Model& model) {
    std::vector<std::string> dirs{"/"};
    std::vector<std::string> files;
    for (const auto& [path, node] : model) {
        (node.directory ? dirs : files).push_back(path);
    }
    auto pick = [&](const std::vector<std::string>& v) {
        return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng_)];
    };
    auto fresh_name = [&](const std::string& dir) {
        std::string name = "n" + std::to_string(counter_++);
        if (rng_() % 8 == 0) {
            name += std::string(200 + rng_() % 56 - name.size(), 'x'); // long names, up to 255
        }
        return (dir == "/" ? "" : dir) + "/" + name;
    };
    for (;;) {
        const unsigned roll = rng_() % 100;
        Op op;
        if (roll < 10) {
            op.kind = OpKind::mkdir;
            op.path = fresh_name(pick(dirs));
            return op;
        }
        if (roll < 35 || files.empty()) {
            op.kind = OpKind::create;
            op.path = fresh_name(pick(dirs));
            op.size = rng_() % 3 == 0 ? rng_() % max_file_bytes_ : 0;
            return op;
        }
        if (roll < 60) {
            op.kind = OpKind::write;
            op.path = pick(files);
            op.offset = rng_() % max_file_bytes_;
            op.size = 1 + rng_() % (64 * 1024);
            op.data_seed = static_cast<std::uint32_t>(rng_());
            return op;
        }
        if (roll < 72) {
            op.kind = OpKind::resize;
            op.path = pick(files);
            op.size = rng_() % max_file_bytes_;
            return op;
        }
        if (roll < 86) {
            op.kind = OpKind::rename;
            std::vector<std::string> all = files;
            all.insert(all.end(), dirs.begin() + 1, dirs.end());
            op.path = pick(all);
            std::string to_dir = pick(dirs);
            if (to_dir == op.path || is_below(to_dir, op.path)) {
                continue;
            }
            op.target = fresh_name(to_dir);
            return op;
        }
        op.kind = OpKind::remove;
        std::vector<std::string> removable = files;
        for (std::size_t i = 1; i < dirs.size(); ++i) {
            bool empty = std::none_of(model.begin(), model.end(),
                                      [&](const auto& kv) { return is_below(kv.first, dirs[i]); });
            if (empty) {
                removable.push_back(dirs[i]);
            }
        }
        if (removable.empty()) {
            continue;
        }
        op.path = pick(removable);
        return op;
    }
}

void apply(Model& model, const Op& op) {
    switch (op.kind) {
    case OpKind::mkdir:
        model[op.path] = ModelNode{true, {}};
        break;
    case OpKind::create:
        model[op.path] = ModelNode{false, std::vector<std::byte>(op.size)};
        break;
    case OpKind::write: {
        auto& c = model.at(op.path).content;
        if (c.size() < op.offset + op.size) {
            c.resize(op.offset + op.size);
        }
        auto data = pattern(op.data_seed, op.size);
        std::copy(data.begin(), data.end(), c.begin() + static_cast<std::ptrdiff_t>(op.offset));
        break;
    }
    case OpKind::resize:
        model.at(op.path).content.resize(op.size);
        break;
    case OpKind::rename: {
        Model moved;
        for (auto it = model.begin(); it != model.end();) {
            if (it->first == op.path || is_below(it->first, op.path)) {
                moved[op.target + it->first.substr(op.path.size())] = std::move(it->second);
                it = model.erase(it);
            } else {
                ++it;
            }
        }
        model.merge(moved);
        break;
    }
    case OpKind::remove:
        model.erase(op.path);
        break;
    }
}

void apply(Volume& volume, const Op& op) {
    switch (op.kind) {
    case OpKind::mkdir:
        volume.make_directory(op.path);
        break;
    case OpKind::create:
        volume.create_file(op.path, op.size);
        break;
    case OpKind::write: {
        auto h = volume.open(op.path);
        auto data = pattern(op.data_seed, op.size);
        volume.write(h, op.offset, data);
        volume.flush();
        volume.close(h);
        break;
    }
    case OpKind::resize:
        volume.resize(op.path, op.size);
        break;
    case OpKind::rename:
        volume.rename(op.path, op.target);
        break;
    case OpKind::remove:
        volume.remove(op.path);
        break;
    }
}

namespace {
// `dir` is a volume path below `root`; models name paths relative to `root`.
void walk(Volume& volume, const std::string& root, const std::string& dir, Model& out) {
    for (const FileInfo& fi : volume.list(dir)) {
        if (dir == "/" && fi.name == kSnapshotDirectory) {
            continue; // the snapshots are not part of the live namespace's model
        }
        std::string path = (dir == "/" ? "" : dir) + "/" + fi.name;
        std::string key = root == "/" ? path : path.substr(root.size());
        if (fi.type == InodeType::directory) {
            out[key] = ModelNode{true, {}};
            walk(volume, root, path, out);
        } else {
            ModelNode node{false, std::vector<std::byte>(fi.size)};
            auto h = volume.open(path);
            volume.read(h, 0, node.content);
            volume.close(h);
            out[key] = std::move(node);
        }
    }
}
} // namespace

Model snapshot(Volume& volume, const std::string& root) {
    Model out;
    walk(volume, root, root, out);
    return out;
}

std::vector<std::string> compare(const Model& expected, const Model& actual,
                                 const std::vector<std::string>& loose) {
    std::vector<std::string> diffs;
    for (const auto& [path, node] : expected) {
        auto it = actual.find(path);
        if (it == actual.end()) {
            diffs.push_back("missing " + path);
        } else if (it->second.directory != node.directory) {
            diffs.push_back("wrong type " + path);
        } else if (std::find(loose.begin(), loose.end(), path) == loose.end() &&
                   it->second.content != node.content) {
            diffs.push_back("content differs " + path + " (size " +
                            std::to_string(it->second.content.size()) + " vs expected " +
                            std::to_string(node.content.size()) + ")");
        }
    }
    for (const auto& [path, node] : actual) {
        if (!expected.count(path)) {
            diffs.push_back("unexpected " + path);
        }
    }
    return diffs;
}

} // namespace godwit::csv::testing
