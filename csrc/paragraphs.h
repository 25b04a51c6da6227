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
    size_t begin, end;  // code units
};

// The breaks (a whitespace run's first "\n" to its last, when it holds two or more) of the runs that
// start in [from, to); no run may straddle `to` (to is the end, or a character that is not whitespace).
template <class U>
void breaks_of(const U* u, size_t from, size_t to, std::vector<Span>& out) {
    size_t i = from;
    while (i < to) {
        if (u[i] != U('\n')) {
            if constexpr (sizeof(U) == 1) {  // one byte a code point: jump to the next "\n"
                const void* nl = std::memchr(u + i, '\n', to - i);
                if (!nl) return;
                i = size_t(static_cast<const U*>(nl) - u);
            } else {
                ++i;
                continue;
            }
        }
        // u[i] is the first "\n" of its whitespace run (any whitespace before it in the run is not "\n")
        size_t j = i + 1, last = i;
        for (; j < to && py_isspace(u[j]); ++j)
            if (u[j] == U('\n')) last = j;
        if (last > i) out.push_back({i, last + 1});
        i = j;
    }
}

// The paragraphs of [0, n) between its breaks (in order), the blank ones dropped: those for which
// not_blank(a, b), "a character of [a, b) is not whitespace", is false.
template <class NotBlank>
void paragraphs_between_by(size_t n, const std::vector<Span>& breaks, std::vector<Span>& out, NotBlank not_blank) {
    size_t start = 0;
    for (const Span& br : breaks) {
        if (not_blank(start, br.begin)) out.push_back({start, br.begin});
        start = br.end;
    }
    if (not_blank(start, n)) out.push_back({start, n});
}

template <class U>
void paragraphs_between(const U* u, size_t n, const std::vector<Span>& breaks, std::vector<Span>& out) {
    paragraphs_between_by(n, breaks, out, [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i)
            if (!py_isspace(u[i])) return true;
        return false;
    });
}

// Storage of a str: width 0 or 1 one byte a code unit (ASCII or Latin-1), 2 uint16, 4 uint32. (Cutting,
// below, reads width 0 as UTF-8: ASCII is UTF-8, and bytes of UTF-8 text come as width 0 too.)
inline uint32_t unit_at(const void* data, int width, size_t i) {
    return width == 2 ? static_cast<const uint16_t*>(data)[i]
           : width == 4 ? static_cast<const uint32_t*>(data)[i]
                        : static_cast<const uint8_t*>(data)[i];
}

// f(units) with the str's storage as the type its width says.
template <class F>
void by_width(const void* data, int width, F&& f) {
    if (width == 2)
        f(static_cast<const uint16_t*>(data));
    else if (width == 4)
        f(static_cast<const uint32_t*>(data));
    else
        f(static_cast<const uint8_t*>(data));
}

// The same on UTF-8 (valid: the caller checked), width 0: positions are bytes, and a byte that is not
// ASCII starts a code point that is decoded to test it (U+0085, U+00A0, U+2028, ... are whitespace).
// An ASCII str is width 0 too: the same bytes, the same breaks.
inline void breaks_utf8(const uint8_t* u, size_t from, size_t to, std::vector<Span>& out) {
    size_t i = from;
    while (i < to) {
        if (u[i] != '\n') {
            const void* nl = std::memchr(u + i, '\n', to - i);
            if (!nl) return;
            i = size_t(static_cast<const uint8_t*>(nl) - u);
        }
        size_t j = i + 1, last = i;
        while (j < to) {
            const CodePoint c = decode_at(u, to, j);
            if (!py_isspace(c.cp)) break;
            if (c.cp == '\n') last = j;
            j += c.len;
        }
        if (last > i) out.push_back({i, last + 1});
        i = j;
    }
}

inline void paragraphs_between_utf8(const uint8_t* u, size_t n, const std::vector<Span>& breaks, std::vector<Span>& out) {
    paragraphs_between_by(n, breaks, out, [&](size_t a, size_t b) {
        for (size_t i = a; i < b;) {
            const CodePoint c = decode_at(u, b, i);
            if (!py_isspace(c.cp)) return true;
            i += c.len;
        }
        return false;
    });
}

// Code points of UTF-8 bytes u[a, b).
inline size_t code_points(const uint8_t* u, size_t a, size_t b) {
    size_t n = 0;
    for (size_t i = a; i < b; ++i) n += !is_cont(u[i]);
    return n;
}

// Where a piece of a text may end at or after q: the start of a character that is not whitespace (or n).
inline size_t next_non_space(const void* data, size_t n, int width, size_t q) {
    if (width == 0) {
        const auto* u = static_cast<const uint8_t*>(data);
        while (q < n && is_cont(u[q])) ++q;
        while (q < n) {
            const CodePoint c = decode_at(u, n, q);
            if (!py_isspace(c.cp)) break;
            q += c.len;
        }
        return q;
    }
    while (q < n && py_isspace(unit_at(data, width, q))) ++q;
    return q;
}

// width 0: UTF-8 (or ASCII); 1, 2, 4: a str's code units.
inline void breaks(const void* data, int width, size_t from, size_t to, std::vector<Span>& out) {
    if (width == 0) return breaks_utf8(static_cast<const uint8_t*>(data), from, to, out);
    by_width(data, width, [&](auto u) { breaks_of(u, from, to, out); });
}

inline void paragraphs_between(const void* data, size_t n, int width, const std::vector<Span>& br,
                               std::vector<Span>& out) {
    if (width == 0) return paragraphs_between_utf8(static_cast<const uint8_t*>(data), n, br, out);
    by_width(data, width, [&](auto u) { paragraphs_between(u, n, br, out); });
}

// The paragraphs of a whole text, on this thread.
inline void paragraphs(const void* data, size_t n, int width, std::vector<Span>& out) {
    std::vector<Span> br;
    breaks(data, width, 0, n, br);
    paragraphs_between(data, n, width, br, out);
}

}  // namespace tinyllm
