// Winograd F(2x2, 3x3) and F(4x4, 3x3) input and output transforms (Lavin & Gray, 2015), vectorised
// over the channels: one build of each loop for AVX-512, one for AVX2 + FMA and one for the baseline,
// chosen by the caller (the GEMM kernel's instruction set).

#include "winograd.h"

#include "conv_gemm.h"
#include "gemm_general.h"
#include "gemm_tile.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define INLINE static inline __attribute__((always_inline))
#if ST_X86
#define WIDE __attribute__((target("avx512f")))
#define NARROW __attribute__((target("avx2,fma")))
#else
#define WIDE
#define NARROW
#endif

// Pointers to the (m+2)^2 input pixels of tile t, `zero` where the tile leaves the image.
INLINE void tilePointers(int m, const float *x, int height, int width, int channels, int t, const float *zero,
                         const float **d) {
    int tileRows = (height + m - 1) / m, tileColumns = (width + m - 1) / m, a = m + 2;
    int n = t / (tileRows * tileColumns), ty = (t / tileColumns) % tileRows, tx = t % tileColumns;
    for (int r = 0; r < a; r++) {
        int iy = m * ty - 1 + r;
        for (int c = 0; c < a; c++) {
            int ix = m * tx - 1 + c;
            d[r * a + c] = iy >= 0 && iy < height && ix >= 0 && ix < width
                               ? x + ((size_t)(n * height + iy) * width + ix) * channels
                               : zero;
        }
    }
}

// Pointers to the m x m output pixels of tile t, `junk` where they fall past the image.
INLINE void outputPointers(int m, float *out, int height, int width, int channels, int t, float *junk, float **y) {
    int tileRows = (height + m - 1) / m, tileColumns = (width + m - 1) / m;
    int n = t / (tileRows * tileColumns), ty = (t / tileColumns) % tileRows, tx = t % tileColumns;
    for (int i = 0; i < m; i++) {
        int oy = m * ty + i;
        for (int j = 0; j < m; j++) {
            int ox = m * tx + j;
            y[i * m + j] = oy < height && ox < width ? out + ((size_t)(n * height + oy) * width + ox) * channels : junk;
        }
    }
}

// Bᵀ for F(2,3): [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]].
#define B2(d0, d1, d2, d3, t0, t1, t2, t3) \
    t0 = d0 - d2; t1 = d1 + d2; t2 = d2 - d1; t3 = d1 - d3;
// Bᵀ for F(4,3): [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1]].
#define B4(d0, d1, d2, d3, d4, d5, t0, t1, t2, t3, t4, t5) \
    t0 = 4 * d0 - 5 * d2 + d4; t1 = d3 + d4 - 4 * (d1 + d2); t2 = 4 * (d1 - d2) + d4 - d3; \
    t3 = 2 * (d3 - d1) + d4 - d2; t4 = 2 * (d1 - d3) + d4 - d2; t5 = 4 * d1 - 5 * d3 + d5;
// Aᵀ for F(2,3): [[1,1,1,0], [0,1,-1,-1]].
#define A2(m0, m1, m2, m3, y0, y1) y0 = m0 + m1 + m2; y1 = m1 - m2 - m3;
// Aᵀ for F(4,3): [[1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1]].
#define A4(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3) \
    y0 = m0 + m1 + m2 + m3 + m4; y1 = m1 - m2 + 2 * (m3 - m4); y2 = m1 + m2 + 4 * (m3 + m4); \
    y3 = m1 - m2 + 8 * (m3 - m4) + m5;

INLINE void input2(const float **d, float *o, size_t stride, int channels) {
#pragma clang loop vectorize(assume_safety)
    for (int c = 0; c < channels; c++) {
        float t[16], u[16];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < 4; j++) { B2(d[j][c], d[4 + j][c], d[8 + j][c], d[12 + j][c], t[j], t[4 + j], t[8 + j], t[12 + j]) }
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 4; i++) { B2(t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3], u[4 * i], u[4 * i + 1], u[4 * i + 2], u[4 * i + 3]) }
        _Pragma("clang loop unroll(full)") for (int xi = 0; xi < 16; xi++) o[xi * stride + c] = u[xi];
    }
}

INLINE void input4(const float **d, float *o, size_t stride, int channels) {
#pragma clang loop vectorize(assume_safety)
    for (int c = 0; c < channels; c++) {
        float t[36], u[36];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < 6; j++) {
            B4(d[j][c], d[6 + j][c], d[12 + j][c], d[18 + j][c], d[24 + j][c], d[30 + j][c],
               t[j], t[6 + j], t[12 + j], t[18 + j], t[24 + j], t[30 + j])
        }
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 6; i++) {
            const float *r = t + 6 * i;
            float *s = u + 6 * i;
            B4(r[0], r[1], r[2], r[3], r[4], r[5], s[0], s[1], s[2], s[3], s[4], s[5])
        }
        _Pragma("clang loop unroll(full)") for (int xi = 0; xi < 36; xi++) o[xi * stride + c] = u[xi];
    }
}

INLINE void output2(const float *p, size_t stride, float **y, const float *bias, int channels) {
#pragma clang loop vectorize(assume_safety)
    for (int c = 0; c < channels; c++) {
        float s[8], r[4];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < 4; j++) { A2(p[j * stride + c], p[(4 + j) * stride + c], p[(8 + j) * stride + c], p[(12 + j) * stride + c], s[j], s[4 + j]) }
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 2; i++) { A2(s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3], r[2 * i], r[2 * i + 1]) }
        _Pragma("clang loop unroll(full)") for (int k = 0; k < 4; k++) { float v = r[k] + bias[c]; y[k][c] = v > 0 ? v : 0; }
    }
}

INLINE void output4(const float *p, size_t stride, float **y, const float *bias, int channels) {
#pragma clang loop vectorize(assume_safety)
    for (int c = 0; c < channels; c++) {
        float s[24], r[16];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < 6; j++) {
            A4(p[j * stride + c], p[(6 + j) * stride + c], p[(12 + j) * stride + c], p[(18 + j) * stride + c],
               p[(24 + j) * stride + c], p[(30 + j) * stride + c], s[j], s[6 + j], s[12 + j], s[18 + j])
        }
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 4; i++) {
            const float *q = s + 6 * i;
            A4(q[0], q[1], q[2], q[3], q[4], q[5], r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3])
        }
        _Pragma("clang loop unroll(full)") for (int k = 0; k < 16; k++) { float v = r[k] + bias[c]; y[k][c] = v > 0 ? v : 0; }
    }
}

INLINE void inputRange(int m, const float *x, int height, int width, int channels, int first, int count,
                       const float *zero, float *v) {
    size_t stride = (size_t)count * channels;
    const float *d[36];
    for (int t = first; t < first + count; t++) {
        tilePointers(m, x, height, width, channels, t, zero, d);
        float *o = v + (size_t)(t - first) * channels;
        if (m == 2) input2(d, o, stride, channels);
        else input4(d, o, stride, channels);
    }
}

INLINE void outputRange(int m, const float *products, int height, int width, int channels, int first, int count,
                        const float *bias, float *junk, float *out) {
    size_t stride = (size_t)count * channels;
    float *y[16];
    for (int t = first; t < first + count; t++) {
        outputPointers(m, out, height, width, channels, t, junk, y);
        const float *p = products + (size_t)(t - first) * channels;
        if (m == 2) output2(p, stride, y, bias, channels);
        else output4(p, stride, y, bias, channels);
    }
}

WIDE static void inputWide(int m, const float *x, int height, int width, int channels,
                                                         int first, int count, const float *zero, float *v) {
    inputRange(m, x, height, width, channels, first, count, zero, v);
}

NARROW static void inputNarrow(int m, const float *x, int height, int width, int channels, int first, int count,
                               const float *zero, float *v) {
    inputRange(m, x, height, width, channels, first, count, zero, v);
}

static void inputBase(int m, const float *x, int height, int width, int channels, int first, int count,
                      const float *zero, float *v) {
    inputRange(m, x, height, width, channels, first, count, zero, v);
}

WIDE static void outputWide(int m, const float *products, int height, int width,
                                                          int channels, int first, int count, const float *bias,
                                                          float *junk, float *out) {
    outputRange(m, products, height, width, channels, first, count, bias, junk, out);
}

NARROW static void outputNarrow(int m, const float *products, int height, int width, int channels, int first, int count,
                                const float *bias, float *junk, float *out) {
    outputRange(m, products, height, width, channels, first, count, bias, junk, out);
}

static void outputBase(int m, const float *products, int height, int width, int channels, int first, int count,
                       const float *bias, float *junk, float *out) {
    outputRange(m, products, height, width, channels, first, count, bias, junk, out);
}

// Only F(2x2,3x3) and F(4x4,3x3) exist here: the tile arrays are sized for them, so any other m is
// a programming error, stopped before it writes out of bounds.
static void checkTile(int m) {
    if (m != 2 && m != 4) {
        fprintf(stderr, "winograd: output tile %d is not supported (2 or 4)\n", m);
        abort();
    }
}

// The instruction set asked for, if this CPU has it, else the best below it that it has.
static int usable(int isa) { return isa < st_isa_best() ? isa : st_isa_best(); }

void st_winograd_input(int isa, int m, const float *x, int height, int width, int channels, int first, int count,
                       const float *zero, float *v) {
    checkTile(m);
    switch (usable(isa)) {
        case ST_ISA_AVX512: inputWide(m, x, height, width, channels, first, count, zero, v); break;
        case ST_ISA_AVX2: inputNarrow(m, x, height, width, channels, first, count, zero, v); break;
        default: inputBase(m, x, height, width, channels, first, count, zero, v);
    }
}

void st_winograd_output(int isa, int m, const float *products, int height, int width, int channels, int first, int count,
                        const float *bias, float *junk, float *out) {
    checkTile(m);
    switch (usable(isa)) {
        case ST_ISA_AVX512: outputWide(m, products, height, width, channels, first, count, bias, junk, out); break;
        case ST_ISA_AVX2: outputNarrow(m, products, height, width, channels, first, count, bias, junk, out); break;
        default: outputBase(m, products, height, width, channels, first, count, bias, junk, out);
    }
}

// G for F(2,3) and F(4,3), rows of 3.
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

INLINE void filterRange(int m, int position, const float *w, int input, int output, float *u) {
    int a = m + 2, i = position / a, j = position % a;
    const double(*g)[3] = m == 2 ? G2 : G4;
    double c[3][3];
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++) c[r][s] = g[i][r] * g[j][s];
    for (int ci = 0; ci < input; ci++) {
        const float *k[9];
        for (int r = 0; r < 9; r++) k[r] = w + ((size_t)r * input + ci) * output;
        float *row = u + (size_t)ci * output;
#pragma clang loop vectorize(assume_safety)
        for (int co = 0; co < output; co++) {
            double sum = 0;
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++) sum += c[r][s] * (double)k[r * 3 + s][co];
            row[co] = (float)sum;
        }
    }
}

WIDE static void filterWide(int m, int position, const float *w, int input, int output, float *u) {
    filterRange(m, position, w, input, output, u);
}

NARROW static void filterNarrow(int m, int position, const float *w, int input, int output, float *u) {
    filterRange(m, position, w, input, output, u);
}

static void filterBase(int m, int position, const float *w, int input, int output, float *u) {
    filterRange(m, position, w, input, output, u);
}

void st_winograd_filter(int isa, int m, int position, const float *w, int input, int output, float *u) {
    checkTile(m);
    switch (usable(isa)) {
        case ST_ISA_AVX512: filterWide(m, position, w, input, output, u); break;
        case ST_ISA_AVX2: filterNarrow(m, position, w, input, output, u); break;
        default: filterBase(m, position, w, input, output, u);
    }
}
