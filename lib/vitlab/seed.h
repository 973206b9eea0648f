#pragma once
// splitmix64: decorrelated seeds for (run seed, stream, index), so that every random draw of a
// run (initialisation, shuffles, each step, each image's augmentation) has a seed of its own.
#include <cstdint>

namespace vitlab {

inline uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + index + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The streams of a training run.
enum SeedStream : uint64_t { kSeedInit = 1, kSeedShuffle = 2, kSeedStep = 3, kSeedImage = 4, kSeedRank = 5 };

}  // namespace vitlab
