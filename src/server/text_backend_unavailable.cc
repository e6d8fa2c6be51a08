// Built when the tokenizer or chat-template library is missing from the tree.
#include "core/error.h"
#include "server/text_backend.h"

namespace qcoder::server {

std::unique_ptr<TextBackend> TextBackend::load(const std::string&, const std::string&) {
  throw Error("this build has no tokenizer/chat-template library; qcoder serve needs both");
}

}  // namespace qcoder::server
