#ifndef SIGNTRANSFER_DEPTHWISE_H
#define SIGNTRANSFER_DEPTHWISE_H

#include <stddef.h>

/// What the mobile backbones (MobileNetV2, EfficientNetB0) need besides the GEMM: depthwise
/// convolution, their activations, and squeeze-excitation's per-channel parts. Each has a plain loop
/// and AVX2 and AVX-512 loops over channels that make the same operations in the same order (one
/// fused multiply-add per tap, the same exp), so all give the same bits and the plain loop is the
/// reference (`isa`: ST_ISA_PORTABLE, ST_ISA_AVX2 or ST_ISA_AVX512, at most `st_isa_best()`).

/// Applied to values as a kernel writes them; the GEMMs' `relu` argument takes these too (1 is the
/// ReLU it always took).
enum { ST_ACT_NONE = 0, ST_ACT_RELU = 1, ST_ACT_RELU6 = 2, ST_ACT_SWISH = 3, ST_ACT_SIGMOID = 4 };

/// One image's depthwise convolution:
///   x[height x width x channels]          NHWC, one image
///   w[size x size x channels]             Keras's depthwise_kernel [kh, kw, C, 1], BatchNorm folded
///   bias[channels]
///   y[out_height x out_width x channels]  act(bias + sum over ky, then kx, of x * w), taps outside
///                                         the image skipped (zero padding: `top` rows above, `left`
///                                         columns before)
/// With `sums` (channels floats, added to), each channel's sum of y: per output row from zero, then
/// the row's sum added, so that the squeeze of squeeze-excitation costs no pass of its own.
void st_depthwise(int isa, const float *x, int height, int width, int channels, const float *w, const float *bias, int size,
                  int stride, int top, int left, int out_height, int out_width, int activation, float *y, float *sums);

/// x[count] = act(x[count]) in place.
void st_activate(int isa, float *x, size_t count, int activation);

/// x[pixels x channels] *= scale[channels]: squeeze-excitation's excite.
void st_scale_channels(int isa, float *x, int pixels, int channels, const float *scale);

/// y[outputs] = act(bias + sum over i of x[i] * w[i x outputs]), summed in i order: the squeeze
/// and excite layers' 1x1 convolutions on one image's pooled vector.
void st_dense_vector(int isa, const float *x, int inputs, const float *w, const float *bias, int outputs, int activation, float *y);

/// exp(x) as every path here computes it (for tests).
float st_exp(float x);

#endif
