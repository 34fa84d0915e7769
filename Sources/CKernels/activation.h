// The activations every kernel here applies as values leave it (depthwise.h's ST_ACT_*), one
// definition for the plain loops, AVX2 and AVX-512: the same operations in the same order, so the
// same bits on every path, whether a GEMM's tile or the depthwise kernel applies them.
#ifndef SIGNTRANSFER_ACTIVATION_H
#define SIGNTRANSFER_ACTIVATION_H
#pragma STDC FP_CONTRACT OFF
#include "depthwise.h"

#include <math.h>
#include <stdint.h>

// exp(t) = 2^n * p(r), n = round(t / ln 2), r = t - n ln 2 (two steps, ln 2 split so that n * HI is
// exact), p the degree-7 Taylor polynomial (|r| <= 0.35: truncation below 1e-8). t is clipped to
// [-87, 88] so that 2^n is a normal float: exp(-x) for the sigmoid then never overflows.
#define EXP_LOW -87.0f
#define EXP_HIGH 88.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
static const float taylor[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 1.0f / 2, 1.0f, 1.0f};
// taylor[0] is 1/7!: the Horner chain starts there and folds in 1/6! ... 1/0!.
static const float taylor7 = 1.0f / 40320;

static inline float st_exp_plain(float t) {
    t = t < EXP_LOW ? EXP_LOW : t;
    t = t > EXP_HIGH ? EXP_HIGH : t;
    float n = nearbyintf(t * LOG2E);
    float r = fmaf(-n, LN2_HI, t);
    r = fmaf(-n, LN2_LO, r);
    float p = taylor7;
    for (int i = 0; i < 8; i++) p = fmaf(p, r, taylor[i]);
    union { uint32_t bits; float value; } scale = {.bits = (uint32_t)((int32_t)n + 127) << 23};
    return p * scale.value;
}


static inline float st_activate_plain(float v, int activation) {
    switch (activation) {
    case ST_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ST_ACT_RELU6:
        v = v > 0.0f ? v : 0.0f;
        return v < 6.0f ? v : 6.0f;
    case ST_ACT_SWISH: return v / (1.0f + st_exp_plain(-v));
    case ST_ACT_SIGMOID: return 1.0f / (1.0f + st_exp_plain(-v));
    default: return v;
    }
}

#if defined(__x86_64__) && !defined(SIGNTRANSFER_NO_X86_KERNELS)
#include <immintrin.h>
#define ST_ACT512 __attribute__((target("avx512f,avx2,fma"), always_inline)) static inline
#define ST_ACT256 __attribute__((target("avx2,fma"), always_inline)) static inline

ST_ACT512 __m512 st_exp16(__m512 t) {
    t = _mm512_max_ps(t, _mm512_set1_ps(EXP_LOW));
    t = _mm512_min_ps(t, _mm512_set1_ps(EXP_HIGH));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_setzero_ps(), n), _mm512_set1_ps(LN2_HI), t);
    r = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_setzero_ps(), n), _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(taylor7);
    for (int i = 0; i < 8; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(taylor[i]));
    // p * 2^n by vscalefps, one instruction for the four that build 2^n's bits and multiply: the
    // same exact product, since t's clip keeps 2^n and the result normal floats.
    return _mm512_scalef_ps(p, n);
}

// max(v, 0) is 0 for a NaN v, as `v > 0 ? v : 0` is: maxps returns its second operand when either is NaN.
ST_ACT512 __m512 st_activate16(__m512 v, int activation) {
    switch (activation) {
    case ST_ACT_RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case ST_ACT_RELU6: return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    case ST_ACT_SWISH:
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), st_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    case ST_ACT_SIGMOID:
        return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), st_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    default: return v;
    }
}

ST_ACT256 __m256 st_exp8(__m256 t) {
    t = _mm256_max_ps(t, _mm256_set1_ps(EXP_LOW));
    t = _mm256_min_ps(t, _mm256_set1_ps(EXP_HIGH));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_setzero_ps(), n), _mm256_set1_ps(LN2_HI), t);
    r = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_setzero_ps(), n), _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(taylor7);
    for (int i = 0; i < 8; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(taylor[i]));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

ST_ACT256 __m256 st_activate8(__m256 v, int activation) {
    switch (activation) {
    case ST_ACT_RELU: return _mm256_max_ps(v, _mm256_setzero_ps());
    case ST_ACT_RELU6: return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(6.0f));
    case ST_ACT_SWISH:
        return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), st_exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case ST_ACT_SIGMOID:
        return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), st_exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    default: return v;
    }
}

#endif
#endif
