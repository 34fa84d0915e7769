#include <stdio.h>
#include "png_writer.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t size, capacity;
    int failed;
    char *message;
    size_t message_size;
} sink;

static void on_write(png_structp png, png_bytep bytes, size_t length) {
    sink *s = (sink *)png_get_io_ptr(png);
    if (s->size + length > s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 4096;
        while (capacity < s->size + length) capacity *= 2;
        uint8_t *grown = realloc(s->data, capacity);
        if (!grown) png_error(png, "out of memory");
        s->data = grown;
        s->capacity = capacity;
    }
    memcpy(s->data + s->size, bytes, length);
    s->size += length;
}

static void on_flush(png_structp png) { (void)png; }

static void on_error(png_structp png, png_const_charp text) {
    sink *s = (sink *)png_get_error_ptr(png);
    if (s && s->message && s->message_size) {
        strncpy(s->message, text, s->message_size - 1);
        s->message[s->message_size - 1] = 0;
    }
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp text) { (void)png; (void)text; }

int st_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int level, int filters,
                  int strategy, uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    sink s = {0};
    s.message = message;
    s.message_size = message_size;
    // Each channel count has its own colour type; anything else would make libpng read rows of a
    // width the buffer does not have.
    int color;
    switch (channels) {
    case 1: color = PNG_COLOR_TYPE_GRAY; break;
    case 2: color = PNG_COLOR_TYPE_GRAY_ALPHA; break;
    case 3: color = PNG_COLOR_TYPE_RGB; break;
    case 4: color = PNG_COLOR_TYPE_RGBA; break;
    default:
        snprintf(message, message_size, "a PNG has 1 to 4 channels, not %d", channels);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    if (!png) return -1;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(s.data);
        return -1;
    }
    png_set_write_fn(png, &s, on_write, on_flush);
    png_set_compression_level(png, level);
    png_set_compression_strategy(png, strategy);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    png_set_IHDR(png, info, width, height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    for (uint32_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *out = s.data;
    *out_size = s.size;
    return 0;
}

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
