// The merge lines of a tokenizer file (tinyllm/tokenizer/format.py), checked and parsed in one pass:
// each line "<left id> <right id>" and, after a tab, the new token's bytes as Python's repr() of a
// bytes object (or nothing). Its reference is format.py's _read_merges_checked, a line at a time,
// which also words the error: this says only whether every line passes, so a file with any problem
// goes to it (parsing a 32k-merge file took 32 ms with that loop, 7 ms with this, measured side by
// side; the load is serial before `tinyllm prepare`'s threads start).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinyllm {

// repr(b) of a Python bytes object, as CPython writes it: b'...' unless the bytes hold a ' and no ",
// then b"..."; \\, the quote, \t \n \r escaped; other bytes below 0x20 or from 0x7f as \xhh.
inline std::string bytes_repr(std::string_view b) {
    const bool dq = b.find('\'') != std::string_view::npos && b.find('"') == std::string_view::npos;
    const char quote = dq ? '"' : '\'';
    std::string out = "b";
    out += quote;
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : b) {
        if (c == static_cast<unsigned char>(quote) || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += char(c);
        }
    }
    out += quote;
    return out;
}

// An id of ASCII digits (leading zeros allowed, as int() takes them), or false; one too big for any
// id reads as UINT32_MAX, which the range check then refuses (as Python refuses the big int).
inline bool parse_id(std::string_view s, uint32_t& v) {
    if (s.empty()) return false;
    uint64_t x = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        x = std::min<uint64_t>(x * 10 + uint64_t(c - '0'), UINT32_MAX);
    }
    v = uint32_t(x);
    return true;
}

// Merge k of lines makes id first_merge + k from two ids in [byte_offset, first_merge + k); lines[k] is
// "a b" or "a b\t<repr>" with <repr> that token's bytes_repr (or empty). -> true and the merges when
// every line passes, else false (the caller's line-at-a-time reader then names the first bad line).
inline bool merges_if_well_formed(const std::vector<std::string_view>& lines, uint32_t byte_offset,
                                  std::vector<std::pair<uint32_t, uint32_t>>& merges) {
    std::vector<std::string> vocab(byte_offset);
    for (int b = 0; b < 256; ++b) vocab.emplace_back(1, char(b));
    const uint32_t first_merge = byte_offset + 256;
    merges.clear();
    merges.reserve(lines.size());
    for (size_t k = 0; k < lines.size(); ++k) {
        const std::string_view line = lines[k];
        const size_t tab = line.find('\t');
        const std::string_view ids = line.substr(0, tab);
        const size_t sp = ids.find(' ');
        if (sp == std::string_view::npos) return false;
        uint32_t a, b;
        if (!parse_id(ids.substr(0, sp), a) || !parse_id(ids.substr(sp + 1), b)) return false;  // a 2nd space fails here
        const uint32_t new_id = first_merge + uint32_t(k);
        if (a < byte_offset || a >= new_id || b < byte_offset || b >= new_id) return false;
        vocab.push_back(vocab[a] + vocab[b]);
        if (tab != std::string_view::npos && tab + 1 < line.size() && line.substr(tab + 1) != bytes_repr(vocab.back()))
            return false;
        merges.emplace_back(a, b);
    }
    return true;
}

}  // namespace tinyllm
