// The separable resize's two passes (see resize.h). The plain loops are the reference; the AVX2
// loops gather and blend 8 floats at a time (AVX-512: 16, picked from a window where they can) with
// the same operations, sub then mul then add, each rounded to float as the plain loop rounds it. No
// FMA: neither the pragma nor the target allows contracting a multiply and an add into one rounding,
// which would change bits.
#pragma STDC FP_CONTRACT OFF
#include "resize.h"
#include "gemm_general.h"

#include <math.h>

static void across_plain(const uint8_t *row, const int32_t *lower, const int32_t *upper, const float *lerp, int count, float *out) {
    for (int j = 0; j < count; j++) {
        float l = (float)row[lower[j]], r = (float)row[upper[j]];
        out[j] = l + (r - l) * lerp[j];
    }
}

// Clipped first, then rounded half to even by the FPU's default mode (nearbyintf): both ends of the
// clip are integers, so this is the byte a rounding before the clip would give.
static void down_plain(const float *top, const float *bottom, float lerp, int count, uint8_t *out) {
    for (int i = 0; i < count; i++) {
        float v = top[i] + (bottom[i] - top[i]) * lerp;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        out[i] = (uint8_t)nearbyintf(v);
    }
}

#if defined(__x86_64__) && !defined(SIGNTRANSFER_NO_X86_KERNELS)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

AVX2 static void across_avx2(const uint8_t *row, int row_count, const int32_t *lower, const int32_t *upper, const float *lerp, int count,
                             float *scratch, float *out) {
    int i = 0;
    for (; i + 8 <= row_count; i += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(row + i));
        _mm256_storeu_ps(scratch + i, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)));
    }
    for (; i < row_count; i++) scratch[i] = (float)row[i];
    int j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256 l = _mm256_i32gather_ps(scratch, _mm256_loadu_si256((const __m256i *)(lower + j)), 4);
        __m256 r = _mm256_i32gather_ps(scratch, _mm256_loadu_si256((const __m256i *)(upper + j)), 4);
        __m256 blended = _mm256_add_ps(l, _mm256_mul_ps(_mm256_sub_ps(r, l), _mm256_loadu_ps(lerp + j)));
        _mm256_storeu_ps(out + j, blended);
    }
    for (; j < count; j++) {
        float l = scratch[lower[j]], r = scratch[upper[j]];
        out[j] = l + (r - l) * lerp[j];
    }
}

// The same with AVX-512 and no gathers where it can: 16 outputs at a time read a window of 64 bytes
// of the row, and when every index of the 16 falls within it (growing, or shrinking by up to about
// 3.5x: 16 RGB outputs span about 3 (5.3 s + 1) bytes at scale s), both taps are picked from the
// window's bytes by vpermb and only then made floats; otherwise the row is converted to floats once
// and two gathers read it, as the AVX2 loop does. Gathers cost about 10x a permute on Intel's cores
// since the Downfall microcode (they were 10% of preprocess at 200 -> 224), and reading floats just
// stored to the scratch row stalled on store forwarding. The same sub, mul and add: the same bits.
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

AVX512 static void across_avx512(const uint8_t *row, int row_count, const int32_t *lower, const int32_t *upper, const float *lerp, int count,
                                 float *scratch, float *out) {
    int converted = 0; // the scratch row is made on the first block that needs it
    int j = 0;
    for (; j + 16 <= count; j += 16) {
        __m512i lo = _mm512_loadu_si512((const void *)(lower + j)), hi = _mm512_loadu_si512((const void *)(upper + j));
        int base = _mm512_reduce_min_epi32(lo), top = _mm512_reduce_max_epi32(hi);
        __m512 l, r;
        if (top - base < 64) {
            // The window's bytes past the row's end are masked off (never picked by the indices).
            int left = row_count - base;
            __mmask64 valid = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            __m512i window = _mm512_maskz_loadu_epi8(valid, row + base);
            __m512i offset = _mm512_set1_epi32(base);
            __m128i left_bytes = _mm512_castsi512_si128(_mm512_permutexvar_epi8(_mm512_castsi128_si512(_mm512_cvtepi32_epi8(_mm512_sub_epi32(lo, offset))), window));
            __m128i right_bytes = _mm512_castsi512_si128(_mm512_permutexvar_epi8(_mm512_castsi128_si512(_mm512_cvtepi32_epi8(_mm512_sub_epi32(hi, offset))), window));
            l = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(left_bytes));
            r = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(right_bytes));
        } else {
            if (!converted) {
                int i = 0;
                for (; i + 16 <= row_count; i += 16) {
                    __m128i bytes = _mm_loadu_si128((const __m128i *)(row + i));
                    _mm512_storeu_ps(scratch + i, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)));
                }
                for (; i < row_count; i++) scratch[i] = (float)row[i];
                converted = 1;
            }
            l = _mm512_i32gather_ps(lo, scratch, 4);
            r = _mm512_i32gather_ps(hi, scratch, 4);
        }
        _mm512_storeu_ps(out + j, _mm512_add_ps(l, _mm512_mul_ps(_mm512_sub_ps(r, l), _mm512_loadu_ps(lerp + j))));
    }
    for (; j < count; j++) {
        float l = (float)row[lower[j]], r = (float)row[upper[j]];
        out[j] = l + (r - l) * lerp[j];
    }
}

// cvtps2dq rounds by the current mode, half to even by default, as nearbyintf does.
AVX2 static void down_avx2(const float *top, const float *bottom, float lerp, int count, uint8_t *out) {
    const __m256 weight = _mm256_set1_ps(lerp), zero = _mm256_setzero_ps(), top255 = _mm256_set1_ps(255);
    int i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256 t0 = _mm256_loadu_ps(top + i), t1 = _mm256_loadu_ps(top + i + 8);
        __m256 v0 = _mm256_add_ps(t0, _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(bottom + i), t0), weight));
        __m256 v1 = _mm256_add_ps(t1, _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(bottom + i + 8), t1), weight));
        __m256i n0 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v0, zero), top255));
        __m256i n1 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v1, zero), top255));
        // 16 int32 to 16 bytes: packs work within 128-bit lanes, so the lanes are put back in order.
        __m256i words = _mm256_permute4x64_epi64(_mm256_packus_epi32(n0, n1), 0xD8);
        __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128((__m128i *)(out + i), bytes);
    }
    down_plain(top + i, bottom + i, lerp, count - i, out + i);
}
#define HAVE_AVX2 1
#else
#define HAVE_AVX2 0
#endif

void st_resize_across(int isa, const uint8_t *row, int row_count, const int32_t *lower, const int32_t *upper, const float *lerp, int count,
                      float *scratch, float *out) {
#if HAVE_AVX2
    if (isa >= ST_ISA_AVX512 && __builtin_cpu_supports("avx512vbmi")) {
        across_avx512(row, row_count, lower, upper, lerp, count, scratch, out);
        return;
    }
    if (isa >= ST_ISA_AVX2) {
        across_avx2(row, row_count, lower, upper, lerp, count, scratch, out);
        return;
    }
#endif
    (void)row_count;
    (void)scratch;
    (void)isa;
    across_plain(row, lower, upper, lerp, count, out);
}

void st_resize_down(int isa, const float *top, const float *bottom, float lerp, int count, uint8_t *out) {
#if HAVE_AVX2
    if (isa >= ST_ISA_AVX2) {
        down_avx2(top, bottom, lerp, count, out);
        return;
    }
#endif
    (void)isa;
    down_plain(top, bottom, lerp, count, out);
}
