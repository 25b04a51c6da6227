// A text cut into documents the way tinyllm.data.corpus cuts it (its reference): paragraphs
// between matches of the regex \n\s*\n, each kept only if it has a character that is not
// whitespace (par.strip() in Python), where whitespace is str.isspace's (the same set as the
// regex's \s on str; tests/test_tokenizer_native.py checks every code point).
//
// The regex, scanning left to right, matches in each maximal run of whitespace from the run's
// first "\n" to its last, when the run holds two or more: leading whitespace before the first
// "\n" stays with the paragraph before, trailing whitespace after the last goes to the next.
//
// Used by Encoder batches of paragraphs (encode_paragraphs_flat): `tinyllm prepare` hands the
// encoder whole blocks of text, and the cutting runs here without the GIL instead of a regex split
// and a Python string per document on the reading thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "utf8.h"

namespace tinyllm {

// Not pretokenize.h's space class: that is the `regex` module's \s, which lacks U+001C-U+001F.
inline bool py_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    if (c < 0x1680) return c == 0x85 || c == 0xA0;
    return c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

struct Span {
    size_t begin, end;  // code units (bytes of UTF-8)
};

// A text's characters, one at a time, for the cutting below, in the storage it comes in: a str's code
// units (width 1, 2 or 4: CPython's storage; one unit a character), or UTF-8 bytes (width 0: bytes,
// or an ASCII str, whose bytes are UTF-8), valid (the caller checked), decoded where a byte is not
// ASCII (U+0085, U+00A0, U+2028, ... are whitespace too).
template <class U>
struct Units {
    const U* u;
    static constexpr bool kOneByteNewline = sizeof(U) == 1;  // memchr finds "\n"
    CodePoint at(size_t i, size_t /*end*/) const { return {uint32_t(u[i]), 1}; }
    bool starts_char(size_t) const { return true; }
    size_t chars(size_t a, size_t b) const { return b - a; }
};

struct Utf8 {
    const uint8_t* u;
    static constexpr bool kOneByteNewline = true;  // "\n" is never part of a longer sequence
    CodePoint at(size_t i, size_t end) const { return decode_at(u, end, i); }
    bool starts_char(size_t i) const { return !is_cont(u[i]); }
    size_t chars(size_t a, size_t b) const {
        size_t n = 0;
        for (size_t i = a; i < b; ++i) n += !is_cont(u[i]);
        return n;
    }
};

// f(text) with the text as the reader its width says.
template <class F>
decltype(auto) by_width(const void* data, int width, F&& f) {
    if (width == 0) return f(Utf8{static_cast<const uint8_t*>(data)});
    if (width == 2) return f(Units<uint16_t>{static_cast<const uint16_t*>(data)});
    if (width == 4) return f(Units<uint32_t>{static_cast<const uint32_t*>(data)});
    return f(Units<uint8_t>{static_cast<const uint8_t*>(data)});  // Latin-1
}

// The breaks (a whitespace run's first "\n" to its last, when it holds two or more) of the runs that
// start in [from, to); no run may straddle `to` (to is the end, or a character that is not whitespace).
template <class T>
void breaks_of(T t, size_t from, size_t to, std::vector<Span>& out) {
    size_t i = from;
    while (i < to) {
        if (t.u[i] != '\n') {
            if constexpr (T::kOneByteNewline) {  // jump to the next "\n"
                const void* nl = std::memchr(t.u + i, '\n', to - i);
                if (!nl) return;
                i = size_t(static_cast<const uint8_t*>(nl) - reinterpret_cast<const uint8_t*>(t.u));
            } else {
                ++i;
                continue;
            }
        }
        // t.u[i] is the first "\n" of its whitespace run (any whitespace before it in the run is not "\n")
        size_t j = i + 1, last = i;
        while (j < to) {
            const CodePoint c = t.at(j, to);
            if (!py_isspace(c.cp)) break;
            if (c.cp == '\n') last = j;
            j += c.len;
        }
        if (last > i) out.push_back({i, last + 1});
        i = j;
    }
}

// Whether a character of [a, b) is not whitespace.
template <class T>
bool not_blank(T t, size_t a, size_t b) {
    for (size_t i = a; i < b;) {
        const CodePoint c = t.at(i, b);
        if (!py_isspace(c.cp)) return true;
        i += c.len;
    }
    return false;
}

// The paragraphs of [0, n) between its breaks (in order), the blank ones dropped.
template <class T>
void paragraphs_between(T t, size_t n, const std::vector<Span>& breaks, std::vector<Span>& out) {
    size_t start = 0;
    for (const Span& br : breaks) {
        if (not_blank(t, start, br.begin)) out.push_back({start, br.begin});
        start = br.end;
    }
    if (not_blank(t, start, n)) out.push_back({start, n});
}

// Where a piece of a text may end at or after q: the start of a character that is not whitespace (or n).
template <class T>
size_t next_non_space(T t, size_t n, size_t q) {
    while (q < n && !t.starts_char(q)) ++q;
    while (q < n) {
        const CodePoint c = t.at(q, n);
        if (!py_isspace(c.cp)) break;
        q += c.len;
    }
    return q;
}

inline void breaks(const void* data, int width, size_t from, size_t to, std::vector<Span>& out) {
    by_width(data, width, [&](auto t) { breaks_of(t, from, to, out); });
}

inline void paragraphs_between(const void* data, size_t n, int width, const std::vector<Span>& br,
                               std::vector<Span>& out) {
    by_width(data, width, [&](auto t) { paragraphs_between(t, n, br, out); });
}

inline size_t next_non_space(const void* data, size_t n, int width, size_t q) {
    return by_width(data, width, [&](auto t) { return next_non_space(t, n, q); });
}

// Characters of [a, b): code units, or code points of UTF-8.
inline size_t chars_between(const void* data, int width, size_t a, size_t b) {
    return by_width(data, width, [&](auto t) { return t.chars(a, b); });
}

// The paragraphs of a whole text, on this thread.
inline void paragraphs(const void* data, size_t n, int width, std::vector<Span>& out) {
    std::vector<Span> br;
    breaks(data, width, 0, n, br);
    paragraphs_between(data, n, width, br, out);
}

}  // namespace tinyllm
