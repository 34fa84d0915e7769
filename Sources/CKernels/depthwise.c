// Depthwise convolution, activations and squeeze-excitation's parts (see depthwise.h). The plain
// loops are the reference; the AVX2 and AVX-512 loops run 8 or 16 channels at once with the same
// operations in the same order: explicit fused multiply-adds (fmaf in the plain loops), the same
// exp, divisions and min/max written as the vector instructions compute them. Nothing may be
// contracted behind our back, so the pragma is off.
#pragma STDC FP_CONTRACT OFF
#include "depthwise.h"
#include "gemm_general.h"
#include "activation.h"

float st_exp(float x) { return st_exp_plain(x); }

static void depthwise_plain_channels(const float *x, int height, int width, int channels, const float *w, const float *bias, int size,
                                     int stride, int top, int left, int out_height, int out_width, int activation, float *y, float *sums,
                                     int first, int end) {
    for (int oy = 0; oy < out_height; oy++) {
        int iy0 = oy * stride - top;
        int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = height - iy0 < size ? height - iy0 : size;
        for (int c = first; c < end; c++) {
            float row_sum = 0.0f;
            for (int ox = 0; ox < out_width; ox++) {
                int ix0 = ox * stride - left;
                int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = width - ix0 < size ? width - ix0 : size;
                float acc = bias[c];
                for (int ky = ky_lo; ky < ky_hi; ky++) {
                    const float *row = x + ((size_t)(iy0 + ky) * width + ix0) * channels + c;
                    const float *taps = w + (size_t)ky * size * channels + c;
                    for (int kx = kx_lo; kx < kx_hi; kx++) acc = fmaf(row[(size_t)kx * channels], taps[(size_t)kx * channels], acc);
                }
                acc = st_activate_plain(acc, activation);
                y[((size_t)oy * out_width + ox) * channels + c] = acc;
                row_sum = row_sum + acc;
            }
            if (sums) sums[c] = sums[c] + row_sum;
        }
    }
}

static void depthwise_plain(const float *x, int height, int width, int channels, const float *w, const float *bias, int size, int stride,
                            int top, int left, int out_height, int out_width, int activation, float *y, float *sums) {
    depthwise_plain_channels(x, height, width, channels, w, bias, size, stride, top, left, out_height, out_width, activation, y, sums, 0, channels);
}

static void dense_plain(const float *x, int inputs, const float *w, const float *bias, int outputs, int activation, float *y) {
    for (int j = 0; j < outputs; j++) y[j] = bias ? bias[j] : 0.0f;
    for (int i = 0; i < inputs; i++)
        for (int j = 0; j < outputs; j++) y[j] = fmaf(x[i], w[(size_t)i * outputs + j], y[j]);
    for (int j = 0; j < outputs; j++) y[j] = st_activate_plain(y[j], activation);
}

#if defined(__x86_64__) && !defined(SIGNTRANSFER_NO_X86_KERNELS)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

// ---- AVX-512: 16 channels a vector, masked at the end of a row of channels.

// One block of 16 channels over the whole image, its K x K taps held in registers. Output columns
// whose taps all fall inside the image (most of them) run the taps unrolled and unchecked; the few at
// the borders check each tap. Both skip the taps outside the image, as the plain loop does, in its
// order (ky, then kx), so the bits are the plain loop's. K and the activation are constants after
// inlining: one specialised loop per use.
AVX512 static inline __attribute__((always_inline)) void depthwise16(const int K, const int activation, const int stride, const float *x,
                                                                     int height, int width, int channels, const float *w, const float *bias, int top,
                                                                     int left, int out_height, int out_width, float *y, float *sums, int c) {
    __mmask16 mask = channels - c >= 16 ? 0xFFFF : (__mmask16)((1u << (channels - c)) - 1);
    __m512 taps[25];
    for (int i = 0; i < K * K; i++) taps[i] = _mm512_maskz_loadu_ps(mask, w + (size_t)i * channels + c);
    const __m512 b = _mm512_maskz_loadu_ps(mask, bias + c);
    // Columns [inner_lo, inner_hi) have every tap inside: ox * stride >= left, ox * stride - left + K <= width.
    int inner_lo = (left + stride - 1) / stride;
    int inner_hi = width - K + left < 0 ? 0 : (width - K + left) / stride + 1;
    if (inner_hi > out_width) inner_hi = out_width;
    if (inner_lo > inner_hi) inner_lo = inner_hi;
    __m512 total = _mm512_maskz_loadu_ps(mask, sums ? sums + c : bias + c);
    for (int oy = 0; oy < out_height; oy++) {
        int iy0 = oy * stride - top;
        int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = height - iy0 < K ? height - iy0 : K;
        __m512 row_sum = _mm512_setzero_ps();
        float *out = y + (size_t)oy * out_width * channels + c;
        for (int ox = 0; ox < out_width; ox++) {
            int ix0 = ox * stride - left;
            __m512 acc = b;
            if (ox >= inner_lo && ox + 4 <= inner_hi) {
                // Four columns at once: four independent chains of fused multiply-adds, each in the
                // plain loop's order (one chain alone waits on the latency of every step).
                __m512 acc1 = b, acc2 = b, acc3 = b;
                const size_t step = (size_t)stride * channels;
                for (int ky = ky_lo; ky < ky_hi; ky++) {
                    const float *row = x + ((size_t)(iy0 + ky) * width + ix0) * channels + c;
                    for (int kx = 0; kx < K; kx++) {
                        const float *at = row + (size_t)kx * channels;
                        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, at), taps[ky * K + kx], acc);
                        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, at + step), taps[ky * K + kx], acc1);
                        acc2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, at + 2 * step), taps[ky * K + kx], acc2);
                        acc3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, at + 3 * step), taps[ky * K + kx], acc3);
                    }
                }
                acc = st_activate16(acc, activation);
                acc1 = st_activate16(acc1, activation);
                acc2 = st_activate16(acc2, activation);
                acc3 = st_activate16(acc3, activation);
                _mm512_mask_storeu_ps(out + (size_t)ox * channels, mask, acc);
                _mm512_mask_storeu_ps(out + (size_t)(ox + 1) * channels, mask, acc1);
                _mm512_mask_storeu_ps(out + (size_t)(ox + 2) * channels, mask, acc2);
                _mm512_mask_storeu_ps(out + (size_t)(ox + 3) * channels, mask, acc3);
                row_sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(row_sum, acc), acc1), acc2), acc3);
                ox += 3;
                continue;
            }
            if (ox >= inner_lo && ox < inner_hi) {
                for (int ky = ky_lo; ky < ky_hi; ky++) {
                    const float *row = x + ((size_t)(iy0 + ky) * width + ix0) * channels + c;
                    for (int kx = 0; kx < K; kx++) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, row + (size_t)kx * channels), taps[ky * K + kx], acc);
                }
            } else {
                int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = width - ix0 < K ? width - ix0 : K;
                for (int ky = ky_lo; ky < ky_hi; ky++) {
                    const float *row = x + ((size_t)(iy0 + ky) * width + ix0) * channels + c;
                    for (int kx = kx_lo; kx < kx_hi; kx++)
                        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, row + (size_t)kx * channels), taps[ky * K + kx], acc);
                }
            }
            acc = st_activate16(acc, activation);
            _mm512_mask_storeu_ps(out + (size_t)ox * channels, mask, acc);
            row_sum = _mm512_add_ps(row_sum, acc);
        }
        total = _mm512_add_ps(total, row_sum);
    }
    if (sums) _mm512_mask_storeu_ps(sums + c, mask, total);
}

#define DEPTHWISE16(K, A) \
    (stride == 1 ? depthwise16(K, A, 1, x, height, width, channels, w, bias, top, left, out_height, out_width, y, sums, c) \
                 : depthwise16(K, A, 2, x, height, width, channels, w, bias, top, left, out_height, out_width, y, sums, c))

AVX512 static void depthwise_avx512(const float *x, int height, int width, int channels, const float *w, const float *bias, int size, int stride,
                                    int top, int left, int out_height, int out_width, int activation, float *y, float *sums) {
    for (int c = 0; c < channels; c += 16) {
        // K, the activation and the stride as constants: with stride 1 the four columns' loads
        // overlap and are made once.
        switch (stride <= 2 ? size * 8 + activation : 0) {
        case 3 * 8 + ST_ACT_NONE: DEPTHWISE16(3, ST_ACT_NONE); break;
        case 3 * 8 + ST_ACT_RELU6: DEPTHWISE16(3, ST_ACT_RELU6); break;
        case 3 * 8 + ST_ACT_SWISH: DEPTHWISE16(3, ST_ACT_SWISH); break;
        case 5 * 8 + ST_ACT_NONE: DEPTHWISE16(5, ST_ACT_NONE); break;
        case 5 * 8 + ST_ACT_RELU6: DEPTHWISE16(5, ST_ACT_RELU6); break;
        case 5 * 8 + ST_ACT_SWISH: DEPTHWISE16(5, ST_ACT_SWISH); break;
        default: {
            // Sizes other than 3 and 5 (no backbone here has one): the plain loop, a block of channels at a time.
            int block = channels - c < 16 ? channels - c : 16;
            depthwise_plain_channels(x, height, width, channels, w, bias, size, stride, top, left, out_height, out_width, activation, y, sums, c, c + block);
        }
        }
    }
}

AVX512 static void activate_avx512(float *x, size_t count, int activation) {
    size_t i = 0;
    // Four vectors a step: each one's activation is a long dependent chain (exp, then the reciprocal).
    for (; i + 64 <= count; i += 64) {
        __m512 a = st_activate16(_mm512_loadu_ps(x + i), activation), b = st_activate16(_mm512_loadu_ps(x + i + 16), activation);
        __m512 c = st_activate16(_mm512_loadu_ps(x + i + 32), activation), d = st_activate16(_mm512_loadu_ps(x + i + 48), activation);
        _mm512_storeu_ps(x + i, a);
        _mm512_storeu_ps(x + i + 16, b);
        _mm512_storeu_ps(x + i + 32, c);
        _mm512_storeu_ps(x + i + 48, d);
    }
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(x + i, st_activate16(_mm512_loadu_ps(x + i), activation));
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(x + i, mask, st_activate16(_mm512_maskz_loadu_ps(mask, x + i), activation));
    }
}

AVX512 static void scale_avx512(float *x, int pixels, int channels, const float *scale) {
    for (int p = 0; p < pixels; p++) {
        float *line = x + (size_t)p * channels;
        for (int c = 0; c < channels; c += 16) {
            __mmask16 mask = channels - c >= 16 ? 0xFFFF : (__mmask16)((1u << (channels - c)) - 1);
            _mm512_mask_storeu_ps(line + c, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, line + c), _mm512_maskz_loadu_ps(mask, scale + c)));
        }
    }
}

AVX512 static void dense_avx512(const float *x, int inputs, const float *w, const float *bias, int outputs, int activation, float *y) {
    for (int j = 0; j < outputs; j += 16) {
        __mmask16 mask = outputs - j >= 16 ? 0xFFFF : (__mmask16)((1u << (outputs - j)) - 1);
        __m512 acc = bias ? _mm512_maskz_loadu_ps(mask, bias + j) : _mm512_setzero_ps();
        for (int i = 0; i < inputs; i++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_maskz_loadu_ps(mask, w + (size_t)i * outputs + j), acc);
        _mm512_mask_storeu_ps(y + j, mask, st_activate16(acc, activation));
    }
}

// ---- AVX2: 8 channels a vector; a row of channels that is not a multiple of 8 ends in masked loads.

AVX2 static inline __m256i mask8(int remaining) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(remaining < 8 ? remaining : 8), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static void depthwise_avx2(const float *x, int height, int width, int channels, const float *w, const float *bias, int size, int stride,
                                int top, int left, int out_height, int out_width, int activation, float *y, float *sums) {
    for (int oy = 0; oy < out_height; oy++) {
        int iy0 = oy * stride - top;
        int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = height - iy0 < size ? height - iy0 : size;
        for (int c = 0; c < channels; c += 8) {
            __m256i mask = mask8(channels - c);
            __m256 b = _mm256_maskload_ps(bias + c, mask), row_sum = _mm256_setzero_ps();
            for (int ox = 0; ox < out_width; ox++) {
                int ix0 = ox * stride - left;
                int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = width - ix0 < size ? width - ix0 : size;
                __m256 acc = b;
                for (int ky = ky_lo; ky < ky_hi; ky++) {
                    const float *row = x + ((size_t)(iy0 + ky) * width + ix0) * channels + c;
                    const float *taps = w + (size_t)ky * size * channels + c;
                    for (int kx = kx_lo; kx < kx_hi; kx++)
                        acc = _mm256_fmadd_ps(_mm256_maskload_ps(row + (size_t)kx * channels, mask), _mm256_maskload_ps(taps + (size_t)kx * channels, mask), acc);
                }
                acc = st_activate8(acc, activation);
                _mm256_maskstore_ps(y + ((size_t)oy * out_width + ox) * channels + c, mask, acc);
                row_sum = _mm256_add_ps(row_sum, acc);
            }
            if (sums) _mm256_maskstore_ps(sums + c, mask, _mm256_add_ps(_mm256_maskload_ps(sums + c, mask), row_sum));
        }
    }
}

AVX2 static void activate_avx2(float *x, size_t count, int activation) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(x + i, st_activate8(_mm256_loadu_ps(x + i), activation));
    if (i < count) {
        __m256i mask = mask8((int)(count - i));
        _mm256_maskstore_ps(x + i, mask, st_activate8(_mm256_maskload_ps(x + i, mask), activation));
    }
}

AVX2 static void scale_avx2(float *x, int pixels, int channels, const float *scale) {
    for (int p = 0; p < pixels; p++) {
        float *line = x + (size_t)p * channels;
        for (int c = 0; c < channels; c += 8) {
            __m256i mask = mask8(channels - c);
            _mm256_maskstore_ps(line + c, mask, _mm256_mul_ps(_mm256_maskload_ps(line + c, mask), _mm256_maskload_ps(scale + c, mask)));
        }
    }
}

AVX2 static void dense_avx2(const float *x, int inputs, const float *w, const float *bias, int outputs, int activation, float *y) {
    for (int j = 0; j < outputs; j += 8) {
        __m256i mask = mask8(outputs - j);
        __m256 acc = bias ? _mm256_maskload_ps(bias + j, mask) : _mm256_setzero_ps();
        for (int i = 0; i < inputs; i++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(x[i]), _mm256_maskload_ps(w + (size_t)i * outputs + j, mask), acc);
        _mm256_maskstore_ps(y + j, mask, st_activate8(acc, activation));
    }
}
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static int usable(int isa) {
    int best = st_isa_best();
    return isa < best ? isa : best;
}

void st_depthwise(int isa, const float *x, int height, int width, int channels, const float *w, const float *bias, int size, int stride,
                  int top, int left, int out_height, int out_width, int activation, float *y, float *sums) {
#if HAVE_X86
    switch (usable(isa)) {
    case ST_ISA_AVX512:
        depthwise_avx512(x, height, width, channels, w, bias, size, stride, top, left, out_height, out_width, activation, y, sums);
        return;
    case ST_ISA_AVX2:
        depthwise_avx2(x, height, width, channels, w, bias, size, stride, top, left, out_height, out_width, activation, y, sums);
        return;
    }
#endif
    (void)isa;
    depthwise_plain(x, height, width, channels, w, bias, size, stride, top, left, out_height, out_width, activation, y, sums);
}

void st_activate(int isa, float *x, size_t count, int activation) {
    if (activation == ST_ACT_NONE) return;
#if HAVE_X86
    switch (usable(isa)) {
    case ST_ISA_AVX512: activate_avx512(x, count, activation); return;
    case ST_ISA_AVX2: activate_avx2(x, count, activation); return;
    }
#endif
    (void)isa;
    for (size_t i = 0; i < count; i++) x[i] = st_activate_plain(x[i], activation);
}

void st_scale_channels(int isa, float *x, int pixels, int channels, const float *scale) {
#if HAVE_X86
    switch (usable(isa)) {
    case ST_ISA_AVX512: scale_avx512(x, pixels, channels, scale); return;
    case ST_ISA_AVX2: scale_avx2(x, pixels, channels, scale); return;
    }
#endif
    (void)isa;
    for (int p = 0; p < pixels; p++)
        for (int c = 0; c < channels; c++) x[(size_t)p * channels + c] = x[(size_t)p * channels + c] * scale[c];
}

void st_dense_vector(int isa, const float *x, int inputs, const float *w, const float *bias, int outputs, int activation, float *y) {
#if HAVE_X86
    switch (usable(isa)) {
    case ST_ISA_AVX512: dense_avx512(x, inputs, w, bias, outputs, activation, y); return;
    case ST_ISA_AVX2: dense_avx2(x, inputs, w, bias, outputs, activation, y); return;
    }
#endif
    (void)isa;
    dense_plain(x, inputs, w, bias, outputs, activation, y);
}
