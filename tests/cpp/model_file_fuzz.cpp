// Fuzz and hostile-file checks of the model-file reader (serve/model_spec:
// the safetensors container, the JSON parser and the architecture checks).
// tests/test_serving.py compiles this with the reader's sources under
// -fsanitize=address,undefined, so any out-of-bounds read, overflow or
// other undefined behaviour fails the test even when no exception shows it.
//
//   model_file_fuzz fuzz VALID_FILE ITERATIONS SEED
//       mutates the valid file ITERATIONS times; every mutant must either
//       load (and then describe weights inside the file) or throw
//       matnet::model_format_error: nothing else, and no sanitizer report.
//   model_file_fuzz reject FILE...
//       every FILE must be refused with model_format_error (its message printed).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "matnet/errors.hpp"
#include "serve/model_spec.hpp"

namespace {

using Bytes = std::vector<unsigned char>;

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::uint64_t header_length(const Bytes& b) {
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<std::size_t>(i)];
  return n;
}

// One random change, biased towards the header, where the parser works.
Bytes mutate(const Bytes& valid, std::mt19937_64& rng) {
  Bytes b = valid;
  const std::size_t header_end =
      static_cast<std::size_t>(std::min<std::uint64_t>(8 + header_length(valid), valid.size()));
  // A position in [lo, hi), clamped into the (possibly shortened) buffer.
  auto pick = [&](std::size_t lo, std::size_t hi) {
    hi = std::min(hi, b.size());
    if (hi <= lo) return std::min(lo, b.size());
    return lo + static_cast<std::size_t>(rng() % (hi - lo));
  };
  static const char* tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800",
                                 "-", "0", "1e999", "18446744073709551616", "9223372036854775807",
                                 "-1", "null", "true", "1.5", "\xff", "\xc0\x80", " "};
  const int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds && !b.empty(); ++r) {
    switch (rng() % 7) {
      case 0:  // flip a header byte
        b[std::min(pick(0, header_end), b.size() - 1)] ^= static_cast<unsigned char>(1u << (rng() % 8));
        break;
      case 1:  // overwrite any byte
        b[std::min(pick(0, b.size()), b.size() - 1)] = static_cast<unsigned char>(rng());
        break;
      case 2:  // truncate
        b.resize(pick(0, b.size()));
        break;
      case 3: {  // a new header length
        const std::uint64_t choices[] = {0, 1, 2, header_length(valid) + 1, header_length(valid) - 1,
                                         b.size(), b.size() - 8, UINT64_MAX, 1ull << 40, rng()};
        std::uint64_t n = choices[rng() % 10];
        if (b.size() >= 8)
          for (int i = 0; i < 8; ++i, n >>= 8) b[static_cast<std::size_t>(i)] = n & 0xFF;
        break;
      }
      case 4: {  // insert a JSON-ish token into the header
        const std::string t = tokens[rng() % (sizeof tokens / sizeof *tokens)];
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(8, header_end)),
                 t.begin(), t.end());
        break;
      }
      case 5: {  // delete a run of header bytes
        const std::size_t at = pick(8, header_end);
        const std::size_t len = std::min<std::size_t>(1 + rng() % 16, b.size() - at);
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                b.begin() + static_cast<std::ptrdiff_t>(at + len));
        break;
      }
      default: {  // replace a digit run in the header with an extreme number
        std::size_t at = pick(8, header_end);
        while (at < b.size() && !(b[at] >= '0' && b[at] <= '9')) ++at;
        std::size_t end = at;
        while (end < b.size() && b[end] >= '0' && b[end] <= '9') ++end;
        const std::string t = tokens[11 + rng() % 5];
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(end));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), t.begin(), t.end());
        break;
      }
    }
  }
  return b;
}

// A mutant that loads must still describe weights inside the file.
bool weights_inside(const matnet::detail::ModelSpec& spec, std::uint64_t size) {
  const std::uint64_t item = spec.float64 ? 8 : 4;
  for (const auto& L : spec.layers) {
    if (L.kind != matnet::detail::LayerSpec::Kind::dense) continue;
    const auto w = static_cast<std::uint64_t>(L.in_features) * static_cast<std::uint64_t>(L.out_features) * item;
    if (L.w_offset > size || w > size - L.w_offset) return false;
    if (L.use_bias && (L.b_offset > size || static_cast<std::uint64_t>(L.out_features) * item > size - L.b_offset))
      return false;
  }
  return true;
}

int fuzz(const std::string& path, long iterations, unsigned long long seed) {
  const Bytes valid = read_file(path);
  matnet::detail::parse_model_file(valid.data(), valid.size(), "valid");  // must load
  std::mt19937_64 rng(seed);
  long loaded = 0, refused = 0;
  for (long i = 0; i < iterations; ++i) {
    const Bytes b = mutate(valid, rng);
    try {
      const auto spec = matnet::detail::parse_model_file(b.data(), b.size(), "mutant");
      if (!weights_inside(spec, b.size())) {
        std::cerr << "mutant " << i << " loaded with weights outside the file\n";
        return 1;
      }
      ++loaded;
    } catch (const matnet::model_format_error&) {
      ++refused;
    } catch (const std::exception& e) {
      std::cerr << "mutant " << i << " threw something other than model_format_error: " << e.what()
                << "\n";
      return 1;
    }
  }
  std::printf("{\"iterations\": %ld, \"loaded\": %ld, \"refused\": %ld}\n", iterations, loaded, refused);
  return 0;
}

int reject(int count, char** paths) {
  int failures = 0;
  for (int i = 0; i < count; ++i) {
    try {
      const Bytes b = read_file(paths[i]);
      matnet::detail::parse_model_file(b.data(), b.size(), paths[i]);
      std::cerr << paths[i] << ": loaded, but should have been refused\n";
      ++failures;
    } catch (const matnet::model_format_error& e) {
      std::printf("%s\n", e.what());
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "fuzz" && argc == 5) return fuzz(argv[2], std::stol(argv[3]), std::stoull(argv[4]));
    if (mode == "reject" && argc > 2) return reject(argc - 2, argv + 2);
  } catch (const std::exception& e) {
    std::cerr << "model_file_fuzz: " << e.what() << "\n";
    return 2;
  }
  std::cerr << "usage: model_file_fuzz fuzz FILE ITERATIONS SEED | reject FILE...\n";
  return 2;
}
