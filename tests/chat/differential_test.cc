// Live differential test: random conversations (all roles, tools with nested schemas, enums,
// unicode, booleans, numbers, null content, dict and JSON-string tool arguments, consecutive
// tool messages) rendered by Python jinja2 through transformers' apply_chat_template path and
// by qcoder, with each of the four templates. Outputs (or error type and message) must match.
#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "peer.h"
#include "test_data.h"

namespace qcoder {
namespace {

using ojson = nlohmann::ordered_json;

TEST(TemplateDifferential, GeneratedConversationsMatchTransformers) {
  QCODER_REQUIRE_PEER();
  const int n = 300;
  const std::string templates_dir = std::string(QCODER_SOURCE_DIR) + "/tests/chat/data/templates";
  const std::string config =
      std::string(QCODER_SOURCE_DIR) + "/tests/chat/data/qwen3-coder/tokenizer_config.json";
  bool ok = false;
  const std::string out = testing_chat::run_reference(
      "jinja_reference.py chat --n " + std::to_string(n) + " --seed 20250801 --templates " +
          templates_dir + " --tokenizer-config " + config,
      "", &ok);
  ASSERT_TRUE(ok);
  const ojson special = ojson::parse(testing_chat::read_text(config));
  std::map<std::string, ChatTemplate> templates;
  int total = 0, exact = 0, errors = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const ojson row = ojson::parse(line);
    const std::string name = row["template"].get<std::string>();
    if (!templates.count(name))
      templates.emplace(name, ChatTemplate::from_string(
                                  testing_chat::read_text(templates_dir + "/" + name), special));
    ++total;
    const std::string what =
        row["id"].get<std::string>() + " " + name + "\nrequest: " + row["request"].dump();
    if (row.contains("error")) {
      ++errors;
      try {
        const std::string got = templates.at(name).render(row["request"]);
        ADD_FAILURE() << what << "\nexpected " << row["error"].dump() << ", rendered:\n" << got;
      } catch (const jinja::TemplateError& e) {
        const ojson want = row["error"];
        EXPECT_EQ(e.type(), want["type"].get<std::string>()) << what;
        EXPECT_EQ(e.message(), want["message"].get<std::string>()) << what;
        if (e.type() == want["type"] && e.message() == want["message"]) ++exact;
      }
      continue;
    }
    std::string got;
    try {
      got = templates.at(name).render(row["request"]);
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << "\n" << e.what();
      continue;
    }
    EXPECT_EQ(got, row["rendered"].get<std::string>()) << what;
    if (got == row["rendered"].get<std::string>()) ++exact;
  }
  EXPECT_EQ(total, 4 * n);
  EXPECT_EQ(exact, total);
  std::printf("differential: %d/%d renders identical to transformers (%d of them errors in both)\n",
              exact, total, errors);
}

}  // namespace
}  // namespace qcoder
