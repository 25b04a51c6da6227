// Special tokens in text: <PAD>=0, <UNK>=1, <BOS>=2, <EOS>=3 (tinyllm/tokenizer/patterns.py).
// They are found before pre-tokenization: leftmost match first, at one position the
// longest name (all four are five bytes, so that never arises today).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tinyllm {

inline constexpr int kNumSpecials = 4;
inline constexpr const char* kSpecialNames[kNumSpecials] = {"<PAD>", "<UNK>", "<BOS>", "<EOS>"};
inline constexpr uint32_t kByteOffset = kNumSpecials;    // byte b is token b + 4
inline constexpr uint32_t kFirstMerge = kByteOffset + 256;  // first learned token id

// Find the next allowed special token at or after `from`. Returns its position (n if
// none) and sets `id`. `allowed` is a bit mask over the special ids.
inline size_t find_special(const uint8_t* s, size_t n, size_t from, unsigned allowed, uint32_t& id) {
    if (!allowed) return n;
    size_t i = from;
    while (i < n) {
        const void* hit = std::memchr(s + i, '<', n - i);
        if (!hit) return n;
        i = static_cast<const uint8_t*>(hit) - s;
        size_t best_len = 0;
        for (int k = 0; k < kNumSpecials; ++k) {
            if (!(allowed & (1u << k))) continue;
            const size_t len = std::strlen(kSpecialNames[k]);
            if (len > best_len && i + len <= n && std::memcmp(s + i, kSpecialNames[k], len) == 0) {
                best_len = len;
                id = static_cast<uint32_t>(k);
            }
        }
        if (best_len) return i;
        ++i;
    }
    return n;
}

inline size_t special_length(uint32_t id) { return std::strlen(kSpecialNames[id]); }

// Call text(begin, end) for each stretch of ordinary text and special(id) for each
// allowed special token, in order.
template <class Text, class Special>
inline void split_specials(const uint8_t* s, size_t n, unsigned allowed, Text&& text, Special&& special) {
    size_t i = 0;
    while (i < n) {
        uint32_t id = 0;
        const size_t at = find_special(s, n, i, allowed, id);
        if (at > i) text(i, at);
        if (at == n) break;
        special(id);
        i = at + special_length(id);
    }
}

}  // namespace tinyllm
