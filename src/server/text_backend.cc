// TextBackend over qcoder_tokenizer (Tokenizer, StreamingDetokenizer) and qcoder_chat
// (ChatTemplate and the Qwen3-Coder tool-call parsers).
#include "server/text_backend.h"

#include "chat/chat_template.h"
#include "chat/streaming_tool_parser.h"
#include "chat/tool_parser.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace qcoder::server {

using json = nlohmann::ordered_json;

namespace {

class Decoder final : public TextStreamDecoder {
 public:
  Decoder(const Tokenizer& tok, bool skip_special) : d_(tok, skip_special) {}
  std::string push(int32_t id) override { return d_.push(id); }
  std::string flush() override { return d_.flush(); }

 private:
  StreamingDetokenizer d_;
};

class Backend final : public TextBackend {
 public:
  Backend(std::unique_ptr<Tokenizer> tok, ChatTemplate tmpl)
      : tok_(std::move(tok)), tmpl_(std::move(tmpl)) {}

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    return tok_->encode(text, parse_special);
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    return tok_->decode(ids, skip_special);
  }
  std::optional<int32_t> token_id(std::string_view token) const override {
    return tok_->token_id(token);
  }
  bool is_special(int32_t id) const override { return tok_->is_special(id); }
  int64_t vocab_size() const override { return static_cast<int64_t>(tok_->vocab_size()); }
  std::unique_ptr<TextStreamDecoder> stream_decoder(bool skip_special) const override {
    return std::make_unique<Decoder>(*tok_, skip_special);
  }
  std::string render_chat(const json& request) const override { return tmpl_.render(request); }
  ParsedToolCalls parse_tool_calls(std::string_view text, const json& tools) const override;
  std::unique_ptr<ToolCallStream> tool_call_stream(const json& tools) const override;

 private:
  std::unique_ptr<Tokenizer> tok_;
  ChatTemplate tmpl_;
};

}  // namespace

std::unique_ptr<TextBackend> TextBackend::load(const std::string& model_dir,
                                               const std::string& template_file) {
  auto tok = Tokenizer::load(model_dir);
  ChatTemplate tmpl = ChatTemplate::load(
      model_dir, template_file.empty() ? std::nullopt : std::optional<std::string>(template_file));
  return std::make_unique<Backend>(std::move(tok), std::move(tmpl));
}

// Tool calls: qcoder_chat's Qwen3-Coder parsers (whole and streaming).
namespace {

class StreamingCalls final : public ToolCallStream {
 public:
  explicit StreamingCalls(const nlohmann::json& tools) : p_(tools) {}
  std::vector<json> push(std::string_view text) override { return convert(p_.push(text)); }
  std::vector<json> finish() override { return convert(p_.finish()); }

 private:
  static std::vector<json> convert(std::vector<nlohmann::json> in) {
    std::vector<json> out;
    out.reserve(in.size());
    for (auto& d : in) out.emplace_back(std::move(d));
    return out;
  }
  StreamingToolCallParser p_;
};

}  // namespace

ParsedToolCalls Backend::parse_tool_calls(std::string_view text, const json& tools) const {
  const ParsedToolOutput p = qcoder::parse_tool_calls(text, nlohmann::json(tools));
  ParsedToolCalls out;
  out.content = p.content;
  for (const auto& c : p.tool_calls) out.tool_calls.emplace_back(c);
  return out;
}

std::unique_ptr<ToolCallStream> Backend::tool_call_stream(const json& tools) const {
  return std::make_unique<StreamingCalls>(nlohmann::json(tools));
}

}  // namespace qcoder::server
