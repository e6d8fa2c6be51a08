#include "model/kv_cache.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "kernels/ops.h"

namespace qcoder {

namespace {

// The private allocator of a stand-alone cache: unbounded, blocks kept for reuse until the
// cache goes away.
class HeapBlockAllocator final : public KvBlockAllocator {
 public:
  HeapBlockAllocator(int64_t block_tokens, int64_t block_bytes)
      : block_tokens_(block_tokens), block_bytes_(block_bytes) {}
  int64_t block_tokens() const override { return block_tokens_; }
  int64_t block_bytes() const override { return block_bytes_; }
  int32_t allocate() override {
    int32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      id = static_cast<int32_t>(data_.size());
      data_.push_back(std::make_unique<uint8_t[]>(static_cast<size_t>(block_bytes_)));
      refs_.push_back(0);
    }
    refs_[static_cast<size_t>(id)] = 1;
    return id;
  }
  void retain(int32_t b) override { ++refs_[static_cast<size_t>(b)]; }
  void release(int32_t b) override {
    if (--refs_[static_cast<size_t>(b)] == 0) free_.push_back(b);
  }
  int32_t ref_count(int32_t b) const override { return refs_[static_cast<size_t>(b)]; }
  uint8_t* block_data(int32_t b) override { return data_[static_cast<size_t>(b)].get(); }

 private:
  int64_t block_tokens_, block_bytes_;
  std::vector<std::unique_ptr<uint8_t[]>> data_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;
};

constexpr int64_t kPrivateBlockTokens = 64;

}  // namespace

void KvBlockAllocator::copy_block(int32_t dst, int32_t src) {
  std::memcpy(block_data(dst), block_data(src), static_cast<size_t>(block_bytes()));
}

int64_t kv_row_bytes(const ModelConfig& config, const KvFormat& f) {
  validate_kv_format(f, config.head_dim);
  return kv_row_bytes(f, config.num_key_value_heads * config.head_dim);
}

int64_t kv_block_bytes(const ModelConfig& config, int64_t block_tokens, const KvFormat& f) {
  return config.num_hidden_layers * 2 * block_tokens * kv_row_bytes(config, f);
}

KvCache::KvCache(const ModelConfig& config, int64_t max_tokens, KvFormat format)
    : KvCache(config, max_tokens,
              std::make_shared<HeapBlockAllocator>(
                  kPrivateBlockTokens, kv_block_bytes(config, kPrivateBlockTokens, format)),
              format) {}

KvCache::KvCache(const ModelConfig& config, int64_t max_tokens,
                 std::shared_ptr<KvBlockAllocator> blocks, KvFormat format)
    : format_(format),
      row_elems_(config.num_key_value_heads * config.head_dim),
      row_bytes_(kv_row_bytes(config, format)),
      layers_(config.num_hidden_layers),
      max_tokens_(max_tokens),
      alloc_(std::move(blocks)) {
  const int64_t bt = alloc_->block_tokens();
  if (bt <= 0 || !std::has_single_bit(static_cast<uint64_t>(bt)))
    throw Error("KV block size must be a power of two, got " + std::to_string(bt));
  if (alloc_->block_bytes() != layers_ * 2 * bt * row_bytes_)
    throw Error("KV blocks of " + std::to_string(alloc_->block_bytes()) +
                " bytes do not hold the " + kv_format_name(format) + " rows of this model (" +
                std::to_string(layers_ * 2 * bt * row_bytes_) + " bytes)");
  shift_ = std::countr_zero(static_cast<uint64_t>(bt));
  mask_ = bt - 1;
}

KvCache::~KvCache() { release_all(); }

KvCache::KvCache(KvCache&& o) noexcept
    : format_(o.format_),
      row_elems_(o.row_elems_),
      row_bytes_(o.row_bytes_),
      layers_(o.layers_),
      max_tokens_(o.max_tokens_),
      length_(o.length_),
      shift_(o.shift_),
      mask_(o.mask_),
      alloc_(std::move(o.alloc_)),
      ids_(std::move(o.ids_)),
      table_(std::move(o.table_)) {
  o.ids_.clear();
  o.table_.clear();
  o.length_ = 0;
}

KvCache& KvCache::operator=(KvCache&& o) noexcept {
  if (this == &o) return *this;
  release_all();
  format_ = o.format_;
  row_elems_ = o.row_elems_;
  row_bytes_ = o.row_bytes_;
  layers_ = o.layers_;
  max_tokens_ = o.max_tokens_;
  length_ = o.length_;
  shift_ = o.shift_;
  mask_ = o.mask_;
  alloc_ = std::move(o.alloc_);
  ids_ = std::move(o.ids_);
  table_ = std::move(o.table_);
  o.ids_.clear();
  o.table_.clear();
  o.length_ = 0;
  return *this;
}

void KvCache::release_all() {
  for (int32_t id : ids_) alloc_->release(id);
  ids_.clear();
  table_.clear();
  length_ = 0;
}

void KvCache::append_block() {
  const int32_t id = alloc_->allocate();
  if (id < 0) throw KvOutOfMemory("the KV cache memory budget is exhausted");
  ids_.push_back(id);
  table_.push_back(alloc_->block_data(id));
}

void KvCache::make_private(size_t i) {
  if (alloc_->ref_count(ids_[i]) <= 1) return;
  const int32_t id = alloc_->allocate();
  if (id < 0) throw KvOutOfMemory("the KV cache memory budget is exhausted");
  // Only positions below length_ hold data; copying the whole block is simpler and the block
  // is small next to a forward step.
  alloc_->copy_block(id, ids_[i]);
  alloc_->release(ids_[i]);
  ids_[i] = id;
  table_[i] = alloc_->block_data(id);
}

int64_t KvCache::blocks_needed(int64_t n) const {
  if (n <= 0) return 0;
  const int64_t have = static_cast<int64_t>(ids_.size());
  const int64_t want = (length_ + n + mask_) >> shift_;
  int64_t need = std::max<int64_t>(0, want - have);
  // Existing blocks that the new positions write into and that others also hold.
  for (int64_t b = length_ >> shift_; b < std::min(have, want); ++b)
    if (alloc_->ref_count(ids_[static_cast<size_t>(b)]) > 1) ++need;
  return need;
}

void KvCache::reserve_more(int64_t n) {
  const int64_t need = length_ + n;
  if (need > max_tokens_)
    throw Error("sequence of " + std::to_string(need) + " tokens exceeds the context limit of " +
                std::to_string(max_tokens_));
  if (n <= 0) return;
  const int64_t want = (need + mask_) >> shift_;
  const int64_t have = static_cast<int64_t>(ids_.size());
  for (int64_t b = length_ >> shift_; b < std::min(have, want); ++b)
    make_private(static_cast<size_t>(b));
  while (static_cast<int64_t>(ids_.size()) < want) append_block();
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KvCache::truncate: bad length " + std::to_string(n));
  length_ = n;
  const size_t keep = static_cast<size_t>((n + mask_) >> shift_);
  while (ids_.size() > keep) {
    alloc_->release(ids_.back());
    ids_.pop_back();
    table_.pop_back();
  }
}

void KvCache::attach_prefix(std::span<const int32_t> blocks, int64_t tokens) {
  if (!ids_.empty() || length_ != 0) throw Error("KvCache::attach_prefix: the cache is not empty");
  if (tokens < 0 || tokens > static_cast<int64_t>(blocks.size()) << shift_ || tokens > max_tokens_)
    throw Error("KvCache::attach_prefix: " + std::to_string(tokens) + " tokens do not fit " +
                std::to_string(blocks.size()) + " blocks");
  for (int32_t id : blocks) {
    alloc_->retain(id);
    ids_.push_back(id);
    table_.push_back(alloc_->block_data(id));
  }
  length_ = tokens;
}

uint64_t KvCache::bytes() const {
  return static_cast<uint64_t>(ids_.size()) * static_cast<uint64_t>(alloc_->block_bytes());
}

void KvCache::store(int64_t layer, int64_t pos, const float* keys, const float* values) {
  ops::kv_encode_row(format_, keys, row_elems_, key_row(layer, pos));
  ops::kv_encode_row(format_, values, row_elems_, value_row(layer, pos));
}

void KvCache::load_key(int64_t layer, int64_t pos, float* out) {
  ops::kv_decode(format_, key_row(layer, pos), row_elems_, 0, row_elems_, out);
}

void KvCache::load_value(int64_t layer, int64_t pos, float* out) {
  ops::kv_decode(format_, value_row(layer, pos), row_elems_, 0, row_elems_, out);
}

}  // namespace qcoder
