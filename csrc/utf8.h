// UTF-8 for the BPE core: code point decoding for the splitter, and Python-compatible
// repair of invalid input ("replace": each maximal invalid subpart becomes U+FFFD,
// exactly what bytes.decode("utf-8", "replace") produces, also across block edges).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tinyllm {

struct CodePoint {
    uint32_t cp;
    uint32_t len;  // bytes, >= 1
};

inline bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

// Decode the code point at s[i] (i < n). Input is expected to be UTF-8 produced by
// Python (valid, or lone surrogates written with "surrogatepass", which decode to
// U+D800..DFFF here like any 3-byte form). Anything else never reads past n and
// comes back as one U+FFFD byte, classified "other".
inline CodePoint decode_at(const uint8_t* s, size_t n, size_t i) {
    const uint8_t b = s[i];
    if (b < 0x80) return {b, 1};
    if ((b & 0xE0) == 0xC0 && i + 1 < n && is_cont(s[i + 1]))
        return {(uint32_t(b & 0x1F) << 6) | (s[i + 1] & 0x3F), 2};
    if ((b & 0xF0) == 0xE0 && i + 2 < n && is_cont(s[i + 1]) && is_cont(s[i + 2]))
        return {(uint32_t(b & 0x0F) << 12) | (uint32_t(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F), 3};
    if ((b & 0xF8) == 0xF0 && i + 3 < n && is_cont(s[i + 1]) && is_cont(s[i + 2]) && is_cont(s[i + 3]))
        return {(uint32_t(b & 0x07) << 18) | (uint32_t(s[i + 1] & 0x3F) << 12) | (uint32_t(s[i + 2] & 0x3F) << 6) |
                    (s[i + 3] & 0x3F),
                4};
    return {0xFFFD, 1};
}

// Start of the code point that ends at s[p] (p > 0): step back over continuation bytes.
inline size_t prev_cp_start(const uint8_t* s, size_t p) {
    size_t q = p - 1;
    for (int k = 0; k < 3 && q > 0 && is_cont(s[q]); ++k) --q;
    return q;
}

// Append in[0..n) to out with invalid sequences replaced by U+FFFD (EF BF BD), the way
// CPython's UTF-8 decoder does it. When !final, an incomplete but so-far-valid sequence
// at the end is not consumed: the return value is how many bytes were consumed, and
// the caller passes the rest again with the next block. `replaced` counts U+FFFDs added.
// (Out: anything with append(const char*, size_t); NoOutput counts without copying.)
template <class Out>
size_t repair_utf8_into(const uint8_t* in, size_t n, bool final, Out& out, uint64_t& replaced) {
    static const char kReplacement[] = "\xEF\xBF\xBD";
    size_t i = 0, run = 0;  // in[run..i) is valid and not yet copied
    while (i < n) {
        // ASCII fast path: 8 bytes at a time
        while (i + 8 <= n) {
            uint64_t w;
            __builtin_memcpy(&w, in + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        const uint8_t b = in[i];
        if (b < 0x80) { ++i; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;  // valid range of the second byte
        if (b >= 0xC2 && b <= 0xDF) need = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            need = 0;  // 0x80..0xC1, 0xF5..0xFF never start a sequence
        }
        size_t k = 1;  // bytes of this sequence that are valid so far
        bool bad = (need == 0);
        while (!bad && k <= need) {
            if (i + k >= n) {  // ran out of input mid-sequence
                if (!final) {
                    out.append(reinterpret_cast<const char*>(in + run), i - run);
                    return i;
                }
                bad = true;
                break;
            }
            const uint8_t c = in[i + k];
            const bool ok = (k == 1) ? (c >= lo && c <= hi) : is_cont(c);
            if (!ok) { bad = true; break; }
            ++k;
        }
        if (!bad) { i += need + 1; continue; }
        out.append(reinterpret_cast<const char*>(in + run), i - run);
        out.append(kReplacement, 3);
        ++replaced;
        i += k;  // the maximal invalid subpart: the lead byte plus the valid continuations
        run = i;
    }
    out.append(reinterpret_cast<const char*>(in + run), n - run);
    return n;
}

inline size_t repair_utf8(const uint8_t* in, size_t n, bool final, std::string& out, uint64_t& replaced) {
    return repair_utf8_into(in, n, final, out, replaced);
}

struct NoOutput {
    void append(const char*, size_t) {}
};

// Whether in[0..n) is valid UTF-8 as CPython's decoder has it (repair_utf8 would replace nothing).
inline bool valid_utf8(const uint8_t* in, size_t n) {
    NoOutput none;
    uint64_t replaced = 0;
    repair_utf8_into(in, n, true, none, replaced);
    return replaced == 0;
}

// Streaming repair_utf8: append the next block data[0..n) to out, repaired. `pending`
// carries an incomplete sequence at a block's end over to the next call (start it
// empty; pass final = true with the last block).
inline void repair_utf8_block(std::string& pending, const char* data, size_t n, bool final, std::string& out,
                              uint64_t& replaced) {
    pending.append(data, n);
    const size_t used = repair_utf8(reinterpret_cast<const uint8_t*>(pending.data()), pending.size(), final, out,
                                    replaced);
    pending.erase(0, used);
}

// UTF-8 of n code units of `width` bytes (1, 2 or 4: CPython's str storage) into out
// (replaced). A lone surrogate is written as its 3-byte form, as "surrogatepass" does, so
// this equals str.encode("utf-8", "surrogatepass"). Needs no Python: batch workers run it
// without the GIL.
inline void utf8_of_units(const void* data, size_t n, int width, std::string& out) {
    out.clear();
    out.reserve(n * size_t(width == 1 ? 2 : width == 2 ? 3 : 4));
    for (size_t i = 0; i < n; ++i) {
        const uint32_t c = width == 1   ? static_cast<const uint8_t*>(data)[i]
                           : width == 2 ? static_cast<const uint16_t*>(data)[i]
                                        : static_cast<const uint32_t*>(data)[i];
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
        } else if (c < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (c >> 6)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        } else if (c < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (c >> 12)));
            out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (c >> 18)));
            out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
        }
    }
}

}  // namespace tinyllm
