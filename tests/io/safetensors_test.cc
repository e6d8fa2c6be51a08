#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/safetensors_writer.h"

namespace qcoder {
namespace {

using testing::mlx_safetensors;
using testing::raw_safetensors;
using testing::TempDir;
using testing::TestTensor;
using testing::write_bytes;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 37 * i);
  return v;
}

// Runs f, expecting a qcoder::Error whose message contains every one of `needles`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no qcoder::Error thrown (expected one mentioning " << needles.front() << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << n << "\"";
  }
}

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir tmp;
  struct Case {
    const char* name;
    DType dtype;
    size_t size;
  };
  const std::vector<Case> cases = {
      {"F64", DType::kF64, 8},        {"F32", DType::kF32, 4}, {"F16", DType::kF16, 2},
      {"BF16", DType::kBF16, 2},      {"I64", DType::kI64, 8}, {"I32", DType::kI32, 4},
      {"I16", DType::kI16, 2},        {"I8", DType::kI8, 1},   {"U64", DType::kU64, 8},
      {"U32", DType::kU32, 4},        {"U16", DType::kU16, 2}, {"U8", DType::kU8, 1},
      {"BOOL", DType::kBool, 1},      {"C64", DType::kC64, 8}, {"F8_E4M3", DType::kF8E4M3, 1},
      {"F8_E8M0", DType::kF8E8M0, 1},
  };
  std::vector<TestTensor> tensors;
  uint8_t seed = 1;
  for (const Case& c : cases)
    tensors.push_back({std::string("t.") + c.name, c.name, {2, 3}, pattern(6 * c.size, seed++)});
  const std::string path = tmp.file("all.safetensors");
  write_bytes(path, mlx_safetensors(tensors));

  const auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->path(), path);
  ASSERT_EQ(st->tensors().size(), cases.size());
  EXPECT_EQ(st->metadata().at("format"), "mlx");
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorInfo& t = st->tensors().at(tensors[i].name);
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dtype, cases[i].dtype) << cases[i].name;
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t.ndim(), 2);
    EXPECT_EQ(t.numel(), 6);
    EXPECT_EQ(t.shape_string(), "[2, 3]");
    EXPECT_EQ(t.file, path);
    ASSERT_EQ(t.nbytes, tensors[i].data.size());
    EXPECT_EQ(std::memcmp(t.data, tensors[i].data.data(), t.nbytes), 0) << cases[i].name;
  }
}

TEST(Safetensors, UnalignedDataInFileOrderDifferentFromHeaderOrder) {
  TempDir tmp;
  // "z" (3 bytes) first in the buffer, so "a" (U32) and "m" (BF16) start at odd offsets.
  const std::vector<TestTensor> tensors = {
      {"z", "U8", {3}, {7, 8, 9}},
      {"a", "U32", {2}, {1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}},
      {"m", "BF16", {1}, {0x80, 0x3f}},
  };
  const std::string path = tmp.file("unaligned.safetensors");
  write_bytes(path, mlx_safetensors(tensors));
  const auto st = SafetensorsFile::open(path);
  const TensorInfo& z = st->tensors().at("z");
  const TensorInfo& a = st->tensors().at("a");
  const TensorInfo& m = st->tensors().at("m");
  EXPECT_EQ(a.data, z.data + 3);
  EXPECT_EQ(m.data, z.data + 11);
  EXPECT_EQ(load_u32(a.data), 1u);
  EXPECT_EQ(load_u32(a.data + 4), 0x7fffffffu);
  EXPECT_EQ(bf16_to_f32(load_u16(m.data)), 1.0f);
}

TEST(Safetensors, ScalarsAndEmptyTensors) {
  TempDir tmp;
  const std::vector<TestTensor> tensors = {
      {"scalar", "F32", {}, {0, 0, 0x80, 0x3f}},
      {"empty", "BF16", {0, 5}, {}},
      {"empty1d", "U8", {0}, {}},
      {"after", "U8", {2}, {4, 5}},
  };
  const std::string path = tmp.file("scalars.safetensors");
  write_bytes(path, mlx_safetensors(tensors));
  const auto st = SafetensorsFile::open(path);
  const TensorInfo& s = st->tensors().at("scalar");
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.shape_string(), "[]");
  EXPECT_EQ(load_f32(s.data), 1.0f);
  const TensorInfo& e = st->tensors().at("empty");
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes, 0u);
  EXPECT_EQ(e.shape_string(), "[0, 5]");
  EXPECT_EQ(st->tensors().at("after").data[1], 5);
}

TEST(Safetensors, HeaderPaddedWithSpacesAndNoTensors) {
  TempDir tmp;
  const std::string path = tmp.file("padded.safetensors");
  std::string header = R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  header.append(5, ' ');  // data then starts 8-byte aligned, as the HF writer does
  write_bytes(path, raw_safetensors(header, "\x01\x02"));
  const auto st = SafetensorsFile::open(path);
  EXPECT_EQ(st->tensors().at("x").data[1], 2);
  EXPECT_TRUE(st->metadata().empty());

  const std::string empty = tmp.file("empty_header.safetensors");
  write_bytes(empty, raw_safetensors("{}"));
  EXPECT_TRUE(SafetensorsFile::open(empty)->tensors().empty());
}

// mx.save_safetensors called without metadata writes "__metadata__": null.
TEST(Safetensors, NullMetadataAsMlxWritesIt) {
  TempDir tmp;
  const std::string path = tmp.file("null_meta.safetensors");
  write_bytes(path, raw_safetensors(R"({"__metadata__":null,"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "\x07"));
  const auto st = SafetensorsFile::open(path);
  EXPECT_TRUE(st->metadata().empty());
  EXPECT_EQ(st->tensors().at("x").data[0], 7);
}

TEST(Safetensors, HoleInDataBufferWarnsButOpens) {
  TempDir tmp;
  const std::string path = tmp.file("hole.safetensors");
  write_bytes(path, raw_safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                    R"("b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})",
                                    "abcdXY"));
  ::testing::internal::CaptureStderr();
  const auto st = SafetensorsFile::open(path);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(st->tensors().at("b").data[0], 'd');
  EXPECT_NE(err.find("hole.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find("4 of 6"), std::string::npos) << err;
}

// ---- Corruption matrix: every case must throw qcoder::Error naming the file (and tensor).

const char kGood[] =
    R"({"__metadata__":{"format":"mlx"},"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";

struct Corruption {
  const char* case_name;
  std::string bytes;
  std::string tensor;  // expected in the message, or empty
  std::string detail;  // expected in the message, or empty
};

std::string with_length(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + rest;
}

std::string one(const std::string& entry, const std::string& data) {
  return raw_safetensors("{\"w\":" + entry + "}", data);
}

std::vector<Corruption> corruptions() {
  const std::string good = raw_safetensors(kGood, "ab");
  return {
      {"empty_file", "", "", "empty"},
      {"four_bytes", std::string("\x10\0\0\0", 4), "", "too short"},
      {"truncated_data", good.substr(0, good.size() - 1), "w", "past"},
      {"header_past_eof", with_length(500, kGood), "", "past the end"},
      {"header_len_huge", with_length(100'000'000, kGood), "", "limit"},
      {"header_len_max", with_length(~uint64_t{0}, kGood), "", "limit"},
      {"header_empty", with_length(0, "ab"), "", "empty"},
      {"not_brace", raw_safetensors(" {}"), "", "'{'"},
      {"invalid_json", raw_safetensors(R"({"w":{"dtype":"U8",)"), "", "not valid JSON"},
      {"trailing_garbage", raw_safetensors("{} x"), "", "not valid JSON"},
      {"bad_utf8", raw_safetensors("{\"\xff\":1}"), "", "not valid JSON"},
      {"not_object", raw_safetensors("{}").replace(8, 2, "[]"), "", "'{'"},
      {"entry_not_object", one("[1]", ""), "w", "not an object"},
      {"unknown_dtype", one(R"({"dtype":"F8_E5M2","shape":[2],"data_offsets":[0,2]})", "ab"), "w",
       "F8_E5M2"},
      {"dtype_missing", one(R"({"shape":[2],"data_offsets":[0,2]})", "ab"), "w", "dtype"},
      {"negative_shape", one(R"({"dtype":"U8","shape":[-2],"data_offsets":[0,2]})", "ab"), "w",
       "non-negative"},
      {"float_shape", one(R"({"dtype":"U8","shape":[2.0],"data_offsets":[0,2]})", "ab"), "w",
       "non-negative"},
      {"shape_not_array", one(R"({"dtype":"U8","shape":2,"data_offsets":[0,2]})", "ab"), "w",
       "shape"},
      {"shape_overflow",
       one(R"({"dtype":"U32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", ""), "w",
       "overflow"},
      {"shape_bytes_overflow",
       one(R"({"dtype":"U64","shape":[2305843009213693952],"data_offsets":[0,0]})", ""), "w",
       "overflow"},
      {"offsets_out_of_range", one(R"({"dtype":"U8","shape":[2],"data_offsets":[4,6]})", "ab"), "w",
       "past"},
      {"offsets_end_before_begin", one(R"({"dtype":"U8","shape":[0],"data_offsets":[2,1]})", "ab"),
       "w", "end before begin"},
      {"offsets_three", one(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2,2]})", "ab"), "w",
       "data_offsets"},
      {"offsets_negative", one(R"({"dtype":"U8","shape":[2],"data_offsets":[-1,1]})", "ab"), "w",
       "data_offsets"},
      {"size_mismatch", one(R"({"dtype":"U16","shape":[2],"data_offsets":[0,2]})", "ab"), "w",
       "needs 4"},
      {"overlap",
       raw_safetensors(R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                       R"("w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                       "abcd"),
       "w", "overlap"},
      {"duplicate_tensor",
       raw_safetensors(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                       "ab"),
       "w", "duplicate"},
      {"duplicate_field",
       one(R"({"dtype":"U8","dtype":"U16","shape":[2],"data_offsets":[0,2]})", "ab"), "dtype",
       "duplicate"},
      {"metadata_not_strings", raw_safetensors(R"({"__metadata__":{"format":1}})"), "format",
       "not a string"},
      {"metadata_not_object", raw_safetensors(R"({"__metadata__":"mlx"})"), "", "__metadata__"},
  };
}

TEST(Safetensors, CorruptionMatrix) {
  TempDir tmp;
  const auto cases = corruptions();
  ASSERT_GE(cases.size(), 14u);
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.case_name);
    const std::string fname = std::string(c.case_name) + ".safetensors";
    write_bytes(tmp.path() / fname, c.bytes);
    std::vector<std::string> needles = {fname};
    if (!c.tensor.empty()) needles.push_back("\"" + c.tensor + "\"");
    if (!c.detail.empty()) needles.push_back(c.detail);
    expect_error([&] { SafetensorsFile::open(tmp.file(fname)); }, needles);
  }
}

TEST(Safetensors, MissingFileAndDirectoryAsFile) {
  TempDir tmp;
  expect_error([&] { SafetensorsFile::open(tmp.file("nope.safetensors")); }, {"nope.safetensors"});
  expect_error([&] { SafetensorsFile::open(tmp.path().string()); }, {tmp.path().string()});
}

// Random byte flips and truncations of a valid file: open() must succeed or throw
// qcoder::Error, never crash or throw anything else.
TEST(Safetensors, FuzzFlipsAndTruncations) {
  TempDir tmp;
  const std::string good = mlx_safetensors({
      {"z", "U8", {3}, {7, 8, 9}},
      {"model.layers.0.w", "U32", {2, 2}, pattern(16, 3)},
      {"s", "BF16", {}, {0x80, 0x3f}},
      {"e", "F16", {0}, {}},
  });
  const size_t header_end = good.size() - 21;
  const std::string path = tmp.file("fuzz.safetensors");
  const LogLevel saved = log_level();
  set_log_level(LogLevel::kError);  // holes from mutated offsets would warn
  std::mt19937 rng(12345);
  int opened = 0;
  unsigned touched = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = good;
    const int op = static_cast<int>(rng() % 4);
    if (op == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; ++f) {
        // Mostly inside the length prefix and header, where parsing happens.
        const size_t limit = (rng() % 8) ? header_end : bytes.size();
        const size_t pos = rng() % limit;
        if (op == 1)
          bytes[pos] = static_cast<char>(bytes[pos] ^ (1u << (rng() % 8)));
        else if (op == 2)
          bytes[pos] = static_cast<char>(rng() & 0xff);
        else
          bytes[pos] = "0123456789[]{},:\"- -e."[rng() % 22];
      }
    }
    write_bytes(path, bytes);
    try {
      const auto st = SafetensorsFile::open(path);
      ++opened;
      // Every tensor must lie inside the mapping (ASan builds check): touch its ends.
      for (const auto& [name, t] : st->tensors())
        if (t.nbytes) touched += t.data[0] ^ t.data[t.nbytes - 1];
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": non-qcoder exception: " << e.what();
    }
  }
  set_log_level(saved);
  EXPECT_GE(touched, 0u);
  EXPECT_GT(opened, 0);  // some mutations (e.g. in the data) leave the file valid
}

// ---- WeightStore

void write_shards(const TempDir& tmp) {
  write_bytes(
      tmp.path() / "model-00001-of-00002.safetensors",
      mlx_safetensors({{"a", "U8", {3}, {1, 2, 3}}, {"b", "F32", {1}, {0, 0, 0x80, 0x3f}}}));
  write_bytes(tmp.path() / "model-00002-of-00002.safetensors",
              mlx_safetensors({{"c", "BF16", {2}, {0, 0, 0x80, 0x3f}}}));
}

const char kIndex[] = R"({"metadata": {"total_size": 11}, "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"}})";

TEST(WeightStore, ShardsViaIndex) {
  TempDir tmp;
  write_shards(tmp);
  write_bytes(tmp.path() / "model.safetensors.index.json", kIndex);
  const auto ws = WeightStore::open_dir(tmp.path().string());
  EXPECT_EQ(ws->tensor_count(), 3u);
  EXPECT_EQ(ws->total_bytes(), 11u);
  EXPECT_EQ(ws->dir(), tmp.path().string());
  EXPECT_TRUE(ws->contains("c"));
  EXPECT_EQ(ws->get("c").file, tmp.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(bf16_to_f32(load_u16(ws->get("c").data + 2)), 1.0f);
  EXPECT_EQ(ws->get("a").data[2], 3);
  EXPECT_EQ(ws->find("zzz"), nullptr);
  expect_error([&] { ws->get("zzz"); }, {"missing tensor zzz in " + tmp.path().string()});
}

TEST(WeightStore, ShardsViaGlob) {
  TempDir tmp;
  write_shards(tmp);
  write_bytes(tmp.path() / "notes.txt", "not weights");
  write_bytes(tmp.path() / "._model-00001-of-00002.safetensors", "macOS resource fork");
  const auto ws = WeightStore::open_dir(tmp.path().string());
  EXPECT_EQ(ws->tensor_count(), 3u);
  EXPECT_EQ(ws->total_bytes(), 11u);
  std::vector<std::string> names;
  for (const auto& [name, info] : ws->all()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(WeightStore, OpenFiles) {
  TempDir tmp;
  write_shards(tmp);
  const auto ws = WeightStore::open_files({tmp.file("model-00002-of-00002.safetensors")});
  EXPECT_EQ(ws->tensor_count(), 1u);
  EXPECT_EQ(ws->dir(), tmp.path().string());
  expect_error([] { WeightStore::open_files({}); }, {"no files"});
}

TEST(WeightStore, UnindexedTensorWarns) {
  TempDir tmp;
  write_shards(tmp);
  write_bytes(tmp.path() / "model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                 "c": "model-00002-of-00002.safetensors"}})");
  ::testing::internal::CaptureStderr();
  const auto ws = WeightStore::open_dir(tmp.path().string());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(ws->contains("b"));
  EXPECT_NE(err.find("\"b\""), std::string::npos) << err;
  EXPECT_NE(err.find("model-00001-of-00002.safetensors"), std::string::npos) << err;
}

TEST(WeightStore, Errors) {
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model.safetensors.index.json",
                R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                   "c": "model-00003-of-00003.safetensors"}})");
    SCOPED_TRACE("index references a missing shard");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"model.safetensors.index.json", "model-00003-of-00003.safetensors", "\"c\""});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model.safetensors.index.json",
                R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                   "c": "model-00001-of-00002.safetensors"}})");
    SCOPED_TRACE("index names a tensor missing from its shard");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"model.safetensors.index.json", "model-00001-of-00002.safetensors", "\"c\""});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model.safetensors.index.json", R"({"weight_map": [1, 2]})");
    SCOPED_TRACE("index without a weight_map object");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"model.safetensors.index.json", "weight_map"});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model.safetensors.index.json", R"({"weight_map": {"a": )");
    SCOPED_TRACE("index not valid JSON");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"model.safetensors.index.json", "not valid JSON"});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model-00003.safetensors", mlx_safetensors({{"b", "U8", {1}, {9}}}));
    SCOPED_TRACE("same tensor in two shards (glob)");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"\"b\"", "model-00001-of-00002.safetensors", "model-00003.safetensors"});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model-00002-of-00002.safetensors",
                mlx_safetensors({{"c", "U8", {1}, {9}}, {"a", "U8", {1}, {9}}}));
    write_bytes(tmp.path() / "model.safetensors.index.json", kIndex);
    SCOPED_TRACE("same tensor in two shards (index lists it once)");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"\"a\"", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
  }
  {
    TempDir tmp;
    write_shards(tmp);
    write_bytes(tmp.path() / "model-00002-of-00002.safetensors", std::string("\x05\0\0\0", 4));
    SCOPED_TRACE("corrupt shard");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"model-00002-of-00002.safetensors"});
  }
  {
    TempDir tmp;
    write_bytes(tmp.path() / "config.json", "{}");
    SCOPED_TRACE("folder without weights");
    expect_error([&] { WeightStore::open_dir(tmp.path().string()); },
                 {"no *.safetensors files in " + tmp.path().string()});
  }
  {
    TempDir tmp;
    SCOPED_TRACE("folder that does not exist");
    const std::string missing = tmp.file("no_such_model");
    expect_error([&] { WeightStore::open_dir(missing); }, {missing, "does not exist"});
    write_bytes(missing, "x");
    SCOPED_TRACE("path is a file");
    expect_error([&] { WeightStore::open_dir(missing); }, {missing, "not a directory"});
  }
}

}  // namespace
}  // namespace qcoder
