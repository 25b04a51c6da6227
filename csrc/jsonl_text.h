// JSON Lines records -> their text, for the trainer's reader thread: the lines whose outcome is
// certain here, with the rest left to Python. Its reference is tinyllm/data/formats.py
// (_line_text: json.loads, then _record_text), which decides every line this one leaves.
//
// A line is decided here only when json.loads would read it and the record has text: valid UTF-8,
// strict JSON (no NaN/Infinity, which json also reads: those lines go to Python), a top-level
// object whose field `field` (the last one, if repeated, as a dict keeps it) is a string without
// lone surrogate escapes, nesting at most kMaxDepth deep. A blank line (only characters that
// str.isspace() calls space and that are ASCII) is decided too: it has no record. Anything else
// (an error, a skip, a lone surrogate, Unicode spaces) is Python's, so every message and count
// stays formats.py's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "utf8.h"

namespace tinyllm {

class JsonlLine {
  public:
    enum class Kind { Blank, Text, Undecided };
    static constexpr int kMaxDepth = 256;  // json.loads reaches ~1,000 (the recursion limit)

    // line: one line without its '\n'. Text: the field's value is appended to out.
    static Kind read(std::string_view line, std::string_view field, std::string& out) {
        const auto* s = reinterpret_cast<const uint8_t*>(line.data());
        if (is_blank(s, line.size())) return Kind::Blank;
        if (!valid_utf8(s, line.size())) return Kind::Undecided;
        JsonlLine p(s, s + line.size(), field);
        const size_t mark = out.size();
        if (p.object(out, mark) && p.found_ && (p.skip_ws(), p.p_ == p.end_)) return Kind::Text;
        out.resize(mark);
        return Kind::Undecided;
    }

  private:
    JsonlLine(const uint8_t* p, const uint8_t* end, std::string_view field) : p_(p), end_(end), field_(field) {}

    // str.isspace() ASCII: \t \n \v \f \r, \x1c..\x1f, space ('\n' never occurs in a line)
    static bool is_blank(const uint8_t* s, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            const uint8_t c = s[i];
            if (!(c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F))) return false;
        }
        return true;
    }

    void skip_ws() {  // JSON's whitespace, json.loads's too
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
    }
    bool eat(char c) {
        if (p_ < end_ && *p_ == uint8_t(c)) {
            ++p_;
            return true;
        }
        return false;
    }
    static int hex(uint8_t c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    bool u_escape(uint32_t& cp) {  // after "\u": four hex digits
        if (end_ - p_ < 4) return false;
        cp = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hex(p_[k]);
            if (h < 0) return false;
            cp = cp << 4 | uint32_t(h);
        }
        p_ += 4;
        return true;
    }
    static void put_utf8(uint32_t cp, std::string& out) {
        if (cp < 0x80) {
            out.push_back(char(cp));
        } else if (cp < 0x800) {
            out.push_back(char(0xC0 | cp >> 6));
            out.push_back(char(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(char(0xE0 | cp >> 12));
            out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(char(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(char(0xF0 | cp >> 18));
            out.push_back(char(0x80 | (cp >> 12 & 0x3F)));
            out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(char(0x80 | (cp & 0x3F)));
        }
    }

    // A string (p_ after its opening quote), decoded into *out when out != nullptr. lone: a
    // surrogate escape without its pair (json keeps it in the str; UTF-8 cannot hold it).
    bool string(std::string* out, bool& lone) {
        for (;;) {
            const uint8_t* run = p_;
            while (p_ < end_ && *p_ != '"' && *p_ != '\\' && *p_ >= 0x20) ++p_;  // (UTF-8 checked already)
            if (out) out->append(reinterpret_cast<const char*>(run), size_t(p_ - run));
            if (p_ >= end_ || *p_ < 0x20) return false;  // unterminated, or a raw control character
            if (*p_++ == '"') return true;
            if (p_ >= end_) return false;
            const uint8_t e = *p_++;
            char c;
            switch (e) {
                case '"': c = '"'; break;
                case '\\': c = '\\'; break;
                case '/': c = '/'; break;
                case 'b': c = '\b'; break;
                case 'f': c = '\f'; break;
                case 'n': c = '\n'; break;
                case 'r': c = '\r'; break;
                case 't': c = '\t'; break;
                case 'u': {
                    uint32_t cp;
                    if (!u_escape(cp)) return false;
                    if (cp >= 0xD800 && cp <= 0xDBFF && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
                        const uint8_t* save = p_;
                        p_ += 2;
                        uint32_t lo;
                        if (!u_escape(lo)) return false;
                        if (lo >= 0xDC00 && lo <= 0xDFFF) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            p_ = save;  // a lone high surrogate; the next escape stands alone
                        }
                    }
                    if (cp >= 0xD800 && cp <= 0xDFFF) {
                        lone = true;
                        continue;
                    }
                    if (out) put_utf8(cp, *out);
                    continue;
                }
                default: return false;
            }
            if (out) out->push_back(c);
        }
    }

    bool digits() {
        const uint8_t* start = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        return p_ > start;
    }
    bool number() {  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        eat('-');
        if (eat('0')) {
        } else if (p_ < end_ && *p_ >= '1' && *p_ <= '9') {
            digits();
        } else {
            return false;
        }
        if (eat('.') && !digits()) return false;
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (!eat('+')) eat('-');
            if (!digits()) return false;
        }
        return true;
    }
    bool literal(std::string_view word) {
        if (size_t(end_ - p_) < word.size() || std::string_view(reinterpret_cast<const char*>(p_), word.size()) != word)
            return false;
        p_ += word.size();
        return true;
    }

    bool value(int depth) {  // any JSON value, checked and skipped
        skip_ws();
        if (p_ >= end_) return false;
        bool lone = false;
        switch (*p_) {
            case '"': ++p_; return string(nullptr, lone);
            case '{': return depth < kMaxDepth && members(depth + 1, nullptr, 0);
            case '[': {
                if (depth >= kMaxDepth) return false;
                ++p_;
                skip_ws();
                if (eat(']')) return true;
                do {
                    if (!value(depth + 1)) return false;
                    skip_ws();
                } while (eat(','));
                return eat(']');
            }
            case 't': return literal("true");
            case 'f': return literal("false");
            case 'n': return literal("null");
            default: return number();
        }
    }

    // An object's members (p_ at '{'). top: the record, whose field's string goes to out.
    bool members(int depth, std::string* out, size_t mark) {
        ++p_;
        skip_ws();
        if (eat('}')) return true;
        std::string key;
        do {
            skip_ws();
            if (!eat('"')) return false;
            key.clear();
            bool lone = false;
            if (!string(&key, lone)) return false;
            skip_ws();
            if (!eat(':')) return false;
            if (out && !lone && key == field_) {
                skip_ws();
                if (p_ < end_ && *p_ == '"') {  // the field's text (a later copy of the field replaces it)
                    ++p_;
                    out->resize(mark);
                    bool text_lone = false;
                    if (!string(out, text_lone)) return false;
                    found_ = !text_lone;
                } else {
                    found_ = false;
                    if (!value(depth)) return false;
                }
            } else if (!value(depth)) {
                return false;
            }
            skip_ws();
        } while (eat(','));
        return eat('}');
    }

    bool object(std::string& out, size_t mark) {
        skip_ws();
        return p_ < end_ && *p_ == '{' && members(1, &out, mark);
    }

    const uint8_t* p_;
    const uint8_t* end_;
    std::string_view field_;
    bool found_ = false;  // the record's last `field` holds a string that out has
};

}  // namespace tinyllm
