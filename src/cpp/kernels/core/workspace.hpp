// The one scratch-memory scheme of every kernel (internal).
//
// Each thread owns an arena: a list of 64-byte aligned chunks that only ever
// grows. A WorkspaceScope takes memory from the calling thread's arena and
// gives it all back when it goes out of scope (LIFO), so nested users (dense
// backward's dZ buffer, then the GEMM it calls on the same thread) each get
// their own region. Chunks never move, so a pointer stays valid until its
// scope ends; when the outermost scope of a thread closes and its arena had
// to grow into several chunks, they are merged into one chunk of the total
// size, so that steady-state calls allocate nothing at all.
//
// Threads of a parallel region each use their own arena; memory that the
// region's threads share is taken by the calling thread before the region
// (allocation may throw std::bad_alloc; nothing inside a region should).
#pragma once

#include <cstddef>
#include <cstdint>

namespace matnet::detail {

class WorkspaceScope {
 public:
  WorkspaceScope();
  ~WorkspaceScope();
  WorkspaceScope(const WorkspaceScope&) = delete;
  WorkspaceScope& operator=(const WorkspaceScope&) = delete;

  /// count elements of T, 64-byte aligned, uninitialised; valid until this
  /// scope ends. Throws std::bad_alloc.
  template <class T>
  T* alloc(std::size_t count) {
    return static_cast<T*>(alloc_bytes(count * sizeof(T)));
  }

 private:
  void* alloc_bytes(std::size_t bytes);
  std::size_t chunk_mark_, used_mark_;
};

/// Bytes the calling thread's arena holds (for tests of reuse).
std::size_t workspace_capacity();

}  // namespace matnet::detail
