#include "server/choice_stream.h"

#include <gtest/gtest.h>

#include "server/fake_text_backend.h"

namespace qcoder::server {
namespace {

std::string content_of(const std::vector<nlohmann::ordered_json>& deltas) {
  std::string s;
  for (const auto& d : deltas) s += d.value("content", "");
  return s;
}

std::vector<int32_t> ids(const std::string& s) {
  return testing::FakeTextBackend().encode(s, true);
}

TEST(ChoiceStreamTest, StopStringAcrossTokensIsCutAndNeverSent) {
  testing::FakeTextBackend text;
  ChoiceStream cs(text, {"cde", "zz"}, nullptr, "", false);
  std::vector<nlohmann::ordered_json> out;
  std::vector<std::string> sent;
  for (int32_t id : ids("abcdefg")) {
    out.clear();
    cs.push(id, out);
    sent.push_back(content_of(out));
    if (cs.stopped()) break;
  }
  // "c" and "d" are held back (they could start "cde"); "cde" completes at the 5th token.
  EXPECT_EQ(sent, (std::vector<std::string>{"a", "b", "", "", ""}));
  EXPECT_TRUE(cs.stopped());
  EXPECT_EQ(cs.text(), "ab");
  EXPECT_EQ(cs.tokens(), 5);
}

TEST(ChoiceStreamTest, HeldTextIsReleasedWhenTheMatchFails) {
  testing::FakeTextBackend text;
  ChoiceStream cs(text, {"abc"}, nullptr, "", false);
  std::vector<nlohmann::ordered_json> out;
  for (int32_t id : ids("xababx")) cs.push(id, out);
  EXPECT_EQ(content_of(out), "xababx");
  out.clear();
  cs.push('a', out);
  EXPECT_EQ(content_of(out), "");
  cs.finish(out);  // the end releases what was held
  EXPECT_EQ(content_of(out), "a");
  EXPECT_FALSE(cs.stopped());
  EXPECT_EQ(cs.text(), "xababxa");
}

TEST(ChoiceStreamTest, FirstToolCallEndsTheChoiceWhenParallelCallsAreOff) {
  testing::FakeTextBackend text;
  const auto tools =
      nlohmann::ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  ChoiceStream cs(text, {}, tools, "<tool_call>\n<function=f>\n", true);
  std::vector<nlohmann::ordered_json> out;
  for (int32_t id : ids("</function>\n</tool_call>\nmore")) {
    cs.push(id, out);
    if (cs.stopped()) break;
  }
  EXPECT_TRUE(cs.stopped_by_tool_call());
  EXPECT_EQ(cs.text(), "<tool_call>\n<function=f>\n</function>\n</tool_call>");
  EXPECT_TRUE(cs.saw_tool_call());
}

TEST(ChoiceStreamTest, StopPrefixOverlap) {
  EXPECT_EQ(stop_prefix_overlap("hello wor", {"world"}), 3u);
  EXPECT_EQ(stop_prefix_overlap("hello", {"world", "lo!"}), 2u);
  EXPECT_EQ(stop_prefix_overlap("abc", {"x"}), 0u);
  EXPECT_EQ(stop_prefix_overlap("", {"ab"}), 0u);
}

}  // namespace
}  // namespace qcoder::server
