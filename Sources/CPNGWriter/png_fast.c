// A PNG writer for preprocess's intermediate images, where zlib was 60% of the stage's time: the
// Paeth filter, then deflate with literals only (no string matching) in one block with a Huffman code
// made for this image. Paeth leaves resized photos as small residues, which an image-specific code
// packs to about a third of their bytes (smaller than zlib level 1 with the Up filter and its
// run-length strategy, which this replaced) at several hundred MB/s. Any inflater reads it: it is a
// plain zlib stream of one dynamic-Huffman block (RFC 1950, 1951), or stored blocks when coding would
// not pay. PNG.encode (libpng and zlib) is the plain reference the tests compare it with. The file
// needs the C library and zlib (for CRC-32), and builds for any CPU.
#include "png_writer.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ---- checksums: PNG's CRC-32 (zlib's) and zlib's Adler-32 (plain, and an AVX2 twin below) ----

// zlib's crc32 (1.2.12 on: "braided", several words at once) is 3x the slicing-by-8 table loop this
// file had (12 against 37 us for an IDAT of 53 KB), with nothing to maintain.
static uint32_t crc32_of(const uint8_t *data, size_t size) {
    return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), data, size);
}

// Adler-32 of `size` more bytes, continuing from `adler` (1 to start): sums kept below 2^32 by
// reducing every 5,552 bytes (zlib's NMAX).
static uint32_t adler_plain(uint32_t adler, const uint8_t *data, size_t size) {
    uint32_t s1 = adler & 0xffff, s2 = adler >> 16;
    while (size > 0) {
        size_t block = size < 5552 ? size : 5552;
        for (size_t i = 0; i < block; i++) {
            s1 += data[i];
            s2 += s1;
        }
        s1 %= 65521;
        s2 %= 65521;
        data += block;
        size -= block;
    }
    return s2 << 16 | s1;
}

// A 32-bit number as PNG and zlib write their lengths and checksums: big-endian.
static void put_be32(uint8_t *out, uint32_t value) {
    out[0] = (uint8_t)(value >> 24);
    out[1] = (uint8_t)(value >> 16);
    out[2] = (uint8_t)(value >> 8);
    out[3] = (uint8_t)value;
}

// ---- bits, least significant first (deflate's order) ----

typedef struct {
    uint8_t *out;
    size_t pos;
    uint64_t bits;
    int count;
} bit_writer;

static inline void put_bits(bit_writer *w, uint32_t value, int length) {
    w->bits |= (uint64_t)value << w->count;
    w->count += length;
    if (w->count >= 32) {
        uint32_t word = (uint32_t)w->bits;
        memcpy(w->out + w->pos, &word, 4); // x86-64 and aarch64 are little-endian, as deflate's bytes are
        w->pos += 4;
        w->bits >>= 32;
        w->count -= 32;
    }
}

static void flush_bits(bit_writer *w) {
    while (w->count > 0) {
        w->out[w->pos++] = (uint8_t)w->bits;
        w->bits >>= 8;
        w->count -= 8;
    }
    w->bits = 0;
    w->count = 0;
}

// ---- Huffman code lengths, limited ----

// Code lengths for `n` symbols with frequencies `freq` (0: unused), none longer than `limit`. Two
// queues over leaves sorted by frequency (the classic linear merge); when the deepest leaf is too
// deep, the frequencies are halved (keeping every used one at 1 or more) and the code rebuilt, which
// flattens it. At least two symbols always get a code, so that the code is complete, as inflaters
// require (a lone used symbol gets a partner of frequency 1).
static void code_lengths(const uint32_t *freq_in, int n, int limit, uint8_t *lengths) {
    uint32_t freq[288];
    int used = 0;
    for (int i = 0; i < n; i++) {
        freq[i] = freq_in[i];
        if (freq[i]) used++;
    }
    for (int i = 0; used < 2 && i < n; i++) {
        if (!freq[i]) {
            freq[i] = 1;
            used++;
        }
    }
    for (;;) {
        // Leaves sorted by (frequency, symbol): a stable radix sort of the used symbols (taken in
        // symbol order) by frequency, a byte a pass, as many passes as the largest frequency has
        // bytes. The insertion sort it replaced moved about n^2 / 4 entries: 2.6% of preprocess.
        int leaves[288], spare[288], count = 0;
        uint32_t largest = 0;
        for (int i = 0; i < n; i++) {
            if (!freq[i]) continue;
            leaves[count++] = i;
            if (freq[i] > largest) largest = freq[i];
        }
        for (int shift = 0; shift < 32 && (largest >> shift) != 0; shift += 8) {
            int start[257] = {0};
            for (int k = 0; k < count; k++) start[((freq[leaves[k]] >> shift) & 0xFF) + 1]++;
            for (int b = 0; b < 256; b++) start[b + 1] += start[b];
            for (int k = 0; k < count; k++) spare[start[(freq[leaves[k]] >> shift) & 0xFF]++] = leaves[k];
            memcpy(leaves, spare, sizeof(int) * (size_t)count);
        }
        // Nodes 0 ..< count are the leaves in order; internal nodes follow, made in rising weight.
        uint64_t weight[576];
        int parent[576];
        for (int i = 0; i < count; i++) weight[i] = freq[leaves[i]];
        int next_leaf = 0, next_internal = count, made = count;
        for (int k = 0; k < count - 1; k++) {
            int pick[2];
            for (int p = 0; p < 2; p++) {
                if (next_leaf < count && (next_internal >= made || weight[next_leaf] <= weight[next_internal])) {
                    pick[p] = next_leaf++;
                } else {
                    pick[p] = next_internal++;
                }
            }
            weight[made] = weight[pick[0]] + weight[pick[1]];
            parent[pick[0]] = made;
            parent[pick[1]] = made;
            made++;
        }
        // Depths from the root (the last node made) down: parents are made after their children.
        int depth[576];
        depth[made - 1] = 0;
        int deepest = 0;
        for (int i = made - 2; i >= 0; i--) {
            depth[i] = depth[parent[i]] + 1;
            if (i < count && depth[i] > deepest) deepest = depth[i];
        }
        if (deepest <= limit) {
            memset(lengths, 0, (size_t)n);
            for (int i = 0; i < count; i++) lengths[leaves[i]] = (uint8_t)depth[i];
            return;
        }
        for (int i = 0; i < n; i++) {
            if (freq[i]) freq[i] = (freq[i] + 1) / 2;
        }
    }
}

// Canonical codes (RFC 1951 3.2.2) from lengths, bit-reversed so that put_bits sends them most
// significant bit first, as deflate sends Huffman codes.
static void canonical_codes(const uint8_t *lengths, int n, uint32_t *codes) {
    uint32_t per_length[16] = {0}, next[16] = {0};
    for (int i = 0; i < n; i++) per_length[lengths[i]]++;
    per_length[0] = 0;
    uint32_t code = 0;
    for (int bits = 1; bits < 16; bits++) {
        code = (code + per_length[bits - 1]) << 1;
        next[bits] = code;
    }
    for (int i = 0; i < n; i++) {
        int length = lengths[i];
        if (!length) {
            codes[i] = 0;
            continue;
        }
        uint32_t value = next[length]++, reversed = 0;
        for (int b = 0; b < length; b++) reversed |= ((value >> b) & 1u) << (length - 1 - b);
        codes[i] = reversed;
    }
}

// ---- AVX2 and AVX-512 twins (x86-64): the Paeth filter and Adler-32, the same results as the plain loops ----

#if defined(__x86_64__) && !defined(SIGNTRANSFER_NO_X86_KERNELS)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
#define HAVE_AVX2 1

// Residues of row bytes from .. < stride (from >= channels; the row above exists), 16 at a time in
// 16-bit lanes: pa = |b - c|, pb = |a - c|, pc = |(a - c) + (b - c)|, which are Paeth's |p - a|,
// |p - b|, |p - c| for p = a + b - c; the predictor chosen with the plain loop's ties.
AVX2 static size_t paeth_avx2(const uint8_t *row, const uint8_t *above, size_t from, size_t stride, int channels, uint8_t *residue) {
    size_t x = from;
    for (; x + 16 <= stride; x += 16) {
        __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(row + x - channels)));
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(above + x)));
        __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(above + x - channels)));
        __m256i bc = _mm256_sub_epi16(b, c), ac = _mm256_sub_epi16(a, c);
        __m256i pa = _mm256_abs_epi16(bc), pb = _mm256_abs_epi16(ac), pc = _mm256_abs_epi16(_mm256_add_epi16(bc, ac));
        __m256i not_a = _mm256_or_si256(_mm256_cmpgt_epi16(pa, pb), _mm256_cmpgt_epi16(pa, pc));
        __m256i b_or_c = _mm256_blendv_epi8(b, c, _mm256_cmpgt_epi16(pb, pc));
        __m256i predictor = _mm256_blendv_epi8(a, b_or_c, not_a);
        // 16 words to 16 bytes: the pack works within 128-bit lanes, the permute puts them in order.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(predictor, predictor), 0xD8);
        __m128i bytes = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(row + x)), _mm256_castsi256_si128(packed));
        _mm_storeu_si128((__m128i *)(residue + x), bytes);
    }
    return x;
}

// The same with AVX-512BW, 32 bytes at a time: the comparisons give masks, the blends take them, and
// vpmovwb narrows the words in order.
__attribute__((target("avx512f,avx512bw"))) static size_t paeth_avx512(const uint8_t *row, const uint8_t *above, size_t from, size_t stride,
                                                                       int channels, uint8_t *residue) {
    size_t x = from;
    for (; x + 32 <= stride; x += 32) {
        __m512i a = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(row + x - channels)));
        __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(above + x)));
        __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(above + x - channels)));
        __m512i bc = _mm512_sub_epi16(b, c), ac = _mm512_sub_epi16(a, c);
        __m512i pa = _mm512_abs_epi16(bc), pb = _mm512_abs_epi16(ac), pc = _mm512_abs_epi16(_mm512_add_epi16(bc, ac));
        __mmask32 not_a = _mm512_cmpgt_epi16_mask(pa, pb) | _mm512_cmpgt_epi16_mask(pa, pc);
        __m512i b_or_c = _mm512_mask_blend_epi16(_mm512_cmpgt_epi16_mask(pb, pc), b, c);
        __m512i predictor = _mm512_mask_blend_epi16(not_a, a, b_or_c);
        __m256i bytes = _mm256_sub_epi8(_mm256_loadu_si256((const __m256i *)(row + x)), _mm512_cvtepi16_epi8(predictor));
        _mm256_storeu_si256((__m256i *)(residue + x), bytes);
    }
    return x;
}

AVX2 static inline uint64_t sum_lanes(__m256i v) {
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, v);
    uint64_t total = 0;
    for (int i = 0; i < 8; i++) total += lanes[i];
    return total;
}

// Adler-32 32 bytes at a time. Over a block of 32 bytes d0..d31 starting from s1: s1 grows by their
// sum, s2 by 32 s1 + 32 d0 + 31 d1 + ... + d31. Up to 173 blocks (5,536 bytes, zlib's NMAX bound)
// between reductions modulo 65521, so no 32-bit lane overflows; the reduction in 64 bits.
AVX2 static uint32_t adler_avx2(uint32_t adler, const uint8_t *data, size_t size) {
    uint64_t s1 = adler & 0xffff, s2 = adler >> 16;
    const __m256i weights = _mm256_setr_epi8(32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                             16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
    while (size >= 32) {
        size_t blocks = size / 32 < 173 ? size / 32 : 173;
        __m256i sums = zero, previous = zero, weighted = zero;
        for (size_t k = 0; k < blocks; k++) {
            __m256i bytes = _mm256_loadu_si256((const __m256i *)data);
            previous = _mm256_add_epi32(previous, sums);
            sums = _mm256_add_epi32(sums, _mm256_sad_epu8(bytes, zero));
            weighted = _mm256_add_epi32(weighted, _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, weights), ones));
            data += 32;
        }
        s2 = (s2 + 32 * s1 * blocks + 32 * sum_lanes(previous) + sum_lanes(weighted)) % 65521;
        s1 = (s1 + sum_lanes(sums)) % 65521;
        size -= blocks * 32;
    }
    // The last bytes (fewer than 32) by the plain loop.
    return adler_plain((uint32_t)(s2 << 16 | s1), data, size);
}
#else
#define HAVE_AVX2 0
#endif

// The path one call takes, decided once from what it is allowed (`isa`) and what the CPU has: 2,
// every AVX-512 loop (BW filter, VBMI coder, VBMI2 histogram), where the CPU has all three (Ice Lake,
// Zen 4 on); 1, the AVX2 filter and checksum and the BMI2 coder; 0, the plain loops. Every level
// writes the same bytes.
static int usable_level(int isa) {
#if HAVE_AVX2
    if (isa >= 2 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2")
        && __builtin_cpu_supports("bmi2"))
        return 2;
    if (isa >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2")) return 1;
#endif
    (void)isa;
    return 0;
}

static uint32_t adler(int level, const uint8_t *data, size_t size) {
#if HAVE_AVX2
    if (level >= 1) return adler_avx2(1, data, size);
#endif
    (void)level;
    return adler_plain(1, data, size);
}

// Four literals (at most 56 bits) per store of the whole 64-bit word: after a store at most 7 bits
// are left over, and 7 + 56 fit. The word's spare bytes are overwritten by the next store.
#define CODE4(DATA, OUT, BITS, COUNT)                                        \
    do {                                                                     \
        uint8_t a = (DATA)[0], b = (DATA)[1], c = (DATA)[2], d = (DATA)[3];  \
        BITS |= (uint64_t)codes[a] << COUNT;                                 \
        COUNT += lengths[a];                                                 \
        BITS |= (uint64_t)codes[b] << COUNT;                                 \
        COUNT += lengths[b];                                                 \
        BITS |= (uint64_t)codes[c] << COUNT;                                 \
        COUNT += lengths[c];                                                 \
        BITS |= (uint64_t)codes[d] << COUNT;                                 \
        COUNT += lengths[d];                                                 \
        memcpy(OUT, &BITS, 8);                                               \
        OUT += COUNT >> 3;                                                   \
        BITS >>= COUNT & ~7;                                                 \
        COUNT &= 7;                                                          \
    } while (0)

// The literals of `data` coded into `w` (which has at most 7 bits pending), four at a time; returns
// how many were coded (all but the last size % 4 or fewer).
static inline __attribute__((always_inline)) size_t code_literals_body(const uint32_t *codes, const uint8_t *lengths, const uint8_t *data,
                                                                        size_t size, bit_writer *w) {
    size_t i;
    // Two halves coded at once, the second into a buffer of its own from bit 0, then appended at
    // the first's bit position: each literal's shift waits for the bit count before it, and two
    // independent chains overlap (6% off the writer's time against one stream, measured with BMI2).
    // The bits are exactly those of one stream coded front to back.
    size_t half = size / 8 * 4, second_end = half + (size - half) / 4 * 4;
    uint8_t *second = malloc((size - half) * 2 + 16); // at most 14 bits a literal, and the last store
    if (!second) half = 0;                            // no memory: the whole stream as one
    uint8_t *o = w->out + w->pos, *o2 = second;
    uint64_t bits = w->bits, bits2 = 0;
    int count = w->count, count2 = 0;
    if (half) {
        for (i = 0; i < half; i += 4) {
            CODE4(data + i, o, bits, count);
            CODE4(data + half + i, o2, bits2, count2);
        }
        // The second half's odd groups of four, then its bits appended after the first's: each
        // 64-bit word shifted up by the first's pending bit count (below 8).
        for (i = 2 * half; i < second_end; i += 4) CODE4(data + i, o2, bits2, count2);
        size_t whole = (size_t)(o2 - second);
        for (size_t k = 0; k < whole; k += 7) {
            // Whole 8-byte loads (the buffer has 16 bytes to spare), cut to the bytes wanted.
            uint64_t word;
            memcpy(&word, second + k, 8);
            size_t take = whole - k < 7 ? whole - k : 7;
            word &= ~(~(uint64_t)0 << (8 * take));
            bits |= word << count;
            count += (int)take * 8;
            memcpy(o, &bits, 8);
            o += count >> 3;
            bits >>= count & ~7;
            count &= 7;
        }
        bits |= bits2 << count;
        count += count2;
        memcpy(o, &bits, 8);
        o += count >> 3;
        bits >>= count & ~7;
        count &= 7;
        i = second_end;
    } else {
        for (i = 0; i + 4 <= size; i += 4) CODE4(data + i, o, bits, count);
    }
    free(second);
    w->pos = (size_t)(o - w->out);
    w->bits = bits;
    w->count = count;
    return i;
}

static size_t code_literals_plain(const uint32_t *codes, const uint8_t *lengths, const uint8_t *data, size_t size, bit_writer *w) {
    return code_literals_body(codes, lengths, data, size, w);
}

#if HAVE_AVX2
// The same with BMI2's shifts by a register (shlx, shrx: one micro-op, where shl by cl takes three
// on Intel's cores and the coder is a stream of them); every AVX2 CPU has BMI2 but it is asked anyway.
__attribute__((target("bmi2"))) static size_t code_literals_bmi2(const uint32_t *codes, const uint8_t *lengths, const uint8_t *data,
                                                                  size_t size, bit_writer *w) {
    return code_literals_body(codes, lengths, data, size, w);
}
#endif

#if HAVE_AVX2
#define VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi,bmi2")))

// Entry x & 255 of a 256-byte table held in four registers, for 64 bytes at once: vpermi2b looks
// up 128 entries by the low 7 bits; the top bit picks which half.
VBMI static inline __m512i lookup_bytes(__m512i x, const __m512i table[4]) {
    __m512i low = _mm512_permutex2var_epi8(table[0], x, table[1]), high = _mm512_permutex2var_epi8(table[2], x, table[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high);
}

// The same bits with AVX-512 VBMI, 64 literals a step: each literal's code (at most 14 bits, split
// into two byte tables) and length by byte lookups, then neighbours joined in registers (pairs into
// 32-bit lanes by a shift of the odd one by the even one's length, pairs of those into 64-bit lanes:
// at most 56 bits), so that the serial part appends 16 words of four literals each, not 64 literals.
VBMI static size_t code_literals_vbmi(const uint32_t *codes, const uint8_t *lengths, const uint8_t *data, size_t size, bit_writer *w) {
    uint8_t low_bytes[256], high_bytes[256];
    for (int v = 0; v < 256; v++) {
        low_bytes[v] = (uint8_t)codes[v];
        high_bytes[v] = (uint8_t)(codes[v] >> 8);
    }
    __m512i low_table[4], high_table[4], length_table[4];
    for (int k = 0; k < 4; k++) {
        low_table[k] = _mm512_loadu_si512((const void *)(low_bytes + 64 * k));
        high_table[k] = _mm512_loadu_si512((const void *)(high_bytes + 64 * k));
        length_table[k] = _mm512_loadu_si512((const void *)(lengths + 64 * k));
    }
    const __m512i low16 = _mm512_set1_epi32(0xFFFF), low32 = _mm512_set1_epi64(0xFFFFFFFF);
    uint8_t *o = w->out + w->pos;
    uint64_t bits = w->bits;
    int count = w->count;
    uint64_t words[16], sizes[16];
    size_t i = 0;
    for (; i + 64 <= size; i += 64) {
        __m512i x = _mm512_loadu_si512((const void *)(data + i));
        __m512i code_low = lookup_bytes(x, low_table), code_high = lookup_bytes(x, high_table), length = lookup_bytes(x, length_table);
        for (int half = 0; half < 2; half++) {
            __m512i code = _mm512_or_si512(_mm512_cvtepu8_epi16(half ? _mm512_extracti64x4_epi64(code_low, 1) : _mm512_castsi512_si256(code_low)),
                                           _mm512_slli_epi16(_mm512_cvtepu8_epi16(half ? _mm512_extracti64x4_epi64(code_high, 1) : _mm512_castsi512_si256(code_high)), 8));
            __m512i bits16 = _mm512_cvtepu8_epi16(half ? _mm512_extracti64x4_epi64(length, 1) : _mm512_castsi512_si256(length));
            // Literal 2k in the low half of 32-bit lane k, literal 2k + 1 in the high half.
            __m512i first = _mm512_and_si512(bits16, low16);
            __m512i pair = _mm512_or_si512(_mm512_and_si512(code, low16), _mm512_sllv_epi32(_mm512_srli_epi32(code, 16), first));
            __m512i pair_bits = _mm512_add_epi32(first, _mm512_srli_epi32(bits16, 16));
            __m512i first_pair = _mm512_and_si512(pair_bits, low32);
            __m512i quad = _mm512_or_si512(_mm512_and_si512(pair, low32), _mm512_sllv_epi64(_mm512_srli_epi64(pair, 32), first_pair));
            _mm512_storeu_si512((void *)(words + 8 * half), quad);
            _mm512_storeu_si512((void *)(sizes + 8 * half), _mm512_add_epi64(first_pair, _mm512_srli_epi64(pair_bits, 32)));
        }
        for (int k = 0; k < 16; k++) {
            bits |= words[k] << count;
            count += (int)sizes[k];
            memcpy(o, &bits, 8);
            o += count >> 3;
            bits >>= count & ~7;
            count &= 7;
        }
    }
    for (; i + 4 <= size; i += 4) CODE4(data + i, o, bits, count);
    w->pos = (size_t)(o - w->out);
    w->bits = bits;
    w->count = count;
    return i;
}
#endif

// The coder of `level` (usable_level).
static size_t code_literals(int level, const uint32_t *codes, const uint8_t *lengths, const uint8_t *data, size_t size, bit_writer *w) {
#if HAVE_AVX2
    if (level == 2) return code_literals_vbmi(codes, lengths, data, size, w);
    if (level == 1) return code_literals_bmi2(codes, lengths, data, size, w);
#endif
    (void)level;
    return code_literals_plain(codes, lengths, data, size, w);
}

// ---- the residues' histogram ----

// Counts of each byte value of `data` into `freq[256]`. Eight tables summed at the end: counting into
// one makes every increment wait for the last when neighbouring bytes are equal, as residues often
// are.
static void histogram_plain(const uint8_t *data, size_t size, uint32_t *freq) {
    uint32_t counts[8][256] = {{0}};
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        for (int k = 0; k < 8; k++) counts[k][data[i + k]]++;
    }
    for (; i < size; i++) counts[0][data[i]]++;
    for (int v = 0; v < 256; v++) {
        uint32_t total = 0;
        for (int k = 0; k < 8; k++) total += counts[k][v];
        freq[v] = total;
    }
}

#if HAVE_AVX2
// The same counts with AVX-512: Paeth residues of photos are 0, 1, 255, 2 or 254 six times in seven
// (resized colour photos: 42% are 0), so those five are counted 64 bytes at a time by comparisons and
// population counts, and only the other bytes, packed together by vpcompressb (its register form:
// the memory form is microcoded on Zen 4), go through the tables.
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) static void histogram_avx512(const uint8_t *data, size_t size, uint32_t *freq) {
    static const uint8_t common[5] = {0, 1, 255, 2, 254};
    uint64_t common_counts[5] = {0};
    uint8_t *rest = malloc(size + 64);
    if (!rest) {
        histogram_plain(data, size, freq);
        return;
    }
    size_t kept = 0, i = 0;
    for (; i + 64 <= size; i += 64) {
        __m512i x = _mm512_loadu_si512((const void *)(data + i));
        __mmask64 any = 0;
        for (int k = 0; k < 5; k++) {
            __mmask64 equal = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8((char)common[k]));
            common_counts[k] += (uint64_t)__builtin_popcountll(equal);
            any |= equal;
        }
        _mm512_storeu_si512((void *)(rest + kept), _mm512_maskz_compress_epi8(~any, x));
        kept += 64 - (size_t)__builtin_popcountll(any);
    }
    for (; i < size; i++) rest[kept++] = data[i];
    histogram_plain(rest, kept, freq);
    free(rest);
    for (int k = 0; k < 5; k++) freq[common[k]] += (uint32_t)common_counts[k];
}
#endif

static void histogram(int level, const uint8_t *data, size_t size, uint32_t *freq) {
#if HAVE_AVX2
    if (level == 2) {
        histogram_avx512(data, size, freq);
        return;
    }
#endif
    (void)level;
    histogram_plain(data, size, freq);
}

// ---- zlib stream ----

// `size` bytes deflated into `out` as a zlib stream; its length. `out` has room for the stored form
// (size + 5 bytes per 65,535 + 6) and 8 bytes more (the coder stores whole 64-bit words).
static size_t deflate_literals(int level, const uint8_t *data, size_t size, uint8_t *out) {
    size_t pos = 0;
    out[pos++] = 0x78; // deflate, 32 KB window
    out[pos++] = 0x01; // no dictionary, fastest; (0x78 << 8 | 0x01) % 31 == 0

    // Literal/length alphabet: the 256 byte values and end-of-block (256); no lengths are used.
    uint32_t freq[257];
    histogram(level, data, size, freq);
    freq[256] = 1;
    uint8_t lengths[259]; // 257 literal/length code lengths, then 2 distance code lengths
    // At most 14 bits (deflate allows 15), so that four literals fit the coder's word; the cost of
    // the lower limit is nil on photos, whose codes rarely reach it.
    code_lengths(freq, 257, 14, lengths);
    // Two distance codes of one bit each: never used, but a complete code that every inflater accepts.
    lengths[257] = 1;
    lengths[258] = 1;
    // The code lengths themselves are sent with a code over 0-15 (no run-length symbols 16-18).
    uint32_t length_freq[19] = {0};
    for (int i = 0; i < 259; i++) length_freq[lengths[i]]++;
    uint8_t length_lengths[19];
    code_lengths(length_freq, 19, 7, length_lengths);
    static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int sent = 19;
    while (sent > 4 && length_lengths[order[sent - 1]] == 0) sent--;

    // Bits the block would take; stored blocks instead when they are no larger.
    uint64_t cost = 3 + 5 + 5 + 4 + 3 * (uint64_t)sent;
    for (int i = 0; i < 259; i++) cost += length_lengths[lengths[i]];
    for (int i = 0; i < 257; i++) cost += (uint64_t)freq[i] * lengths[i];
    size_t blocks = size / 65535 + 1;
    if (cost / 8 + 1 >= size + 5 * blocks) {
        for (size_t offset = 0, block = 0; block < blocks; block++) {
            size_t length = size - offset < 65535 ? size - offset : 65535;
            out[pos++] = block == blocks - 1 ? 1 : 0; // BFINAL, BTYPE 00, padded to the byte
            out[pos++] = (uint8_t)length;
            out[pos++] = (uint8_t)(length >> 8);
            out[pos++] = (uint8_t)~length;
            out[pos++] = (uint8_t)(~length >> 8);
            memcpy(out + pos, data + offset, length);
            pos += length;
            offset += length;
        }
    } else {
        uint32_t codes[257], length_codes[19];
        canonical_codes(lengths, 257, codes);
        canonical_codes(length_lengths, 19, length_codes);
        bit_writer w = {out, pos, 0, 0};
        put_bits(&w, 1, 1);           // BFINAL
        put_bits(&w, 2, 2);           // BTYPE 10: dynamic Huffman codes
        put_bits(&w, 257 - 257, 5);   // HLIT
        put_bits(&w, 2 - 1, 5);       // HDIST
        put_bits(&w, (uint32_t)(sent - 4), 4); // HCLEN
        for (int i = 0; i < sent; i++) put_bits(&w, length_lengths[order[i]], 3);
        for (int i = 0; i < 259; i++) put_bits(&w, length_codes[lengths[i]], length_lengths[lengths[i]]);
        // put_bits leaves up to 31 bits pending: whole bytes out first, so that the loop starts with
        // at most 7.
        while (w.count >= 8) {
            w.out[w.pos++] = (uint8_t)w.bits;
            w.bits >>= 8;
            w.count -= 8;
        }
        size_t i = code_literals(level, codes, lengths, data, size, &w);
        for (; i < size; i++) put_bits(&w, codes[data[i]], lengths[data[i]]);
        put_bits(&w, codes[256], lengths[256]);
        flush_bits(&w);
        pos = w.pos;
    }
    put_be32(out + pos, adler(level, data, size));
    return pos + 4;
}

// ---- PNG ----

static size_t put_chunk(uint8_t *out, const char *type, const uint8_t *data, size_t size) {
    put_be32(out, (uint32_t)size);
    memcpy(out + 4, type, 4);
    if (size && data != out + 8) memmove(out + 8, data, size);
    put_be32(out + 8 + size, crc32_of(out + 4, size + 4));
    return size + 12;
}

static inline uint8_t paeth(int a, int b, int c) {
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

int st_png_encode_fast(int isa, const uint8_t *pixels, uint32_t width, uint32_t height, int channels, uint8_t **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    if ((channels != 1 && channels != 3) || width == 0 || height == 0 || width > (1u << 24) || height > (1u << 24)) return -1;
    const int level = usable_level(isa);
    size_t stride = (size_t)width * (size_t)channels, rows = (size_t)stride + 1;
    size_t raw = rows * height;
    if (raw > 0x7fffffffu / 2) return -1; // one IDAT chunk, whose length field is 31 bits
    // Filtered rows (filter byte 4, Paeth, then residues), then the file: signature, IHDR, one IDAT,
    // IEND. The zlib stream is at most the stored form: raw + 5 bytes per 65535 + 6.
    uint8_t *filtered = malloc(raw);
    size_t capacity = 8 + 25 + 12 + raw + 5 * (raw / 65535 + 1) + 6 + 8 /* the coder's last 8-byte store */ + 12;
    uint8_t *file = malloc(capacity);
    if (!filtered || !file) {
        free(filtered);
        free(file);
        return -1;
    }
    // Row 0 has no row above (Paeth is then the left neighbour), and each row's first pixel no left
    // neighbour (Paeth is then the one above): both taken out so that the main loop has no branches.
    for (size_t y = 0; y < height; y++) {
        const uint8_t *row = pixels + y * stride;
        uint8_t *residue = filtered + y * rows + 1;
        filtered[y * rows] = 4;
        size_t first = (size_t)channels < stride ? (size_t)channels : stride;
        if (y == 0) {
            for (size_t x = 0; x < first; x++) residue[x] = row[x];
            for (size_t x = first; x < stride; x++) residue[x] = (uint8_t)(row[x] - row[x - channels]);
            continue;
        }
        const uint8_t *above = row - stride;
        for (size_t x = 0; x < first; x++) residue[x] = (uint8_t)(row[x] - above[x]);
        size_t x = first;
#if HAVE_AVX2
        if (level == 2) x = paeth_avx512(row, above, first, stride, channels, residue);
        if (level >= 1) x = paeth_avx2(row, above, x, stride, channels, residue);
#endif
        for (; x < stride; x++) residue[x] = (uint8_t)(row[x] - paeth(row[x - channels], above[x], above[x - channels]));
    }
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t pos = 0;
    memcpy(file, signature, 8);
    pos += 8;
    // Width, height, then 8 bits, RGB or grey, deflate, adaptive filtering, no interlace.
    uint8_t header[13] = {0, 0, 0, 0, 0, 0, 0, 0, 8, channels == 3 ? 2 : 0, 0, 0, 0};
    put_be32(header, width);
    put_be32(header + 4, height);
    pos += put_chunk(file + pos, "IHDR", header, 13);
    size_t stream = deflate_literals(level, filtered, raw, file + pos + 8);
    free(filtered);
    pos += put_chunk(file + pos, "IDAT", file + pos + 8, stream);
    pos += put_chunk(file + pos, "IEND", NULL, 0);
    *out = file;
    *out_size = pos;
    return 0;
}
