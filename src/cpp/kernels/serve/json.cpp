// See json.hpp. A recursive-descent reader with an explicit depth bound.
#include "serve/json.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "matnet/errors.hpp"

namespace matnet::detail {

namespace {

constexpr int kMaxDepth = 64;
// A model header has tens of values per layer; this bounds memory for a
// hostile header that is all "[[[...": ~100 bytes of JsonValue per value.
constexpr std::size_t kMaxValues = 1u << 20;

class Reader {
 public:
  Reader(const char* text, std::size_t size, const std::string& what)
      : p_(text), begin_(text), end_(text + size), what_(what) {}

  JsonValue document() {
    skip_space();
    JsonValue v = value(0);
    skip_space();
    if (p_ != end_) fail("trailing characters after the JSON value");
    return v;
  }

 private:
  const char* p_;
  const char* begin_;
  const char* end_;
  const std::string& what_;
  std::size_t values_ = 0;

  [[noreturn]] void fail(const std::string& msg) const {
    throw model_format_error(what_ + ": invalid JSON at byte " +
                             std::to_string(p_ - begin_) + ": " + msg);
  }

  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  char peek() const { return p_ != end_ ? *p_ : '\0'; }

  void expect_word(const char* word) {
    const std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0)
      fail(std::string("expected '") + word + "'");
    p_ += n;
  }

  JsonValue value(int depth) {
    if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (++values_ > kMaxValues) fail("more than " + std::to_string(kMaxValues) + " values");
    JsonValue v;
    switch (peek()) {
      case '{': object(v, depth); break;
      case '[': array(v, depth); break;
      case '"': v.kind = JsonValue::Kind::string; v.string = string(); break;
      case 't': expect_word("true"); v.kind = JsonValue::Kind::boolean; v.boolean = true; break;
      case 'f': expect_word("false"); v.kind = JsonValue::Kind::boolean; break;
      case 'n': expect_word("null"); break;
      default: number(v); break;
    }
    return v;
  }

  void object(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::object;
    ++p_;
    skip_space();
    if (peek() == '}') { ++p_; return; }
    for (;;) {
      skip_space();
      if (peek() != '"') fail("expected a string key");
      std::string key = string();
      for (const auto& member : v.object)
        if (member.first == key) fail("duplicate key \"" + key.substr(0, 64) + "\"");
      skip_space();
      if (peek() != ':') fail("expected ':'");
      ++p_;
      skip_space();
      v.object.emplace_back(std::move(key), value(depth + 1));
      skip_space();
      if (peek() == ',') { ++p_; continue; }
      if (peek() == '}') { ++p_; return; }
      fail("expected ',' or '}'");
    }
  }

  void array(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::array;
    ++p_;
    skip_space();
    if (peek() == ']') { ++p_; return; }
    for (;;) {
      skip_space();
      v.array.push_back(value(depth + 1));
      skip_space();
      if (peek() == ',') { ++p_; continue; }
      if (peek() == ']') { ++p_; return; }
      fail("expected ',' or ']'");
    }
  }

  unsigned hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      code <<= 4;
      if (c >= '0' && c <= '9') code |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') code |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= static_cast<unsigned>(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Copies one UTF-8 sequence starting at p_, checking it is well formed
  // (no overlongs, no surrogates, nothing above U+10FFFF).
  void utf8_char(std::string& out) {
    const auto b0 = static_cast<unsigned char>(*p_);
    int len;
    unsigned cp;
    if (b0 < 0x80) { out += static_cast<char>(b0); ++p_; return; }
    if ((b0 & 0xE0) == 0xC0) { len = 2; cp = b0 & 0x1F; }
    else if ((b0 & 0xF0) == 0xE0) { len = 3; cp = b0 & 0x0F; }
    else if ((b0 & 0xF8) == 0xF0) { len = 4; cp = b0 & 0x07; }
    else fail("invalid UTF-8");
    if (end_ - p_ < len) fail("truncated UTF-8 sequence");
    for (int i = 1; i < len; ++i) {
      const auto b = static_cast<unsigned char>(p_[i]);
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    static const unsigned min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail("invalid UTF-8");
    out.append(p_, static_cast<std::size_t>(len));
    p_ += len;
  }

  std::string string() {
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (p_ == end_) fail("unterminated string");
      const char c = *p_;
      if (c == '"') { ++p_; return out; }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { utf8_char(out); continue; }
      ++p_;
      if (p_ == end_) fail("unterminated escape");
      const char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("unpaired surrogate");
            p_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("unknown escape");
      }
    }
  }

  void number(JsonValue& v) {
    // Grammar check first (strtod alone accepts "inf", hex and leading '+').
    const char* start = p_;
    bool integral = true;
    if (peek() == '-') ++p_;
    if (peek() == '0') {
      ++p_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++p_;
    } else {
      fail("unexpected character");
    }
    if (peek() == '.') {
      integral = false;
      ++p_;
      if (!(peek() >= '0' && peek() <= '9')) fail("digit expected after '.'");
      while (peek() >= '0' && peek() <= '9') ++p_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++p_;
      if (peek() == '+' || peek() == '-') ++p_;
      if (!(peek() >= '0' && peek() <= '9')) fail("digit expected in exponent");
      while (peek() >= '0' && peek() <= '9') ++p_;
    }
    const std::string text(start, p_);
    if (text.size() > 400) fail("number too long");
    v.kind = JsonValue::Kind::number;
    v.number = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(v.number)) fail("number out of range");
    if (integral) {
      errno = 0;
      char* stop = nullptr;
      const long long i = std::strtoll(text.c_str(), &stop, 10);
      if (errno == 0 && stop == text.c_str() + text.size()) {
        v.is_int = true;
        v.integer = static_cast<std::int64_t>(i);
      }
    }
  }
};

}  // namespace

const JsonValue* JsonValue::find(const std::string& key) const {
  for (const auto& member : object)
    if (member.first == key) return &member.second;
  return nullptr;
}

const char* JsonValue::kind_name() const {
  switch (kind) {
    case Kind::null: return "null";
    case Kind::boolean: return "a boolean";
    case Kind::number: return "a number";
    case Kind::string: return "a string";
    case Kind::array: return "an array";
    case Kind::object: return "an object";
  }
  return "?";
}

JsonValue parse_json(const char* text, std::size_t size, const std::string& what) {
  return Reader(text, size, what).document();
}

}  // namespace matnet::detail
