// Pre-tokenization: the gpt4 (cl100k) and gpt2 (r50k) split patterns, by hand.
//
// Exactly the pieces `regex.findall(pattern, text)` gives (tinyllm/tokenizer/patterns.py):
// each function below returns the end of the match the regex engine finds at position
// i, trying the alternatives in the pattern's order. Every position matches some
// alternative, so the pieces tile the text. Character classes (letter \p{L}, number
// \p{N}, space \s, other) come from unicode_tables.h, generated from `regex` itself.
#pragma once
#include <cstddef>
#include <cstdint>

#include "unicode_tables.h"
#include "utf8.h"

namespace tinyllm {

enum class Pattern { kGpt4 = 0, kGpt2 = 1 };

// ASCII classes: letters, digits, \t \n \v \f \r and space; everything else other.
struct AsciiClasses {
    uint8_t c[128];
    constexpr AsciiClasses() : c() {
        for (int i = 0; i < 128; ++i) {
            c[i] = kOther;
            if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z')) c[i] = kLetter;
            if (i >= '0' && i <= '9') c[i] = kNumber;
            if (i == ' ' || (i >= 0x09 && i <= 0x0D)) c[i] = kSpace;
        }
    }
};
inline constexpr AsciiClasses kAscii{};

inline uint8_t class_of(uint32_t cp) { return cp < 128 ? kAscii.c[cp] : char_class(cp); }

// Decoded code point plus its class, at s[i].
struct Char {
    uint32_t cp;
    uint32_t len;
    uint8_t cls;
};

inline Char char_at(const uint8_t* s, size_t n, size_t i) {
    const uint8_t b = s[i];
    if (b < 0x80) return {b, 1, kAscii.c[b]};
    const CodePoint c = decode_at(s, n, i);
    return {c.cp, c.len, char_class(c.cp)};
}

// End of the run of characters of class `cls` starting at i (i itself may be n).
inline size_t run_end(const uint8_t* s, size_t n, size_t i, uint8_t cls) {
    while (i < n) {
        const uint8_t b = s[i];
        if (b < 0x80) {
            if (kAscii.c[b] != cls) break;
            ++i;
        } else {
            const CodePoint c = decode_at(s, n, i);
            if (char_class(c.cp) != cls) break;
            i += c.len;
        }
    }
    return i;
}

// The contraction letter a code point matches case-insensitively (gpt4's (?i:...)), or 0.
inline char fold_contraction(uint32_t cp) {
    if (cp < 128) {
        const char c = static_cast<char>(cp | 0x20);  // ASCII lower case (harmless for non-letters)
        if (cp >= 'A' && (c == 's' || c == 'd' || c == 'm' || c == 't' || c == 'l' || c == 'v' || c == 'e' || c == 'r'))
            return c;
        return 0;
    }
    return contraction_fold_nonascii(cp);
}

// Shared tail of both patterns: a whitespace run starting at i (first char `c0`).
//   \s++$         the run reaches the end of the text: all of it
//   \s*[\r\n]     (gpt4 only) up to and including the run's last \r or \n
//   \s+(?!\S)     a run of 2+ chars before a non-space: all but its last char
//   \s            otherwise the single char
template <bool kNewlineRule>
inline size_t whitespace_match(const uint8_t* s, size_t n, size_t i, Char c0) {
    size_t k = i + c0.len, last_start = i, newline_end = 0;
    if (kNewlineRule && (c0.cp == '\n' || c0.cp == '\r')) newline_end = k;
    size_t chars = 1;
    while (k < n) {
        const Char c = char_at(s, n, k);
        if (c.cls != kSpace) break;
        if (kNewlineRule && (c.cp == '\n' || c.cp == '\r')) newline_end = k + c.len;
        last_start = k;
        k += c.len;
        ++chars;
    }
    if (k == n) return n;
    if (kNewlineRule && newline_end) return newline_end;
    if (chars >= 2) return last_start;
    return i + c0.len;
}

// '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
inline size_t gpt4_match(const uint8_t* s, size_t n, size_t i) {
    const Char c0 = char_at(s, n, i);
    const size_t j = i + c0.len;
    // '(?i:[sdmt]|ll|ve|re)
    if (c0.cp == '\'' && j < n) {
        const Char c1 = char_at(s, n, j);
        const char f1 = fold_contraction(c1.cp);
        if (f1 == 's' || f1 == 'd' || f1 == 'm' || f1 == 't') return j + c1.len;
        if ((f1 == 'l' || f1 == 'v' || f1 == 'r') && j + c1.len < n) {
            const Char c2 = char_at(s, n, j + c1.len);
            const char f2 = fold_contraction(c2.cp);
            if ((f1 == 'l' && f2 == 'l') || (f1 != 'l' && f2 == 'e')) return j + c1.len + c2.len;
        }
    }
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    if (c0.cls == kLetter) return run_end(s, n, j, kLetter);
    if (c0.cls != kNumber && c0.cp != '\r' && c0.cp != '\n' && j < n) {
        const Char c1 = char_at(s, n, j);
        if (c1.cls == kLetter) return run_end(s, n, j + c1.len, kLetter);
    }
    // \p{N}{1,3}+
    if (c0.cls == kNumber) {
        size_t k = j;
        for (int t = 0; t < 2 && k < n; ++t) {
            const Char c = char_at(s, n, k);
            if (c.cls != kNumber) break;
            k += c.len;
        }
        return k;
    }
    //  ?[^\s\p{L}\p{N}]++[\r\n]*+
    size_t p = (c0.cls == kOther) ? i : SIZE_MAX;
    if (c0.cp == ' ' && j < n && char_at(s, n, j).cls == kOther) p = j;
    if (p != SIZE_MAX) {
        size_t k = run_end(s, n, p, kOther);
        while (k < n && (s[k] == '\r' || s[k] == '\n')) ++k;
        return k;
    }
    return whitespace_match<true>(s, n, i, c0);
}

// '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
inline size_t gpt2_match(const uint8_t* s, size_t n, size_t i) {
    const Char c0 = char_at(s, n, i);
    const size_t j = i + c0.len;
    if (c0.cp == '\'' && j < n) {
        const uint8_t b = s[j];
        if (b == 's' || b == 'd' || b == 'm' || b == 't') return j + 1;
        if (j + 1 < n && ((b == 'l' && s[j + 1] == 'l') || ((b == 'v' || b == 'r') && s[j + 1] == 'e'))) return j + 2;
    }
    // one optional space, then a run of letters, numbers or others
    if (c0.cp == ' ' && j < n) {
        const Char c1 = char_at(s, n, j);
        if (c1.cls != kSpace) return run_end(s, n, j + c1.len, c1.cls);
    }
    if (c0.cls != kSpace) return run_end(s, n, j, c0.cls);
    return whitespace_match<false>(s, n, i, c0);
}

// Call emit(begin, end) for each pre-token of s[0..n).
template <class Emit>
inline void pretokenize(Pattern pattern, const uint8_t* s, size_t n, Emit&& emit) {
    size_t i = 0;
    if (pattern == Pattern::kGpt4) {
        while (i < n) {
            const size_t e = gpt4_match(s, n, i);
            emit(i, e);
            i = e;
        }
    } else {
        while (i < n) {
            const size_t e = gpt2_match(s, n, i);
            emit(i, e);
            i = e;
        }
    }
}

// Is p (p > 0) a safe cut: a space or newline at p with a letter before it?
// Pre-tokenizing s[0..p) and s[p..n) separately gives the same pieces as the whole
// (see tinyllm/tokenizer/inputs.py), so files can stream in blocks.
inline bool is_safe_cut(const uint8_t* s, size_t p) {
    return (s[p] == ' ' || s[p] == '\n') && class_of(decode_at(s, p, prev_cp_start(s, p)).cp) == kLetter;
}

// The last safe cut in s[0..n), or 0.
inline size_t last_safe_cut(const uint8_t* s, size_t n) {
    for (size_t p = n; p-- > 1;)
        if (is_safe_cut(s, p)) return p;
    return 0;
}

}  // namespace tinyllm
