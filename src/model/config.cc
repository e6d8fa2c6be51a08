#include "model/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "model/rope_scaling.h"

namespace qcoder {
namespace {

using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

class Reader {
 public:
  Reader(const json& j, const std::string& source) : j_(j), source_(source) {
    if (!j.is_object()) throw Error(source + ": expected a JSON object");
  }

  const json* find(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const json& require(const char* key) {
    const json* v = find(key);
    if (!v) throw Error(source_ + ": missing required field \"" + key + "\"");
    return *v;
  }
  [[noreturn]] void bad(const char* key, const std::string& why) {
    throw Error(source_ + ": field \"" + key + "\" " + why);
  }

  int64_t integer(const json& v, const char* key) {
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    }
    bad(key, "must be an integer, got " + v.dump());
  }
  int64_t positive(const char* key) {
    const int64_t x = integer(require(key), key);
    if (x <= 0) bad(key, "must be positive, got " + std::to_string(x));
    return x;
  }
  int64_t non_negative(const char* key) {
    const int64_t x = integer(require(key), key);
    if (x < 0) bad(key, "must be >= 0, got " + std::to_string(x));
    return x;
  }
  double number(const char* key) {
    const json& v = require(key);
    if (!v.is_number()) bad(key, "must be a number, got " + v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key) {
    const json& v = require(key);
    if (!v.is_boolean()) bad(key, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key) {
    const json& v = require(key);
    if (!v.is_string()) bad(key, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }

  void log_unknown_keys() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) QCODER_DEBUG(source_ << ": ignoring field \"" << it.key() << "\"");
  }

  const std::string& source() const { return source_; }

 private:
  const json& j_;
  std::string source_;
  std::set<std::string> seen_;
};

QuantSpec parse_quant_dict(const json& v, const std::string& where) {
  if (!v.is_object()) throw Error(where + ": expected an object or false, got " + v.dump());
  QuantMode mode = QuantMode::kAffine;
  if (auto it = v.find("mode"); it != v.end() && !it->is_null()) {
    if (!it->is_string()) throw Error(where + ": \"mode\" must be a string");
    auto m = parse_quant_mode(it->get<std::string>());
    if (!m) throw Error(where + ": unsupported quantization mode \"" + it->get<std::string>() + "\"");
    mode = *m;
  }
  QuantSpec spec = default_quant_spec(mode);
  auto int_field = [&](const char* key, int& out) {
    auto it = v.find(key);
    if (it == v.end() || it->is_null()) return;
    if (!it->is_number_integer()) throw Error(where + ": \"" + key + "\" must be an integer");
    out = it->get<int>();
  };
  int_field("bits", spec.bits);
  int_field("group_size", spec.group_size);
  validate_quant_spec(spec, where);
  return spec;
}

QuantizationConfig parse_quantization(const json& q, const std::string& where) {
  QuantizationConfig out;
  if (!q.is_object()) throw Error(where + ": expected an object, got " + q.dump());
  json global = json::object();
  for (auto it = q.begin(); it != q.end(); ++it) {
    const std::string& key = it.key();
    if (key == "bits" || key == "group_size" || key == "mode") {
      global[key] = it.value();
    } else if (it->is_boolean()) {
      // true: the global parameters (no override); false: keep this module in float.
      if (!it->get<bool>()) out.overrides[key] = std::nullopt;
    } else if (it->is_object()) {
      out.overrides[key] = parse_quant_dict(*it, where + "[\"" + key + "\"]");
    } else if (key == "quant_method" || key == "linear_class" || key == "quantization_mode") {
      QCODER_DEBUG(where << ": ignoring \"" << key << "\"");
    } else {
      throw Error(where + "[\"" + key + "\"]: expected an object or false, got " + it->dump());
    }
  }
  if (!global.empty()) {
    if (!global.contains("bits") && !global.contains("mode"))
      throw Error(where + ": has \"group_size\" but no \"bits\"");
    out.global = parse_quant_dict(global, where);
  }
  return out;
}

std::vector<int32_t> parse_id_list(const json& v, const std::string& where) {
  std::vector<int32_t> ids;
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      throw Error(where + ": token ids must be non-negative integers, got " + x.dump());
    ids.push_back(x.get<int32_t>());
  };
  if (v.is_array()) {
    for (const auto& x : v) one(x);
  } else {
    one(v);
  }
  return ids;
}

}  // namespace

QuantSpec QuantizationConfig::spec_for(const std::string& path, bool has_scales) const {
  if (auto it = overrides.find(path); it != overrides.end()) return it->second.value_or(QuantSpec{});
  if (global && has_scales) return *global;
  return QuantSpec{};
}

bool ModelConfig::is_sparse_layer(int64_t i) const {
  const bool dense_listed =
      std::find(mlp_only_layers.begin(), mlp_only_layers.end(), i) != mlp_only_layers.end();
  return !dense_listed && num_experts > 0 && (i + 1) % decoder_sparse_step == 0;
}

ModelConfig parse_model_config(const json& j, const std::string& source, const RopeOptions& rope) {
  Reader r(j, source);
  ModelConfig c;
  c.model_type = r.string("model_type");
  if (c.model_type != "qwen3_moe")
    r.bad("model_type", "is \"" + c.model_type + "\"; qcoder supports \"qwen3_moe\"");
  c.vocab_size = r.positive("vocab_size");
  c.hidden_size = r.positive("hidden_size");
  c.num_hidden_layers = r.positive("num_hidden_layers");
  c.num_attention_heads = r.positive("num_attention_heads");
  c.num_key_value_heads = r.positive("num_key_value_heads");
  // mlx-lm falls back to hidden/heads when head_dim is absent; so do we.
  if (const json* hd = r.find("head_dim")) {
    c.head_dim = r.integer(*hd, "head_dim");
    if (c.head_dim <= 0) r.bad("head_dim", "must be positive");
  } else {
    c.head_dim = c.hidden_size / c.num_attention_heads;
    QCODER_DEBUG(source << ": no head_dim; using hidden_size / num_attention_heads = " << c.head_dim);
  }
  c.intermediate_size = r.non_negative("intermediate_size");
  c.moe_intermediate_size = r.non_negative("moe_intermediate_size");
  c.num_experts = r.non_negative("num_experts");
  c.num_experts_per_tok = r.non_negative("num_experts_per_tok");
  c.decoder_sparse_step = r.positive("decoder_sparse_step");
  {
    const json& v = r.require("mlp_only_layers");
    if (!v.is_array()) r.bad("mlp_only_layers", "must be a list of layer indices");
    for (const auto& x : v) {
      const int64_t i = r.integer(x, "mlp_only_layers");
      if (i < 0 || i >= c.num_hidden_layers)
        r.bad("mlp_only_layers", "holds layer " + std::to_string(i) + " outside 0.." +
                                     std::to_string(c.num_hidden_layers - 1));
      c.mlp_only_layers.push_back(i);
    }
  }
  c.norm_topk_prob = r.boolean("norm_topk_prob");
  c.rms_norm_eps = r.number("rms_norm_eps");
  if (!(c.rms_norm_eps > 0)) r.bad("rms_norm_eps", "must be positive");
  c.rope_theta = r.number("rope_theta");
  if (!(c.rope_theta > 1)) r.bad("rope_theta", "must be > 1");
  c.max_position_embeddings = r.positive("max_position_embeddings");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings");

  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.bad("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                     ") must divide num_attention_heads (" +
                                     std::to_string(c.num_attention_heads) + ")");
  if (c.head_dim % 2 != 0) r.bad("head_dim", "must be even for rotate-half RoPE");
  bool any_sparse = false, any_dense = false;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) (c.is_sparse_layer(i) ? any_sparse : any_dense) = true;
  if (any_sparse) {
    if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
      r.bad("num_experts_per_tok", "must be in 1..num_experts (" + std::to_string(c.num_experts) + ")");
    if (c.moe_intermediate_size <= 0) r.bad("moe_intermediate_size", "must be positive");
  }
  if (any_dense && c.intermediate_size <= 0)
    r.bad("intermediate_size", "must be positive: some layers use the dense MLP");

  {
    // transformers 5 saves the block as "rope_parameters"; older configs as "rope_scaling".
    const json* rs = r.find("rope_scaling");
    const char* key = "rope_scaling";
    if (const json* rp = r.find("rope_parameters"); !rs && rp) {
      rs = rp;
      key = "rope_parameters";
    }
    resolve_rope_scaling(c, rs, source + " " + key, rope);
  }
  if (const json* eos = r.find("eos_token_id")) c.eos_token_ids = parse_id_list(*eos, source + " eos_token_id");
  for (const char* key : {"attention_bias", "qkv_bias"})
    if (const json* b = r.find(key); b && b->is_boolean() && b->get<bool>())
      r.bad(key, "is true, but Qwen3-MoE attention has no bias and qcoder does not support one");
  if (const json* q = r.find("quantization")) {
    c.quantization = parse_quantization(*q, source + " \"quantization\"");
  } else if (const json* qc = r.find("quantization_config")) {
    // mlx-lm writes an identical copy under this HF name; it is only read when "quantization"
    // is absent. HF-native quant_method blocks (awq, gptq, ...) are not MLX formats.
    if (qc->contains("quant_method") && !qc->contains("bits"))
      r.bad("quantization_config", "uses quant_method \"" + qc->value("quant_method", std::string("?")) +
                                       "\", which qcoder does not load; convert with mlx_lm.convert");
    c.quantization = parse_quantization(*qc, source + " \"quantization_config\"");
  }
  for (const char* key : {"architectures", "bos_token_id", "torch_dtype", "dtype",
                          "transformers_version", "use_cache", "initializer_range",
                          "attention_dropout", "hidden_act", "max_window_layers",
                          "sliding_window", "use_sliding_window", "output_router_logits",
                          "router_aux_loss_coef", "shared_expert_intermediate_size",
                          "use_qk_norm"})
    r.find(key);
  if (const json* act = j.contains("hidden_act") ? &j["hidden_act"] : nullptr;
      act && act->is_string() && act->get<std::string>() != "silu")
    r.bad("hidden_act", "is " + act->dump() + "; qwen3_moe uses silu");
  r.log_unknown_keys();
  return c;
}

ModelConfig load_model_config(const std::string& dir, const RopeOptions& rope) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  if (!std::filesystem::exists(path)) throw Error(dir + ": no config.json in the model folder");
  return parse_model_config(read_json_file(path), path, rope);
}

std::vector<int32_t> load_stop_token_ids(const std::string& dir, const ModelConfig& config) {
  std::vector<int32_t> ids = config.eos_token_ids;
  const auto gen_path = std::filesystem::path(dir) / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    const json g = read_json_file(gen_path.string());
    if (g.is_object() && g.contains("eos_token_id") && !g["eos_token_id"].is_null())
      ids = parse_id_list(g["eos_token_id"], gen_path.string() + " eos_token_id");
  }
  const auto tok_path = std::filesystem::path(dir) / "tokenizer.json";
  if (std::filesystem::exists(tok_path)) {
    const json t = read_json_file(tok_path.string());
    if (t.is_object() && t.contains("added_tokens") && t["added_tokens"].is_array()) {
      for (const auto& tok : t["added_tokens"]) {
        if (!tok.is_object() || !tok.contains("id") || !tok.contains("content")) continue;
        const std::string content = tok["content"].is_string() ? tok["content"].get<std::string>() : "";
        const int64_t id = tok["id"].is_number_integer() ? tok["id"].get<int64_t>() : -1;
        if ((content == "<|im_end|>" && id == 151645) || (content == "<|endoftext|>" && id == 151643))
          ids.push_back(static_cast<int32_t>(id));
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace qcoder
