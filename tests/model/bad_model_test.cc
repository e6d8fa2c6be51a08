// Bad checkpoints and configs must give a clear error naming the culprit, never a crash.
// File-level safetensors corruptions are covered in tests/io; these are the model-level ones.
#include <functional>

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/model.h"
#include "model/model_fixture.h"

namespace qcoder {
namespace {

using testing::EditableModel;

std::string load_error(EditableModel& m) {
  const std::string dir = m.write();
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded without error)";
}

struct Case {
  const char* what;
  std::function<void(EditableModel&)> edit;
  std::vector<const char*> expect;  // substrings of the error
};

TEST(BadModel, EachCorruptionGivesAClearError) {
  const std::string q = "model.layers.1.self_attn.q_proj";
  const std::vector<Case> cases = {
      {"missing tensor", [&](EditableModel& m) { m.drop(q + ".weight"); }, {"missing tensor", "q_proj.weight"}},
      {"missing scales", [&](EditableModel& m) { m.drop(q + ".scales"); }, {"q_proj"}},
      {"missing biases", [&](EditableModel& m) { m.drop(q + ".biases"); }, {"missing tensor", "q_proj.biases"}},
      {"missing norm", [](EditableModel& m) { m.drop("model.norm.weight"); }, {"model.norm.weight"}},
      {"missing expert stack", [](EditableModel& m) { m.drop("model.layers.0.mlp.switch_mlp.up_proj.weight"); },
       {"switch_mlp.up_proj.weight"}},
      {"wrong norm shape", [](EditableModel& m) {
         auto* t = m.find("model.layers.0.input_layernorm.weight");
         t->shape = {t->shape[0] / 2};
         t->data.resize(t->data.size() / 2);
       }, {"input_layernorm.weight", "shape"}},
      {"config hidden_size disagrees", [](EditableModel& m) { m.config["hidden_size"] = 256; }, {"shape"}},
      {"config num_experts disagrees", [](EditableModel& m) { m.config["num_experts"] = 16; }, {"shape"}},
      {"config bits disagree with packing", [](EditableModel& m) { m.config["quantization"]["bits"] = 8; },
       {"4-bit", "8"}},
      {"unsupported bits", [](EditableModel& m) { m.config["quantization"]["bits"] = 7; }, {"bits"}},
      {"unsupported group size", [](EditableModel& m) { m.config["quantization"]["group_size"] = 16; }, {"group"}},
      {"missing config field", [](EditableModel& m) { m.config.erase("num_key_value_heads"); },
       {"num_key_value_heads", "config.json"}},
      {"contradictory heads", [](EditableModel& m) { m.config["num_key_value_heads"] = 3; }, {"num_key_value_heads"}},
      {"quantized tensors, no quantization in config", [](EditableModel& m) {
         m.config.erase("quantization");
         m.config.erase("quantization_config");
       }, {"quantiz"}},
      {"float tensor where quantized expected", [&](EditableModel& m) {
         auto* t = m.find(q + ".weight");
         t->dtype = "F32";
       }, {"q_proj.weight", "U32"}},
      {"scales dtype mismatch", [&](EditableModel& m) {
         auto* t = m.find(q + ".biases");
         t->dtype = "F16";
       }, {"q_proj.biases"}},
      {"wrong vocab", [](EditableModel& m) { m.config["vocab_size"] = 1000; }, {"embed_tokens", "shape"}},
  };
  for (const Case& c : cases) {
    EditableModel m("q4_g64");
    c.edit(m);
    const std::string err = load_error(m);
    for (const char* want : c.expect)
      EXPECT_NE(err.find(want), std::string::npos) << c.what << ": got \"" << err << "\"";
  }
}

TEST(BadModel, FolderWithoutWeightsOrConfig) {
  testing::TempDir empty;
  try {
    Model::load(empty.path().string());
    FAIL() << "loaded an empty folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  EditableModel m("q4_g64");
  m.write();
  std::filesystem::remove(m.dir.file("model.safetensors"));
  try {
    Model::load(m.dir.path().string());
    FAIL() << "loaded a folder without weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Model::load("/nonexistent/qcoder/model"), Error);
}

TEST(BadModel, TruncatedWeightsFile) {
  EditableModel m("q4_g64");
  const std::string dir = m.write();
  const auto path = m.dir.path() / "model.safetensors";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  try {
    Model::load(dir);
    FAIL() << "loaded a truncated file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
}

TEST(BadModel, PerExpertNamingLoadsLikeStacked) {
  // The HF layout (mlp.experts.E.*) must load and compute exactly like switch_mlp stacks.
  EditableModel m("q4_g64");
  const int64_t E = m.config["num_experts"].get<int64_t>();
  std::vector<testing::TestTensor> split;
  for (auto& t : m.tensors) {
    const auto pos = t.name.find(".mlp.switch_mlp.");
    if (pos == std::string::npos) {
      split.push_back(t);
      continue;
    }
    const std::string prefix = t.name.substr(0, pos) + ".mlp.experts.";
    const std::string rest = t.name.substr(pos + std::strlen(".mlp.switch_mlp."));
    const size_t per = t.data.size() / static_cast<size_t>(E);
    for (int64_t e = 0; e < E; ++e) {
      testing::TestTensor one{prefix + std::to_string(e) + "." + rest, t.dtype,
                              {t.shape.begin() + 1, t.shape.end()}, {}};
      one.data.assign(t.data.begin() + static_cast<std::ptrdiff_t>(e * per),
                      t.data.begin() + static_cast<std::ptrdiff_t>((e + 1) * per));
      split.push_back(std::move(one));
    }
  }
  m.tensors = split;
  auto per_expert = Model::load(m.write());
  auto stacked = Model::load(testing::fixture_dir("q4_g64"));
  ThreadPool pool(1);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  std::vector<float> a, b;
  for (auto* model : {per_expert.get(), stacked.get()}) {
    KvCache cache = model->new_cache(16);
    SequenceInput in{ids, &cache, LogitsMode::kAll};
    SequenceOutput out;
    model->forward({&in, 1}, {&out, 1}, pool);
    (a.empty() ? a : b) = out.logits;
  }
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace qcoder
