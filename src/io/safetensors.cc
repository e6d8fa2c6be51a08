#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/log.h"

namespace qcoder {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& what) {
  throw Error(path + ": tensor \"" + name + "\": " + what);
}

// Parses JSON text and rejects duplicate object keys at any depth (nlohmann would silently
// keep the last one). Throws qcoder::Error naming `path` on any syntax error.
json parse_json_strict(const char* begin, const char* end, const std::string& path,
                       const char* what) {
  std::vector<std::set<std::string>> keys_by_depth;  // one key set per open object
  std::string duplicate;
  bool duplicate_at_top = false;
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_by_depth.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys_by_depth.empty()) keys_by_depth.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys_by_depth.empty() && duplicate.empty() &&
            !keys_by_depth.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
          duplicate_at_top = keys_by_depth.size() == 1;
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const json::exception& e) {
    fail(path, std::string(what) + " is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) {
    if (duplicate_at_top)
      fail(path, std::string("duplicate name \"") + duplicate + "\" in " + what);
    fail(path, std::string("duplicate nested key \"") + duplicate + "\" in " + what);
  }
  return j;
}

// A non-negative JSON integer that fits in int64; nullopt otherwise (negative, float, huge).
std::optional<uint64_t> as_nonneg_int(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return u;
  }
  if (v.is_number_integer()) {  // signed: only "-0" is acceptable
    const int64_t s = v.get<int64_t>();
    if (s < 0) return std::nullopt;
    return static_cast<uint64_t>(s);
  }
  return std::nullopt;
}

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // overflow ruled out when the header was validated
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = std::make_unique<MappedFile>(path);
  std::unique_ptr<SafetensorsFile> st(new SafetensorsFile(std::move(mapped)));
  const uint8_t* bytes = st->file_->data();
  const size_t size = st->file_->size();

  if (size == 0) fail(path, "empty file, not a safetensors file");
  if (size < 8)
    fail(path, "file of " + std::to_string(size) + " bytes is too short for a safetensors header");
  const uint64_t header_len = read_le_u64(bytes);
  if (header_len >= kMaxSafetensorsHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " reaches the limit of " +
                   std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                   std::to_string(size) + "-byte file");
  if (header_len == 0) fail(path, "header is empty");
  if (bytes[8] != '{') fail(path, "header does not start with '{'");

  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  // Trailing space padding is allowed by the format; nlohmann skips trailing whitespace.
  const json header = parse_json_strict(hdr, hdr + header_len, path, "header");
  if (!header.is_object()) fail(path, "header JSON is not an object");

  const uint8_t* buffer = bytes + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;

  struct Extent {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Extent> extents;
  extents.reserve(header.size());

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == kMetadataKey) {
      if (entry.is_null()) continue;  // mx.save_safetensors without metadata writes null
      if (!entry.is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__ value for key \"" + m.key() + "\" is not a string");
        st->metadata_.emplace(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    if (!entry.is_object()) fail_tensor(path, name, "header entry is not an object");

    TensorInfo info;
    info.name = name;
    info.file = path;

    const auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) fail_tensor(path, name, "missing string \"dtype\"");
    const auto dtype = parse_dtype(dt->get_ref<const std::string&>());
    if (!dtype) fail_tensor(path, name, "unknown dtype \"" + dt->get<std::string>() + "\"");
    info.dtype = *dtype;

    const auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) fail_tensor(path, name, "missing array \"shape\"");
    uint64_t numel = 1;
    bool numel_overflow = false;
    for (const json& d : *sh) {
      const auto dim = as_nonneg_int(d);
      if (!dim)
        fail_tensor(path, name, "shape " + sh->dump() + " is not a list of non-negative integers");
      info.shape.push_back(static_cast<int64_t>(*dim));
      numel_overflow = numel_overflow || __builtin_mul_overflow(numel, *dim, &numel);
    }
    uint64_t expected_bytes = 0;
    if (numel_overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)),
                               &expected_bytes))
      fail_tensor(path, name, "shape " + sh->dump() + " overflows 64-bit sizes");

    const auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      fail_tensor(path, name, "missing \"data_offsets\": [begin, end]");
    const auto begin = as_nonneg_int((*off)[0]);
    const auto end = as_nonneg_int((*off)[1]);
    if (!begin || !end)
      fail_tensor(path, name, "data_offsets " + off->dump() + " are not non-negative integers");
    if (*end < *begin) fail_tensor(path, name, "data_offsets " + off->dump() + " end before begin");
    if (*end > buffer_size)
      fail_tensor(path, name,
                  "data_offsets " + off->dump() + " run past the " + std::to_string(buffer_size) +
                      "-byte data buffer (file truncated?)");
    if (*end - *begin != expected_bytes)
      fail_tensor(path, name,
                  "data_offsets " + off->dump() + " span " + std::to_string(*end - *begin) +
                      " bytes but " + std::string(dtype_name(info.dtype)) + " " + sh->dump() +
                      " needs " + std::to_string(expected_bytes));
    info.data = buffer + *begin;
    info.nbytes = static_cast<size_t>(expected_bytes);

    auto [pos, inserted] = st->tensors_.emplace(name, std::move(info));
    // Unreachable after duplicate-key detection, kept as a guard.
    if (!inserted) fail_tensor(path, name, "duplicate tensor name");
    extents.push_back({*begin, *end, &pos->first});
  }

  // Overlaps are errors; holes are tolerated with a warning (MLX never writes them, and the
  // HF spec forbids them, but they do not make any tensor unreadable).
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  uint64_t hole_bytes = 0;
  const std::string* prev = nullptr;
  for (const Extent& e : extents) {
    if (e.begin == e.end) continue;  // empty tensors occupy no bytes
    if (e.begin < covered)
      fail(path, "tensors \"" + *prev + "\" and \"" + *e.name + "\" overlap in the data buffer");
    hole_bytes += e.begin - covered;
    covered = e.end;
    prev = e.name;
  }
  hole_bytes += buffer_size - covered;
  if (hole_bytes > 0)
    QCODER_WARN(path << ": " << hole_bytes << " of " << buffer_size
                     << " data bytes are not covered by any tensor");
  return st;
}

std::unique_ptr<WeightStore> WeightStore::open_dir(const std::string& dir) {
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) throw Error(dir + ": model folder does not exist");
  if (ec) throw Error(dir + ": cannot access model folder: " + ec.message());
  if (!fs::is_directory(status)) throw Error(dir + ": not a directory");

  auto store = std::make_unique<WeightStore>();
  store->dir_ = dir;
  const fs::path root(dir);

  // Every *.safetensors in the folder, sorted. Dot-files are skipped: macOS copies leave
  // "._model-00001-of-00002.safetensors" resource forks that are not safetensors.
  std::vector<std::string> found;
  for (const fs::directory_entry& de : fs::directory_iterator(root, ec)) {
    const std::string fname = de.path().filename().string();
    if (fname.size() > 12 && fname.ends_with(".safetensors") && fname[0] != '.' &&
        de.is_regular_file(ec))
      found.push_back(fname);
  }
  if (ec) throw Error(dir + ": cannot list folder: " + ec.message());
  std::sort(found.begin(), found.end());

  const fs::path index_path = root / kIndexName;
  if (!fs::exists(index_path, ec)) {
    if (found.empty()) throw Error("no *.safetensors files in " + dir);
    for (const std::string& fname : found)
      store->add_file(SafetensorsFile::open((root / fname).string()));
    return store;
  }

  const std::string ipath = index_path.string();
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw Error(ipath + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string body = text.str();
  const json index = parse_json_strict(body.data(), body.data() + body.size(), ipath, "index");
  if (!index.is_object()) fail(ipath, "index JSON is not an object");
  const auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) fail(ipath, "missing object \"weight_map\"");
  if (wm->empty()) fail(ipath, "weight_map is empty");

  std::map<std::string, std::vector<std::string>> by_file;  // shard file -> tensor names
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string())
      fail(ipath, "weight_map entry for \"" + it.key() + "\" is not a string");
    const std::string& fname = it.value().get_ref<const std::string&>();
    if (fname.empty() || fs::path(fname).is_absolute())
      fail(ipath, "weight_map entry for \"" + it.key() + "\" is not a file name in the folder: \"" +
                      fname + "\"");
    by_file[fname].push_back(it.key());
  }

  for (const auto& [fname, names] : by_file) {
    const std::string shard = (root / fname).string();
    if (!fs::exists(shard, ec))
      fail(ipath, "shard " + shard + " (holding \"" + names.front() + "\") does not exist");
    auto file = SafetensorsFile::open(shard);
    for (const std::string& name : names)
      if (!file->tensors().count(name))
        fail(ipath, "tensor \"" + name + "\" is assigned to " + shard + ", which does not hold it");
    if (file->tensors().size() > names.size()) {
      std::set<std::string> listed(names.begin(), names.end());
      size_t extra = 0;
      std::string first;
      for (const auto& [name, info] : file->tensors())
        if (!listed.count(name) && extra++ == 0) first = name;
      QCODER_WARN(shard << ": " << extra << " tensor(s) not listed in " << kIndexName
                        << " (first: \"" << first << "\"); loading them anyway");
    }
    store->add_file(std::move(file));
  }
  for (const std::string& fname : found)
    if (!by_file.count(fname))
      QCODER_WARN((root / fname).string() << ": not referenced by " << kIndexName << "; ignored");
  return store;
}

std::unique_ptr<WeightStore> WeightStore::open_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("WeightStore::open_files: no files given");
  auto store = std::make_unique<WeightStore>();
  const fs::path parent = fs::path(paths.front()).parent_path();
  store->dir_ = parent.empty() ? "." : parent.string();
  for (const std::string& p : paths) store->add_file(SafetensorsFile::open(p));
  return store;
}

void WeightStore::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const auto& [name, info] : file->tensors()) {
    auto [it, inserted] = index_.emplace(name, &info);
    if (!inserted)
      throw Error("tensor \"" + name + "\" is in both " + it->second->file + " and " + info.file);
  }
  files_.push_back(std::move(file));
}

const TensorInfo* WeightStore::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorInfo& WeightStore::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error("missing tensor " + name + " in " + dir_);
  return *t;
}

uint64_t WeightStore::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, info] : index_) total += info->nbytes;
  return total;
}

std::vector<std::string> WeightStore::file_paths() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

}  // namespace qcoder
