#include <stdio.h>
#include "png_writer.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

void st_png_free(uint8_t *buffer) { free(buffer); }

typedef struct {
    const unsigned char *data;
    size_t size, offset;
} source;

static void on_read(png_structp png, png_bytep bytes, size_t length) {
    source *s = (source *)png_get_io_ptr(png);
    if (length > s->size - s->offset) png_error(png, "the file ends before the image does (truncated?)");
    memcpy(bytes, s->data + s->offset, length);
    s->offset += length;
}

typedef struct {
    char *message;
    size_t message_size;
} read_errors;

static void on_read_error(png_structp png, png_const_charp text) {
    read_errors *e = (read_errors *)png_get_error_ptr(png);
    snprintf(e->message, e->message_size, "%s", text);
    png_longjmp(png, 1);
}

static void on_read_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

int st_png_decode(const unsigned char *data, size_t size, unsigned width, unsigned height, int channels,
                  unsigned char *out, size_t out_size, char *message, size_t message_size) {
    read_errors errors = {message, message_size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors, on_read_error, on_read_warning);
    if (!png) {
        snprintf(message, message_size, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return -1;
    }
    source s = {data, size, 0};
    png_set_read_fn(png, &s, on_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int colour = png_get_color_type(png, info);
    int grey = colour == PNG_COLOR_TYPE_GRAY || colour == PNG_COLOR_TYPE_GRAY_ALPHA;
    if (w != width || h != height || (grey ? 1 : 3) != channels || (size_t)w * h * (size_t)channels != out_size) {
        snprintf(message, message_size, "the image is %ux%ux%d, expected %ux%ux%d", (unsigned)w, (unsigned)h, grey ? 1 : 3, width, height, channels);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_expand(png);          // palette to RGB, grey below 8 bits to 8, tRNS to an alpha channel
    png_set_strip_16(png);        // 16-bit samples: their high byte, as TensorFlow's uint8 decode
    png_set_strip_alpha(png);     // alpha dropped, not composited
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels) {
        snprintf(message, message_size, "unexpected row size %zu for %u pixels of %d channels", (size_t)png_get_rowbytes(png, info), (unsigned)w, channels);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = out + (size_t)y * w * (size_t)channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
