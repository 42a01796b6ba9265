/* Image files for image folders and `predict FILE`: PNG (libpng), JPEG (libjpeg-turbo), PGM/PPM and
 * BMP (by hand), told apart by their magic bytes, decoded to 8-bit grey or RGB (alpha dropped: a
 * transparent pixel keeps its colour, it is not composited), converted to the wanted channels and
 * fitted to the wanted size bilinearly (half-pixel centres, as PyTorch's F.interpolate(mode="bilinear",
 * align_corners=False, antialias=False) and OpenCV's INTER_LINEAR). Decoder errors never abort: the
 * libraries' error handlers jump back here and the message names the file. */
#include "data/image.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: JERR_NO_BACKING_STORE */
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/fileio.h"

/* An image file is read whole before decoding; larger ones are refused. */
#define IMAGE_FILE_MAX ((size_t)1 << 30)
/* The probe reads this much of a file first: a PNG's or BMP's header fits, and most JPEG and
 * PGM/PPM headers; a header found incomplete in it is looked for in the whole file. */
#define PROBE_BYTES 4096

/* A decoded image: h rows of w pixels of c interleaved 8-bit channels (c 1 or 3). */
typedef struct image {
    int w, h, c;
    uint8_t *px;
} image;

typedef enum image_kind { KIND_NONE, KIND_PNG, KIND_JPEG, KIND_PNM, KIND_BMP } image_kind;

static image_kind detect_kind(const uint8_t *b, size_t n) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(b, png_magic, 8)) return KIND_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return KIND_JPEG;
    if (n >= 2 && b[0] == 'P' && (b[1] == '2' || b[1] == '3' || b[1] == '5' || b[1] == '6')) return KIND_PNM;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return KIND_BMP;
    return KIND_NONE;
}

static kd_status not_an_image(const char *path, kd_error *err) {
    return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a PNG, JPEG, PGM/PPM or BMP image (by its first bytes)",
                        path);
}

/* Refused before anything is allocated for the pixels. */
static kd_status check_dims(const char *path, const char *what, int64_t w, int64_t h, kd_error *err) {
    if (w < 1 || h < 1 || w > KD_IMAGE_MAX_SIDE || h > KD_IMAGE_MAX_SIDE || w * h > KD_IMAGE_MAX_PIXELS)
        return kd_error_set(err, KD_STATUS_BAD_FILE,
                            "%s: %s of %lldx%lld pixels (width x height) is out of range (each side 1..%d, at most "
                            "%lld pixels)",
                            path, what, (long long)w, (long long)h, KD_IMAGE_MAX_SIDE, (long long)KD_IMAGE_MAX_PIXELS);
    return KD_STATUS_OK;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }
static unsigned le16(const uint8_t *p) { return (unsigned)p[1] << 8 | p[0]; }

/* ---- PNG (libpng) ------------------------------------------------------------------------------- */

/* Each decoder is split in three so that no object changes between setjmp and a longjmp back to it
 * in the function calling setjmp (C11 7.13.2.1p3): decode_X owns the state (a struct whose members
 * the libraries' callbacks and X_run change), X_guarded only calls setjmp and X_run, and decode_X
 * cleans up after X_guarded returns. */

typedef struct png_job {
    const uint8_t *p;
    size_t n, pos;
    jmp_buf jb;
    char msg[160];
    png_structp png;
    png_infop info;
    uint8_t *px;
    png_bytep *rows;
    image out;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    longjmp(j->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    png_job *j = png_get_io_ptr(png);
    if (len > j->n - j->pos) png_error(png, "file ends early");
    memcpy(out, j->p + j->pos, len);
    j->pos += len;
}

/* Decodes into j->out; may longjmp to j->jb. Non-zero status: the image is refused (err set). */
static kd_status png_run(png_job *j, const char *path, kd_error *err) {
    png_structp png = j->png;
    png_infop info = j->info;
    png_set_read_fn(png, j, png_read_mem);
    png_set_user_limits(png, KD_IMAGE_MAX_SIDE, KD_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    kd_status st = check_dims(path, "PNG", w, h, err);
    if (st) return st;
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png); /* round(v * 255 / 65535), as PGM/PPM's 16-bit values */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if ((c != 1 && c != 3) || png_get_rowbytes(png, info) != (size_t)w * (size_t)c) png_error(png, "unexpected layout");
    j->px = malloc((size_t)w * h * (size_t)c);
    j->rows = malloc(sizeof(png_bytep) * h);
    if (!j->px || !j->rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) j->rows[y] = j->px + (size_t)y * w * (size_t)c;
    png_read_image(png, j->rows);
    j->out = (image){.w = (int)w, .h = (int)h, .c = c, .px = j->px};
    j->px = NULL;
    return KD_STATUS_OK;
}

/* -1 when libpng failed (j->msg says why), else png_run's status. */
static int png_guarded(png_job *j, const char *path, kd_error *err) {
    if (setjmp(j->jb)) return -1;
    return (int)png_run(j, path, err);
}

static kd_status decode_png(const char *path, const uint8_t *buf, size_t len, image *im, kd_error *err) {
    png_job j = {.p = buf, .n = len};
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    j.info = j.png ? png_create_info_struct(j.png) : NULL;
    if (!j.info) {
        png_destroy_read_struct(&j.png, NULL, NULL);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    }
    int r = png_guarded(&j, path, err);
    free(j.px);
    free(j.rows);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    if (r < 0) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt PNG (libpng: %s)", path, j.msg);
    if (r == KD_STATUS_OK) *im = j.out;
    return (kd_status)r;
}

/* ---- JPEG (libjpeg-turbo) ----------------------------------------------------------------------- */

/* libjpeg has no limits of its own: a progressive JPEG holds all its coefficients (2 bytes per
 * sample, 384 MB for the largest image allowed) and may have thousands of scans, each a pass over
 * them. Both are capped; libjpeg-turbo's own tools allow 500 scans. */
#define JPEG_MAX_MEMORY ((long)256 << 20)
#define JPEG_MAX_SCANS 1000

typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    int too_many_scans;
    uint8_t *px;
    image out;
} jpeg_job;

/* cinfo is jpeg_job's first member, so a libjpeg callback's cinfo is its job. */
static void jpeg_on_error(j_common_ptr cinfo) { longjmp(((jpeg_job *)(void *)cinfo)->jb, 1); }

/* A warning (corrupt data that libjpeg would paper over, a file that ends early) is an error too:
 * a damaged photo is reported, not trained on as grey blocks. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    jpeg_job *j = (jpeg_job *)(void *)cinfo;
    if (j->cinfo.input_scan_number > JPEG_MAX_SCANS) {
        j->too_many_scans = 1;
        longjmp(j->jb, 1);
    }
}

/* Decodes into j->out; may longjmp to j->jb. Non-zero status: the image is refused (err set). */
static kd_status jpeg_run(jpeg_job *j, const char *path, const uint8_t *buf, size_t len, kd_error *err) {
    j_decompress_ptr cinfo = &j->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    cinfo->progress = &j->progress;
    jpeg_mem_src(cinfo, buf, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: CMYK JPEG is not supported (convert it to RGB)", path);
    if (cinfo->num_components != 1 && cinfo->num_components != 3)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: JPEG with %d components is not supported (grey or colour)",
                            path, cinfo->num_components);
    kd_status st = check_dims(path, "JPEG", cinfo->image_width, cinfo->image_height, err);
    if (st) return st;
    cinfo->out_color_space = cinfo->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(cinfo);
    int w = (int)cinfo->output_width, h = (int)cinfo->output_height, c = cinfo->output_components;
    j->px = malloc((size_t)w * h * (size_t)c);
    if (!j->px) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = j->px + (size_t)cinfo->output_scanline * w * (size_t)c;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    j->out = (image){.w = w, .h = h, .c = c, .px = j->px};
    j->px = NULL;
    return KD_STATUS_OK;
}

/* -1 when libjpeg failed or a limit was hit, else jpeg_run's status. */
static int jpeg_guarded(jpeg_job *j, const char *path, const uint8_t *buf, size_t len, kd_error *err) {
    if (setjmp(j->jb)) return -1;
    return (int)jpeg_run(j, path, buf, len, err);
}

static kd_status decode_jpeg(const char *path, const uint8_t *buf, size_t len, image *im, kd_error *err) {
    jpeg_job j = {.progress = {.progress_monitor = jpeg_on_progress}};
    j.cinfo.err = jpeg_std_error(&j.pub);
    j.pub.error_exit = jpeg_on_error;
    j.pub.emit_message = jpeg_on_message;
    int r = jpeg_guarded(&j, path, buf, len, err);
    char msg[JMSG_LENGTH_MAX] = "";
    if (r < 0 && !j.too_many_scans) j.pub.format_message((j_common_ptr)&j.cinfo, msg);
    int no_memory = r < 0 && !j.too_many_scans && j.pub.msg_code == JERR_NO_BACKING_STORE;
    jpeg_destroy_decompress(&j.cinfo);
    free(j.px);
    if (j.too_many_scans)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: progressive JPEG with more than %d scans is refused", path,
                            JPEG_MAX_SCANS);
    if (no_memory)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: progressive JPEG needs more than %ld MB of memory to decode",
                            path, JPEG_MAX_MEMORY >> 20);
    if (r < 0) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt JPEG (libjpeg: %s)", path, msg);
    if (r == KD_STATUS_OK) *im = j.out;
    return (kd_status)r;
}

/* The frame header of a JPEG (by hand: libjpeg would want the whole file): its size and
 * components. 0 and *complete = 0 when buf ends before it. */
static kd_status probe_jpeg(const char *path, const uint8_t *b, size_t n, int *c, int *h, int *w, int *complete,
                            kd_error *err) {
    *complete = 1;
    size_t pos = 2;
    for (;;) {
        if (pos + 4 > n) break;
        if (b[pos] != 0xff) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt JPEG (no marker at byte %zu)", path, pos);
        uint8_t m = b[pos + 1];
        if (m == 0xff) { /* fill byte */
            pos++;
            continue;
        }
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) {
            pos += 2;
            continue;
        }
        if (m == 0xda || m == 0xd9)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt JPEG (no frame header)", path);
        size_t seg = (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (seg < 2) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt JPEG (segment length %zu)", path, seg);
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (pos + 10 > n) break;
            *h = (int)((unsigned)b[pos + 5] << 8 | b[pos + 6]);
            *w = (int)((unsigned)b[pos + 7] << 8 | b[pos + 8]);
            int nc = b[pos + 9];
            if (nc == 4) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: CMYK JPEG is not supported (convert it to RGB)", path);
            if (nc != 1 && nc != 3)
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: JPEG with %d components is not supported (grey or colour)", path, nc);
            *c = nc;
            return check_dims(path, "JPEG", *w, *h, err);
        }
        pos += 2 + seg;
    }
    *complete = 0;
    return KD_STATUS_OK;
}

/* ---- PGM / PPM (P2, P3, P5, P6) ----------------------------------------------------------------- */

/* The next decimal number after whitespace and '#' comments; 0 when there is none or it exceeds
 * 65535 * 16384 (no header field or sample may). */
static int pnm_number(const uint8_t *b, size_t n, size_t *pos, long *v) {
    size_t p = *pos;
    for (;;) {
        while (p < n && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r' || b[p] == '\v' || b[p] == '\f')) p++;
        if (p < n && b[p] == '#') {
            while (p < n && b[p] != '\n' && b[p] != '\r') p++;
            continue;
        }
        break;
    }
    if (p >= n || b[p] < '0' || b[p] > '9') return 0;
    long x = 0;
    while (p < n && b[p] >= '0' && b[p] <= '9') {
        x = x * 10 + (b[p++] - '0');
        if (x > 65535L * 16384) return 0;
    }
    *v = x;
    *pos = p;
    return 1;
}

typedef struct pnm_header {
    int ascii, c;
    long w, h, maxval;
    size_t data; /* offset of the first sample */
} pnm_header;

static kd_status pnm_parse_header(const char *path, const uint8_t *b, size_t n, pnm_header *hd, kd_error *err) {
    hd->ascii = b[1] == '2' || b[1] == '3';
    hd->c = b[1] == '3' || b[1] == '6' ? 3 : 1;
    size_t pos = 2;
    const char *kind = hd->c == 3 ? "PPM" : "PGM";
    if (!pnm_number(b, n, &pos, &hd->w) || !pnm_number(b, n, &pos, &hd->h) || !pnm_number(b, n, &pos, &hd->maxval))
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt %s header (width, height, maxval)", path, kind);
    if (hd->maxval < 1 || hd->maxval > 65535)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s maxval %ld is out of range (1..65535)", path, kind, hd->maxval);
    kd_status st = check_dims(path, kind, hd->w, hd->h, err);
    if (st) return st;
    if (pos >= n)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s ends after its header (no pixels)", path, kind);
    hd->data = pos + 1; /* one whitespace character ends the header */
    return KD_STATUS_OK;
}

/* Sample v of maxval m as 8 bits, rounded. */
static uint8_t scale_sample(long v, long m) { return (uint8_t)(m == 255 ? v : (v * 255 + m / 2) / m); }

static kd_status decode_pnm(const char *path, const uint8_t *b, size_t n, image *im, kd_error *err) {
    pnm_header hd;
    kd_status st = pnm_parse_header(path, b, n, &hd, err);
    if (st) return st;
    const char *kind = hd.c == 3 ? "PPM" : "PGM";
    size_t count = (size_t)hd.w * (size_t)hd.h * (size_t)hd.c, bytes = hd.maxval > 255 ? 2 : 1;
    if (!hd.ascii && (n - hd.data) / bytes < count)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s ends early (%zu of %zu samples)", path, kind,
                            (n - hd.data) / bytes, count);
    uint8_t *px = malloc(count);
    if (!px) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    size_t pos = hd.data;
    for (size_t i = 0; i < count; i++) {
        long v;
        if (hd.ascii) {
            if (!pnm_number(b, n, &pos, &v)) {
                free(px);
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s sample %zu of %zu is missing or not a number",
                                    path, kind, i, count);
            }
        } else {
            v = bytes == 2 ? (long)b[pos] << 8 | b[pos + 1] : b[pos];
            pos += bytes;
        }
        if (v > hd.maxval) {
            free(px);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s sample %zu is %ld, above maxval %ld", path, kind, i, v,
                                hd.maxval);
        }
        px[i] = scale_sample(v, hd.maxval);
    }
    *im = (image){.w = (int)hd.w, .h = (int)hd.h, .c = hd.c, .px = px};
    return KD_STATUS_OK;
}

/* ---- BMP (uncompressed 8-bit palette, 24- and 32-bit) ------------------------------------------- */

typedef struct bmp_header {
    int w, h, top_down, bits, c, n_pal;
    size_t data, stride, pal; /* offsets of the pixels and the palette; bytes per row */
} bmp_header;

static kd_status bmp_parse_header(const char *path, const uint8_t *b, size_t n, bmp_header *hd, kd_error *err) {
    if (n < 54) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt BMP (header cut short)", path);
    uint32_t dib = le32(b + 14), comp = le32(b + 30);
    if (dib < 40 || dib > 1024)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP header of %u bytes is not supported (Windows BMP 3 or later)",
                            path, dib);
    int64_t w = (int32_t)le32(b + 18), h = (int32_t)le32(b + 22);
    hd->top_down = h < 0;
    if (h < 0) h = -h;
    hd->bits = (int)le16(b + 28);
    if (comp == 1 || comp == 2)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: RLE-compressed BMP is not supported (save it uncompressed)", path);
    if (hd->bits != 8 && hd->bits != 24 && hd->bits != 32)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP with %d bits per pixel is not supported (8, 24 or 32)",
                            path, hd->bits);
    if (comp == 3 && hd->bits == 32) {
        /* BI_BITFIELDS: the masks follow a 40-byte header, or are its fields in later versions. */
        if (n < 14 + 40 + 12) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt BMP (header cut short)", path);
        if (le32(b + 54) != 0xff0000u || le32(b + 58) != 0xff00u || le32(b + 62) != 0xffu)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP with unusual colour masks is not supported", path);
    } else if (comp != 0) {
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP compression %u is not supported (uncompressed only)", path,
                            comp);
    }
    kd_status st = check_dims(path, "BMP", w, h, err);
    if (st) return st;
    hd->w = (int)w;
    hd->h = (int)h;
    hd->c = 3;
    hd->n_pal = 0;
    hd->pal = 14 + (size_t)dib + (comp == 3 && dib == 40 ? 12 : 0);
    if (hd->bits == 8) {
        uint32_t used = le32(b + 46);
        if (used > 256) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP palette of %u colours (at most 256)", path, used);
        hd->n_pal = used ? (int)used : 256;
        if (hd->pal + 4 * (size_t)hd->n_pal > n)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt BMP (palette cut short)", path);
        int grey = 1;
        for (int i = 0; i < hd->n_pal; i++) {
            const uint8_t *e = b + hd->pal + 4 * (size_t)i;
            grey &= e[0] == e[1] && e[1] == e[2];
        }
        if (grey) hd->c = 1;
    }
    hd->data = le32(b + 10);
    hd->stride = ((size_t)hd->w * (size_t)hd->bits + 31) / 32 * 4;
    return KD_STATUS_OK;
}

static kd_status decode_bmp(const char *path, const uint8_t *b, size_t n, image *im, kd_error *err) {
    bmp_header hd;
    kd_status st = bmp_parse_header(path, b, n, &hd, err);
    if (st) return st;
    if (hd.data > n || (n - hd.data) / hd.stride < (size_t)hd.h)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP ends early (%dx%d pixels need %zu bytes from byte %zu)",
                            path, hd.w, hd.h, hd.stride * (size_t)hd.h, hd.data);
    uint8_t *px = malloc((size_t)hd.w * hd.h * (size_t)hd.c);
    if (!px) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    for (int y = 0; y < hd.h; y++) {
        const uint8_t *row = b + hd.data + hd.stride * (size_t)(hd.top_down ? y : hd.h - 1 - y);
        uint8_t *o = px + (size_t)y * hd.w * (size_t)hd.c;
        for (int x = 0; x < hd.w; x++) {
            const uint8_t *bgr;
            if (hd.bits == 8) {
                if (row[x] >= hd.n_pal) {
                    free(px);
                    return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: BMP pixel (%d, %d) uses colour %d of a %d-colour palette",
                                        path, x, y, row[x], hd.n_pal);
                }
                bgr = b + hd.pal + 4 * (size_t)row[x];
            } else {
                bgr = row + (size_t)x * (size_t)(hd.bits / 8);
            }
            if (hd.c == 1) {
                o[x] = bgr[0];
            } else {
                o[3 * (size_t)x] = bgr[2];
                o[3 * (size_t)x + 1] = bgr[1];
                o[3 * (size_t)x + 2] = bgr[0];
            }
        }
    }
    *im = (image){.w = hd.w, .h = hd.h, .c = hd.c, .px = px};
    return KD_STATUS_OK;
}

/* ---- Probe, decode, fit ------------------------------------------------------------------------- */

/* The first max bytes of path (fewer when it is shorter): *whole = 1 when that is the whole file. */
static kd_status read_prefix(const char *path, size_t max, uint8_t *buf, size_t *len, int *whole, kd_error *err) {
    int fd = kd_open_input(path, err);
    if (fd < 0) return err ? err->status : KD_STATUS_IO;
    size_t n = 0;
    while (n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0) {
            close(fd);
            return kd_error_set(err, KD_STATUS_IO, "%s: read error", path);
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    *whole = n < max;
    return KD_STATUS_OK;
}

/* The header in b[0..n) (a prefix of the file, or all of it). */
static kd_status probe_buf(const char *path, const uint8_t *b, size_t n, int *c, int *h, int *w, kd_error *err) {
    switch (detect_kind(b, n)) {
    case KIND_PNG: {
        static const uint8_t ihdr[4] = {'I', 'H', 'D', 'R'};
        if (n < 33 || memcmp(b + 12, ihdr, 4)) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt PNG (no IHDR chunk)", path);
        int type = b[25];
        *w = (int)(be32(b + 16) > INT_MAX ? INT_MAX : be32(b + 16));
        *h = (int)(be32(b + 20) > INT_MAX ? INT_MAX : be32(b + 20));
        *c = type == 0 || type == 4 ? 1 : 3;
        return check_dims(path, "PNG", *w, *h, err);
    }
    case KIND_JPEG: {
        int complete;
        kd_status st = probe_jpeg(path, b, n, c, h, w, &complete, err);
        if (!st && !complete) st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt JPEG (no frame header)", path);
        return st;
    }
    case KIND_PNM: {
        pnm_header hd;
        kd_status st = pnm_parse_header(path, b, n, &hd, err);
        if (!st) *c = hd.c, *h = (int)hd.h, *w = (int)hd.w;
        return st;
    }
    case KIND_BMP: {
        bmp_header hd;
        kd_status st = bmp_parse_header(path, b, n, &hd, err);
        if (!st) *c = hd.c, *h = hd.h, *w = hd.w;
        return st;
    }
    default: return not_an_image(path, err);
    }
}

kd_status kd_image_probe(const char *path, int *c, int *h, int *w, kd_error *err) {
    uint8_t buf[PROBE_BYTES];
    size_t n = 0;
    int whole = 0;
    kd_status st = read_prefix(path, sizeof buf, buf, &n, &whole, err);
    if (!st) st = probe_buf(path, buf, n, c, h, w, err);
    if (st == KD_STATUS_BAD_FILE && !whole) { /* a header past the prefix (JPEG metadata, PGM comments) */
        char *all = NULL;
        size_t len = 0;
        st = kd_read_file_max(path, IMAGE_FILE_MAX, "an image", &all, &len, err);
        if (!st) st = probe_buf(path, (const uint8_t *)all, len, c, h, w, err);
        free(all);
    }
    return st;
}

static kd_status decode_file(const char *path, image *im, kd_error *err) {
    char *buf = NULL;
    size_t n = 0;
    kd_status st = kd_read_file_max(path, IMAGE_FILE_MAX, "an image", &buf, &n, err);
    if (st) return st;
    const uint8_t *b = (const uint8_t *)buf;
    switch (detect_kind(b, n)) {
    case KIND_PNG: st = decode_png(path, b, n, im, err); break;
    case KIND_JPEG: st = decode_jpeg(path, b, n, im, err); break;
    case KIND_PNM: st = decode_pnm(path, b, n, im, err); break;
    case KIND_BMP: st = decode_bmp(path, b, n, im, err); break;
    default: st = not_an_image(path, err);
    }
    free(buf);
    return st;
}

/* Channel plane k (of c) of im as h x w bytes: grey from RGB as ITU-R BT.601 luma rounded, RGB
 * from grey by copying. */
static void to_plane(const image *im, int c, int k, uint8_t *o) {
    size_t hw = (size_t)im->h * im->w;
    if (im->c == 1) {
        memcpy(o, im->px, hw);
    } else if (c == 3) {
        for (size_t i = 0; i < hw; i++) o[i] = im->px[3 * i + (size_t)k];
    } else {
        for (size_t i = 0; i < hw; i++) {
            const uint8_t *p = im->px + 3 * i;
            o[i] = kd_image_luma(p[0], p[1], p[2]);
        }
    }
}

/* Source index pair and weight of each of n output positions sampled from a side of `in`
 * pixels resized to `virt`, starting at virtual position off (PyTorch's
 * area_pixel_compute_source_index with align_corners=False). */
static void resize_taps(int in, int virt, int off, int n, int *i0, int *i1, float *t) {
    double scale = (double)in / virt;
    for (int j = 0; j < n; j++) {
        double s = (j + off + 0.5) * scale - 0.5;
        if (s < 0) s = 0;
        int a = (int)s;
        if (a > in - 1) a = in - 1;
        i0[j] = a;
        i1[j] = a + 1 < in ? a + 1 : in - 1;
        t[j] = (float)(s - a);
    }
}

static kd_status fit_image(const char *path, const image *im, int c, int H, int W, kd_image_fit fit, uint8_t *out,
                           kd_error *err) {
    size_t hw = (size_t)im->h * im->w;
    uint8_t *plane = malloc(hw);
    int *taps = malloc(sizeof(int) * 2 * ((size_t)H + W));
    float *tw = malloc(sizeof(float) * ((size_t)H + W));
    if (!plane || !taps || !tw) {
        free(plane), free(taps), free(tw);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    }
    /* The image is scaled to vh x vw ("virtual") and placed at (oy, ox) of the output (negative:
     * cropped). */
    int vh = H, vw = W;
    if (fit != KD_IMAGE_FIT_STRETCH && (im->h != H || im->w != W)) {
        double sy = (double)H / im->h, sx = (double)W / im->w;
        double s = fit == KD_IMAGE_FIT_CROP ? (sy > sx ? sy : sx) : (sy < sx ? sy : sx);
        vh = (int)floor(im->h * s + 0.5);
        vw = (int)floor(im->w * s + 0.5);
        if (fit == KD_IMAGE_FIT_CROP) {
            vh = vh < H ? H : vh;
            vw = vw < W ? W : vw;
        } else {
            vh = vh > H ? H : vh < 1 ? 1 : vh;
            vw = vw > W ? W : vw < 1 ? 1 : vw;
        }
    }
    int oy = (H - vh) / 2, ox = (W - vw) / 2; /* crop: -(vh - H) / 2 rounded towards 0 */
    int ny = vh < H ? vh : H, nx = vw < W ? vw : W, y_at = oy > 0 ? oy : 0, x_at = ox > 0 ? ox : 0;
    int *y0 = taps, *y1 = taps + H, *x0 = taps + 2 * H, *x1 = taps + 2 * H + W;
    float *ty = tw, *tx = tw + H;
    resize_taps(im->h, vh, oy < 0 ? -oy : 0, ny, y0, y1, ty);
    resize_taps(im->w, vw, ox < 0 ? -ox : 0, nx, x0, x1, tx);
    for (int k = 0; k < c; k++) {
        to_plane(im, c, k, plane);
        uint8_t *o = out + (size_t)k * H * W;
        if (vh == im->h && vw == im->w && H == vh && W == vw) {
            memcpy(o, plane, hw);
            continue;
        }
        memset(o, 0, (size_t)H * W);
        for (int y = 0; y < ny; y++) {
            const uint8_t *r0 = plane + (size_t)y0[y] * im->w, *r1 = plane + (size_t)y1[y] * im->w;
            uint8_t *orow = o + (size_t)(y + y_at) * W + x_at;
            float b = ty[y];
            for (int x = 0; x < nx; x++) {
                float a = tx[x];
                float top = r0[x0[x]] + a * (r0[x1[x]] - r0[x0[x]]);
                float bot = r1[x0[x]] + a * (r1[x1[x]] - r1[x0[x]]);
                float v = top + b * (bot - top);
                orow[x] = (uint8_t)(v <= 0.f ? 0 : v >= 255.f ? 255 : (int)(v + 0.5f));
            }
        }
    }
    free(plane);
    free(taps);
    free(tw);
    return KD_STATUS_OK;
}

kd_status kd_image_load(const char *path, int c, int h, int w, kd_image_fit fit, uint8_t *out, kd_error *err) {
    if ((c != 1 && c != 3) || h < 1 || w < 1 || h > KD_IMAGE_MAX_SIDE || w > KD_IMAGE_MAX_SIDE ||
        (int64_t)h * w > KD_IMAGE_MAX_PIXELS || fit < KD_IMAGE_FIT_CROP || fit > KD_IMAGE_FIT_STRETCH)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: cannot fit an image to %dx%dx%d (fit %d)", path, c, h, w,
                            (int)fit);
    image im;
    kd_status st = decode_file(path, &im, err);
    if (st) return st;
    st = fit_image(path, &im, c, h, w, fit, out, err);
    free(im.px);
    return st;
}
