// Per-thread scratch arenas (see workspace.hpp).
#include "core/workspace.hpp"

#include <cstdlib>
#include <new>
#include <vector>

namespace matnet::detail {

namespace {

constexpr std::size_t kAlign = 64;

struct Chunk {
  void* ptr;
  std::size_t bytes, used;
};

struct Arena {
  std::vector<Chunk> chunks;  // chunks[0..current] in use, in order
  std::size_t current = 0;
  int depth = 0;
  ~Arena() {
    for (const Chunk& c : chunks) std::free(c.ptr);
  }

  static Chunk make_chunk(std::size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, bytes);
    if (p == nullptr) throw std::bad_alloc();
    return {p, bytes, 0};
  }

  void* take(std::size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    if (bytes == 0) bytes = kAlign;  // distinct, valid pointers for empty requests
    for (; current < chunks.size(); ++current) {
      Chunk& c = chunks[current];
      if (c.bytes - c.used >= bytes) {
        void* p = static_cast<char*>(c.ptr) + c.used;
        c.used += bytes;
        return p;
      }
      if (current + 1 < chunks.size()) chunks[current + 1].used = 0;
    }
    // Grow geometrically so a sequence of growing requests settles quickly.
    const std::size_t last = chunks.empty() ? 0 : chunks.back().bytes;
    chunks.reserve(chunks.size() + 1);
    chunks.push_back(make_chunk(bytes > 2 * last ? bytes : 2 * last));
    current = chunks.size() - 1;
    chunks[current].used = bytes;
    return chunks[current].ptr;
  }

  /// Outermost scope closed: merge several chunks into one so the next
  /// round of the same requests fits without allocating.
  void consolidate() {
    if (chunks.size() <= 1) return;
    std::size_t total = 0;
    for (const Chunk& c : chunks) total += c.bytes;
    for (const Chunk& c : chunks) std::free(c.ptr);
    chunks.clear();
    current = 0;
    try {
      chunks.push_back(make_chunk(total));
    } catch (const std::bad_alloc&) {
      // Nothing is lost: the arena is empty and grows again on demand.
    }
  }
};

Arena& arena() {
  thread_local Arena a;
  return a;
}

}  // namespace

WorkspaceScope::WorkspaceScope() {
  Arena& a = arena();
  chunk_mark_ = a.current;
  used_mark_ = a.chunks.empty() ? 0 : a.chunks[a.current].used;
  ++a.depth;
}

WorkspaceScope::~WorkspaceScope() {
  Arena& a = arena();
  --a.depth;
  if (!a.chunks.empty()) {
    a.current = chunk_mark_;
    a.chunks[chunk_mark_].used = used_mark_;
  }
  if (a.depth == 0) a.consolidate();
}

void* WorkspaceScope::alloc_bytes(std::size_t bytes) { return arena().take(bytes); }

std::size_t workspace_capacity() {
  std::size_t total = 0;
  for (const Chunk& c : arena().chunks) total += c.bytes;
  return total;
}

}  // namespace matnet::detail
