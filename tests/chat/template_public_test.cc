// Byte-exactness on the public template references (rendered by Python jinja2 in
// transformers' environment): V3 (template_public.jsonl), V1 and V2.
#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "test_data.h"

namespace qcoder {
namespace {

using testing_chat::data_path;
using ojson = nlohmann::ordered_json;

struct Counts {
  int total = 0, exact = 0;
};

Counts check_file(const ChatTemplate& tmpl, const std::string& file) {
  Counts c;
  for (const ojson& row : testing_chat::read_jsonl(data_path(file))) {
    ++c.total;
    ojson req = {{"messages", row["messages"]},
                 {"tools", row["tools"]},
                 {"add_generation_prompt", row["add_generation_prompt"]}};
    const std::string id = row["id"].get<std::string>();
    if (row.contains("render_error") && !row["render_error"].is_null()) {
      try {
        const std::string got = tmpl.render(req);
        ADD_FAILURE() << file << " " << id << ": expected error " << row["render_error"]
                      << ", rendered " << got;
      } catch (const jinja::TemplateError& e) {
        const std::string got = e.type() + ": " + e.message();
        EXPECT_EQ(got, row["render_error"].get<std::string>()) << file << " " << id;
        if (got == row["render_error"].get<std::string>()) ++c.exact;
      }
      continue;
    }
    std::string got;
    try {
      got = tmpl.render(req);
    } catch (const std::exception& e) {
      ADD_FAILURE() << file << " " << id << ": " << e.what();
      continue;
    }
    const std::string want = row["rendered"].get<std::string>();
    EXPECT_EQ(got, want) << file << " " << id << " (" << row["note"] << ")";
    if (got == want) ++c.exact;
  }
  std::printf("%s: %d/%d byte-identical\n", file.c_str(), c.exact, c.total);
  return c;
}

TEST(TemplatePublic, V3ModelFolder) {
  const ChatTemplate t = ChatTemplate::load(data_path("qwen3-coder"));
  const Counts c = check_file(t, "template_public.jsonl");
  EXPECT_EQ(c.total, 40);
  EXPECT_EQ(c.exact, c.total);
}

TEST(TemplatePublic, V1) {
  const ChatTemplate t =
      ChatTemplate::load(data_path("qwen3-coder"), data_path("templates/qwen3_coder_v1.jinja"));
  const Counts c = check_file(t, "template_public_v1.jsonl");
  EXPECT_EQ(c.exact, c.total);
}

TEST(TemplatePublic, V2) {
  const ChatTemplate t =
      ChatTemplate::load(data_path("qwen3-coder"), data_path("templates/qwen3_coder_v2.jinja"));
  const Counts c = check_file(t, "template_public_v2.jsonl");
  EXPECT_EQ(c.exact, c.total);
}

// Without the server-side normalization the JSON-string arguments case fails as it does in
// Python ("raw_render_error"); with it, it renders.
TEST(TemplatePublic, RawRenderErrorsWithoutNormalization) {
  const ChatTemplate t = ChatTemplate::load(data_path("qwen3-coder"));
  for (const ojson& row : testing_chat::read_jsonl(data_path("template_public.jsonl"))) {
    if (!row.contains("raw_render_error")) continue;
    const std::string src = testing_chat::read_text(data_path("templates/qwen3_coder_v3.jinja"));
    const jinja::Template raw(src);
    ojson vars = {{"messages", row["messages"]},
                  {"tools", row["tools"]},
                  {"add_generation_prompt", row["add_generation_prompt"]}};
    try {
      raw.render(vars);
      ADD_FAILURE() << row["id"] << " rendered without normalization";
    } catch (const jinja::TemplateError& e) {
      EXPECT_EQ(e.type() + ": " + e.message(), row["raw_render_error"].get<std::string>());
    }
  }
}

}  // namespace
}  // namespace qcoder
