// Open-addressing hash tables for the BPE core.
//
// std::unordered_map allocates a node per entry and chases a pointer per lookup; the
// hot loops here (one lookup per pre-token while counting, one per pair while
// encoding) want one flat array probed linearly. Two flavours:
//   U64Map<V>   uint64 key -> V (pairs packed as left << 32 | right)
//   BytesMap<V> byte-string key -> V, keys copied into one arena
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tinyllm {

inline uint64_t mix64(uint64_t a, uint64_t b) {
    const __uint128_t r = static_cast<__uint128_t>(a) * b;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t load64(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
}
inline uint32_t load32(const uint8_t* p) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
}

// The first bytes of a string in one word: for n <= 8 a lossless packing (for a given
// n), so short keys compare without touching the arena. Never reads outside p[0..n).
inline uint64_t pack8(const uint8_t* p, size_t n) {
    if (n >= 8) return load64(p);
    if (n >= 4) return load32(p) | (uint64_t(load32(p + n - 4)) << 32);
    if (n == 0) return 0;
    return p[0] | (uint64_t(p[n / 2]) << 8) | (uint64_t(p[n - 1]) << 16);
}

// Hash of a byte string: 8 bytes at a time through a 64x64->128 multiply.
inline uint64_t hash_bytes(const uint8_t* p, size_t n) {
    const uint64_t seed = 0x9E3779B97F4A7C15ULL ^ (n * 0xA0761D6478BD642FULL);
    if (n <= 8) return mix64(seed ^ pack8(p, n), 0x8EBC6AF09C88C6E3ULL);
    uint64_t h = seed;
    while (n > 8) {
        h = mix64(h ^ load64(p), 0xE7037ED1A0B428DBULL);
        p += 8;
        n -= 8;
    }
    return mix64(h ^ load64(p + n - 8), 0x8EBC6AF09C88C6E3ULL);  // last 8 bytes (overlapping)
}

// Equality of two byte strings of length n (the hash and first 8 bytes already matched).
inline bool bytes_equal(const uint8_t* a, const uint8_t* b, size_t n) { return std::memcmp(a, b, n) == 0; }

inline uint64_t hash_u64(uint64_t k) { return mix64(k ^ 0x9E3779B97F4A7C15ULL, 0xBF58476D1CE4E5B9ULL); }

// A pair of token ids as one U64Map key.
inline uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

// Power-of-two table size that holds n entries under the 3/4 load limit.
inline size_t table_capacity(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4 + 4) c <<= 1;
    return c;
}

template <class V>
class U64Map {
  public:
    static constexpr uint64_t kEmpty = ~0ULL;  // never a real key: ids are < 2^32 - 1

    explicit U64Map(size_t expected = 16) { rehash(table_capacity(expected)); }

    // Pointer to the value of key, or nullptr.
    V* find(uint64_t key) {
        size_t i = hash_u64(key) & mask_;
        while (true) {
            if (keys_[i] == key) return &vals_[i];
            if (keys_[i] == kEmpty) return nullptr;
            i = (i + 1) & mask_;
        }
    }
    const V* find(uint64_t key) const { return const_cast<U64Map*>(this)->find(key); }

    // Value of key, default-constructed first if absent; `inserted` says which.
    V& get_or_insert(uint64_t key, bool& inserted) {
        if ((size_ + 1) * 4 > keys_.size() * 3) rehash(keys_.size() * 2);
        size_t i = hash_u64(key) & mask_;
        while (true) {
            if (keys_[i] == key) { inserted = false; return vals_[i]; }
            if (keys_[i] == kEmpty) {
                keys_[i] = key;
                vals_[i] = V();
                ++size_;
                inserted = true;
                return vals_[i];
            }
            i = (i + 1) & mask_;
        }
    }
    V& operator[](uint64_t key) {
        bool inserted;
        return get_or_insert(key, inserted);
    }

    size_t size() const { return size_; }

    template <class F>
    void for_each(F&& f) const {
        for (size_t i = 0; i < keys_.size(); ++i)
            if (keys_[i] != kEmpty) f(keys_[i], vals_[i]);
    }

  private:
    void rehash(size_t cap) {
        std::vector<uint64_t> old_keys(cap, kEmpty);
        std::vector<V> old_vals(cap);
        old_keys.swap(keys_);
        old_vals.swap(vals_);
        mask_ = cap - 1;
        size_ = 0;
        for (size_t i = 0; i < old_keys.size(); ++i) {
            if (old_keys[i] == kEmpty) continue;
            size_t j = hash_u64(old_keys[i]) & mask_;
            while (keys_[j] != kEmpty) j = (j + 1) & mask_;
            keys_[j] = old_keys[i];
            vals_[j] = std::move(old_vals[i]);
            ++size_;
        }
    }

    std::vector<uint64_t> keys_;
    std::vector<V> vals_;
    size_t mask_ = 0, size_ = 0;
};

// Byte-string keys stored back to back in one arena. A slot keeps the key's first
// bytes (pack8) beside its length, so a lookup of a key of up to 8 bytes - most
// pre-tokens - reads one slot and never the arena.
template <class V>
class BytesMap {
  public:
    struct Slot {
        uint64_t head;    // pack8 of the key
        uint32_t offset;  // of the key in the arena
        uint32_t length;  // key length + 1; 0 marks an empty slot
        V value;
    };

    explicit BytesMap(size_t expected = 16) {
        slots_.resize(table_capacity(expected));
        mask_ = slots_.size() - 1;
    }

    V* find(const uint8_t* p, size_t n, uint64_t h) {
        const uint64_t head = pack8(p, n);
        size_t i = h & mask_;
        while (true) {
            Slot& s = slots_[i];
            if (s.length == 0) return nullptr;
            if (s.head == head && s.length == n + 1 && (n <= 8 || bytes_equal(arena_u8() + s.offset, p, n)))
                return &s.value;
            i = (i + 1) & mask_;
        }
    }
    V* find(std::string_view k) {
        auto p = reinterpret_cast<const uint8_t*>(k.data());
        return find(p, k.size(), hash_bytes(p, k.size()));
    }
    const V* find(const uint8_t* p, size_t n, uint64_t h) const { return const_cast<BytesMap*>(this)->find(p, n, h); }
    const V* find(std::string_view k) const { return const_cast<BytesMap*>(this)->find(k); }

    V& get_or_insert(const uint8_t* p, size_t n, uint64_t h, bool& inserted) {
        if ((size_ + 1) * 4 > slots_.size() * 3) grow();
        const uint64_t head = pack8(p, n);
        size_t i = h & mask_;
        while (true) {
            Slot& s = slots_[i];
            if (s.length == 0) {
                if (arena_.size() + n >= 0xFFFFFFFFull)  // offsets and lengths are 32-bit
                    throw std::length_error("more than 4 GB of distinct keys in one table");
                s.head = head;
                s.offset = static_cast<uint32_t>(arena_.size());
                s.length = static_cast<uint32_t>(n + 1);
                s.value = V();
                arena_.append(reinterpret_cast<const char*>(p), n);
                ++size_;
                inserted = true;
                return s.value;
            }
            if (s.head == head && s.length == n + 1 && (n <= 8 || bytes_equal(arena_u8() + s.offset, p, n))) {
                inserted = false;
                return s.value;
            }
            i = (i + 1) & mask_;
        }
    }
    V& get_or_insert(std::string_view k, bool& inserted) {
        auto p = reinterpret_cast<const uint8_t*>(k.data());
        return get_or_insert(p, k.size(), hash_bytes(p, k.size()), inserted);
    }

    size_t size() const { return size_; }
    size_t arena_bytes() const { return arena_.size(); }
    void clear() {
        std::fill(slots_.begin(), slots_.end(), Slot{});
        arena_.clear();
        size_ = 0;
    }

    // f(std::string_view key, const V& value) for every entry
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.length) f(std::string_view(arena_.data() + s.offset, s.length - 1), s.value);
    }

  private:
    const uint8_t* arena_u8() const { return reinterpret_cast<const uint8_t*>(arena_.data()); }
    void grow() {
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        mask_ = slots_.size() - 1;
        // slots keep no hash (it would cost 8 bytes each); growing is rare, rehash from the arena
        for (const Slot& s : old) {
            if (!s.length) continue;
            const uint64_t h = hash_bytes(arena_u8() + s.offset, s.length - 1);
            size_t i = h & mask_;
            while (slots_[i].length) i = (i + 1) & mask_;
            slots_[i] = s;
        }
    }

    std::vector<Slot> slots_;
    std::string arena_;
    size_t mask_ = 0, size_ = 0;
};

}  // namespace tinyllm
