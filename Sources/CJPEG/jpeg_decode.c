// libjpeg(-turbo) reports errors by calling error_exit, which must not return: the error manager
// here jumps back to the call (setjmp/longjmp) with the library's message, so that a bad file is an
// error value, never an exit of the process. Warnings (corrupt data, a premature end) count as errors
// too: a truncated file must not pass as an image with a grey bottom.
#include "jpeg_decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *error;
    size_t error_size;
} guarded_error;

static void fail(j_common_ptr cinfo) {
    guarded_error *guard = (guarded_error *)cinfo->err;
    char message[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, message);
    snprintf(guard->error, guard->error_size, "%s", message);
    longjmp(guard->jump, 1);
}

static void warn(j_common_ptr cinfo, int level) {
    // level -1: a warning about corrupt data; above: trace messages, ignored.
    if (level < 0) fail(cinfo);
}

static void quiet(j_common_ptr cinfo) { (void)cinfo; }

static void guard_errors(struct jpeg_decompress_struct *cinfo, guarded_error *guard, char *error, size_t error_size) {
    cinfo->err = jpeg_std_error(&guard->base);
    guard->base.error_exit = fail;
    guard->base.emit_message = warn;
    guard->base.output_message = quiet;
    guard->error = error;
    guard->error_size = error_size;
}

/// How far `read_jpeg` reads: the header; every coefficient (validation); the pixels.
typedef enum { READ_HEADER, READ_COEFFICIENTS, READ_PIXELS } read_depth;

/// The one reader behind the three calls: the header, then the coefficients or (into `out`) the
/// pixels. One setjmp in one frame: libjpeg's error exit must land in a frame that is still live.
static int read_jpeg(const unsigned char *data, size_t size, read_depth depth, st_jpeg_info *info, int channels, int fast_dct,
                     unsigned char *out, size_t out_size, char *error, size_t error_size) {
    struct jpeg_decompress_struct cinfo;
    guarded_error guard;
    guard_errors(&cinfo, &guard, error, error_size);
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (info) {
        info->width = (int)cinfo.image_width;
        info->height = (int)cinfo.image_height;
        info->components = cinfo.num_components;
        info->progressive = cinfo.progressive_mode ? 1 : 0;
    }
    if (depth == READ_COEFFICIENTS) {
        // Every coefficient entropy-decoded (where truncation and corrupt data show), none transformed.
        jpeg_read_coefficients(&cinfo);
        jpeg_finish_decompress(&cinfo);
    }
    if (depth != READ_PIXELS) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    if (cinfo.num_components != 1 && cinfo.num_components != 3) {
        snprintf(error, error_size, "a JPEG with %d colour components (CMYK?); only grey and colour (3 components) are read", cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    cinfo.dct_method = fast_dct ? JDCT_IFAST : JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if (cinfo.output_components != channels || stride * cinfo.output_height != out_size) {
        snprintf(error, error_size, "decoded to %ux%ux%d, expected %zu bytes", cinfo.output_width, cinfo.output_height,
                 cinfo.output_components, out_size);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int st_jpeg_check(const unsigned char *data, size_t size, char *error, size_t error_size) {
    return read_jpeg(data, size, READ_COEFFICIENTS, NULL, 0, 0, NULL, 0, error, error_size);
}

int st_jpeg_header(const unsigned char *data, size_t size, st_jpeg_info *info, char *error, size_t error_size) {
    return read_jpeg(data, size, READ_HEADER, info, 0, 0, NULL, 0, error, error_size);
}

int st_jpeg_decode(const unsigned char *data, size_t size, int channels, int fast_dct,
                   unsigned char *out, size_t out_size, char *error, size_t error_size) {
    if (!out) {
        snprintf(error, error_size, "no output buffer");
        return -1;
    }
    return read_jpeg(data, size, READ_PIXELS, NULL, channels, fast_dct, out, out_size, error, error_size);
}
