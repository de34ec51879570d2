// The table a multi-tensor AdamW launch walks (kernels/multi_tensor_ops.h): one entry per tensor
// with its pointers and size, and the chunks that split every tensor into pieces of at most
// `chunk_elements` elements, numbered consecutively over the tensors. One GPU block takes one
// chunk and finds its tensor by a binary search over the entries' first chunks, so the table
// holds one entry per tensor however large the tensors are. Plain data and host+device functions,
// free of CUDA headers, so the host builds the table and tests walk it as the kernel does.
#pragma once

#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define FT_HOST_DEVICE __host__ __device__
#else
#define FT_HOST_DEVICE
#endif

namespace ft::multi_tensor {

// Elements per chunk in the trainer's launches: 64 per thread of a 256-thread block.
constexpr int64_t kChunkElements = 1 << 14;

// The dtype of a tensor's working copy.
enum class CopyKind : int32_t { none = 0, f32 = 1, bf16 = 2 };

struct AdamWEntry {
  float* params;
  const float* grads;
  float* m;
  float* v;
  void* copy;           // params_copy, null when absent
  int64_t count;        // elements, > 0
  int64_t first_chunk;  // its chunks are [first_chunk, first_chunk + chunks_of(count))
  CopyKind copy_kind;
  int32_t decay;  // 1: weight decay applies
};

FT_HOST_DEVICE inline int64_t chunks_of(int64_t count, int64_t chunk_elements) {
  return (count + chunk_elements - 1) / chunk_elements;
}

// The entry holding chunk `chunk` (0 <= chunk < total chunks) among `count` entries in order of
// first_chunk: the last entry whose first_chunk <= chunk.
FT_HOST_DEVICE inline int64_t entry_of_chunk(const AdamWEntry* entries, int64_t count,
                                             int64_t chunk) {
  int64_t low = 0, high = count;  // entries[low].first_chunk <= chunk < entries[high].first_chunk
  while (high - low > 1) {
    const int64_t middle = low + (high - low) / 2;
    if (entries[middle].first_chunk <= chunk)
      low = middle;
    else
      high = middle;
  }
  return low;
}

// Elements [begin, end) of entry `entry` that chunk `chunk` covers.
struct ChunkRange {
  int64_t begin, end;
};
FT_HOST_DEVICE inline ChunkRange chunk_range(const AdamWEntry& entry, int64_t chunk,
                                             int64_t chunk_elements) {
  const int64_t begin = (chunk - entry.first_chunk) * chunk_elements;
  const int64_t end = begin + chunk_elements < entry.count ? begin + chunk_elements : entry.count;
  return {begin, end};
}

// Sets every entry's first_chunk (entries with count > 0, in order) and returns the total number
// of chunks.
inline int64_t number_chunks(std::vector<AdamWEntry>& entries, int64_t chunk_elements) {
  int64_t next = 0;
  for (AdamWEntry& entry : entries) {
    entry.first_chunk = next;
    next += chunks_of(entry.count, chunk_elements);
  }
  return next;
}

}  // namespace ft::multi_tensor
