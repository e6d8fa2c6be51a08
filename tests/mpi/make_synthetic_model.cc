// Writes a random-weight qwen3_moe checkpoint in MLX's layout (affine-quantized, stacked
// switch_mlp experts) of any size, streamed to disk: for the peak-RSS check of the pipeline
// plan and for scaling measurements (docs/DISTRIBUTED.md). Weights are random 4-bit codes with
// scales of about 1/sqrt(fan-in), so activations stay finite; the tokens mean nothing.
//
//   make_synthetic_model OUT_DIR [--layers N] [--hidden H] [--heads N] [--kv-heads N]
//       [--head-dim D] [--experts E] [--top-k K] [--moe-inter I] [--vocab V] [--group G]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct Tensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t bytes = 0;
  enum Kind { kCodes, kScales, kBiases, kOnes } kind = kCodes;
  double scale = 0;  // kScales / kBiases: the group scale
};

uint16_t bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

int64_t arg(std::map<std::string, int64_t>& a, const std::string& k) { return a.at(k); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: make_synthetic_model OUT_DIR [--layers N] [--hidden H] ...\n";
    return 2;
  }
  std::map<std::string, int64_t> a = {{"layers", 6},   {"hidden", 1024},    {"heads", 8},
                                      {"kv-heads", 2}, {"head-dim", 128},   {"experts", 8},
                                      {"top-k", 8},    {"moe-inter", 4096}, {"vocab", 4096},
                                      {"group", 64},   {"seed", 1}};
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
    a[k.substr(2)] = std::stoll(argv[i + 1]);
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const int64_t H = arg(a, "hidden"), L = arg(a, "layers"), nh = arg(a, "heads"),
                nkv = arg(a, "kv-heads"), hd = arg(a, "head-dim"), E = arg(a, "experts"),
                K = arg(a, "top-k"), I = arg(a, "moe-inter"), V = arg(a, "vocab"),
                G = arg(a, "group");
  const int bits = 4;

  std::vector<Tensor> tensors;
  // A quantized Linear [rows, cols] (times `stack` experts when stack > 0).
  auto linear = [&](const std::string& path, int64_t rows, int64_t cols, int64_t stack = 0) {
    std::vector<int64_t> lead;
    if (stack > 0) lead.push_back(stack);
    const int64_t count = stack > 0 ? stack : 1;
    const double scale = 1.0 / (4.6 * std::sqrt(static_cast<double>(cols)));
    auto shape = [&](int64_t last) {
      std::vector<int64_t> s = lead;
      s.push_back(rows);
      s.push_back(last);
      return s;
    };
    const uint64_t n = static_cast<uint64_t>(count * rows);
    tensors.push_back({path + ".weight", "U32", shape(cols * bits / 32),
                       n * static_cast<uint64_t>(cols * bits / 8), Tensor::kCodes, 0});
    tensors.push_back({path + ".scales", "BF16", shape(cols / G),
                       n * static_cast<uint64_t>(cols / G) * 2, Tensor::kScales, scale});
    tensors.push_back({path + ".biases", "BF16", shape(cols / G),
                       n * static_cast<uint64_t>(cols / G) * 2, Tensor::kBiases, scale});
  };
  auto norm = [&](const std::string& path, int64_t n) {
    tensors.push_back(
        {path + ".weight", "BF16", {n}, static_cast<uint64_t>(n) * 2, Tensor::kOnes, 0});
  };
  linear("model.embed_tokens", V, H);
  linear("lm_head", V, H);
  norm("model.norm", H);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    norm(p + ".input_layernorm", H);
    norm(p + ".post_attention_layernorm", H);
    norm(p + ".self_attn.q_norm", hd);
    norm(p + ".self_attn.k_norm", hd);
    linear(p + ".self_attn.q_proj", nh * hd, H);
    linear(p + ".self_attn.k_proj", nkv * hd, H);
    linear(p + ".self_attn.v_proj", nkv * hd, H);
    linear(p + ".self_attn.o_proj", H, nh * hd);
    linear(p + ".mlp.gate", E, H);
    linear(p + ".mlp.switch_mlp.gate_proj", I, H, E);
    linear(p + ".mlp.switch_mlp.up_proj", I, H, E);
    linear(p + ".mlp.switch_mlp.down_proj", H, I, E);
  }

  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "mlx"}};
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  const std::string text = header.dump();
  std::ofstream out(dir / "model.safetensors", std::ios::binary | std::ios::trunc);
  uint64_t len = text.size();
  char lenbuf[8];
  for (int i = 0; i < 8; ++i) lenbuf[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out.write(lenbuf, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  uint64_t state = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(arg(a, "seed"));
  std::vector<char> buf;
  for (const Tensor& t : tensors) {
    buf.resize(t.bytes);
    if (t.kind == Tensor::kCodes) {
      for (uint64_t i = 0; i + 8 <= t.bytes; i += 8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::memcpy(&buf[i], &state, 8);
      }
    } else {
      const float v = t.kind == Tensor::kOnes     ? 1.0f
                      : t.kind == Tensor::kScales ? static_cast<float>(t.scale)
                                                  : static_cast<float>(-7.5 * t.scale);
      const uint16_t b = bf16(v);
      for (uint64_t i = 0; i + 2 <= t.bytes; i += 2) std::memcpy(&buf[i], &b, 2);
    }
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  }
  if (!out) {
    std::cerr << "cannot write " << (dir / "model.safetensors") << "\n";
    return 1;
  }
  nlohmann::ordered_json config = {
      {"model_type", "qwen3_moe"},
      {"vocab_size", V},
      {"hidden_size", H},
      {"num_hidden_layers", L},
      {"num_attention_heads", nh},
      {"num_key_value_heads", nkv},
      {"head_dim", hd},
      {"intermediate_size", I},
      {"moe_intermediate_size", I},
      {"num_experts", E},
      {"num_experts_per_tok", K},
      {"decoder_sparse_step", 1},
      {"mlp_only_layers", nlohmann::json::array()},
      {"norm_topk_prob", true},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 1e7},
      {"max_position_embeddings", 4096},
      {"tie_word_embeddings", false},
      {"eos_token_id", V - 1},
      {"quantization", {{"group_size", G}, {"bits", bits}, {"mode", "affine"}}}};
  std::ofstream(dir / "config.json") << config.dump(2) << "\n";
  std::cout << dir.string() << ": " << offset << " bytes of weights\n";
  return 0;
}
