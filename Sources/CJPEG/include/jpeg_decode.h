#ifndef SIGNTRANSFER_JPEG_DECODE_H
#define SIGNTRANSFER_JPEG_DECODE_H
#include <stddef.h>

/// A JPEG's size and colour components as its header gives them (no pixels decoded).
typedef struct {
    int width, height;
    /// Components in the file: 1 (grey), 3 (YCbCr or RGB), 4 (CMYK or YCCK).
    int components;
    int progressive;
} st_jpeg_info;

/// Reads the header of `size` bytes at `data`. 0 on success; otherwise -1 with a message in `error`.
int st_jpeg_header(const unsigned char *data, size_t size, st_jpeg_info *info, char *error, size_t error_size);

/// Decodes the whole image into `out` (`height x width x channels` bytes, row-major), `channels` 1
/// (grey) or 3 (RGB; a grey file replicated), with libjpeg-turbo's integer DCT (`fast_dct`: the
/// fast one, as TensorFlow's decode_jpeg uses by default; else the accurate one) and fancy
/// upsampling, as TensorFlow decodes. A corrupt or truncated file (any libjpeg warning) is an error:
/// -1 with a message in `error`; 0 on success.
int st_jpeg_decode(const unsigned char *data, size_t size, int channels, int fast_dct,
                   unsigned char *out, size_t out_size, char *error, size_t error_size);

/// Reads the whole file's entropy-coded data (every DCT coefficient) without the inverse DCT, colour
/// conversion or upsampling: what ingest's validation needs (a truncated or corrupt file fails here
/// as in a decode, with libjpeg's warnings counted as errors) at a fraction of a decode's time.
int st_jpeg_check(const unsigned char *data, size_t size, char *error, size_t error_size);

#endif
