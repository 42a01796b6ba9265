/* The safetensors container (https://github.com/huggingface/safetensors), the one layer under the
 * fp32 (ckpt_fp32.c), int8 (ckpt_int8.c) and language-model (src/lm/ckpt_lm.c) checkpoints:
 *   u64 little-endian header length N | N bytes of JSON | the data buffer.
 * The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets into
 * the data buffer) and "__metadata__" to a string -> string map. The writer pads the header with
 * spaces so the data starts 8-byte aligned and writes atomically; the reader validates everything
 * a client could trip on, so clients only check their own names, shapes, dtypes and keys. */
#ifndef KD_FORMAT_SAFETENSORS_H
#define KD_FORMAT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#include "distill/status.h"

/* One header-size limit for every client: a header is a few kB (a BPE tokenizer's merges, the
 * largest metadata written, are under 64 kB); more is a corrupt or hostile file. */
#define KD_ST_MAX_HEADER (64u << 20)
#define KD_MAX_EXACT 9007199254740992.0 /* 2^53: integers above are not exact in a JSON double */
#define KD_ST_MAX_DIMS 8

/* ---- writing ---------------------------------------------------------------------------------- */

typedef struct kd_st_writer kd_st_writer;

/* A new file with an empty __metadata__ (written first, then the tensors in the order added).
 * NULL when out of memory. */
kd_st_writer *kd_st_writer_create(void);
void kd_st_writer_free(kd_st_writer *w);
/* Add a metadata string (copied); kd_st_metaf formats it (at most 159 characters). */
void kd_st_meta(kd_st_writer *w, const char *key, const char *value);
void kd_st_metaf(kd_st_writer *w, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Add a tensor: dtype "F32", "I32" or "I8"; shape[0..ndim) (ndim <= 4); `data` holds the product
 * of the shape elements in host order and must stay valid until kd_st_write. */
void kd_st_add(kd_st_writer *w, const char *name, const char *dtype, int ndim, const int64_t *shape,
               const void *data);
/* Write the file atomically (kd_write_file_atomic), little-endian data. Any earlier failure of
 * the writer (out of memory) is reported here. Does not free w. */
kd_status kd_st_write(kd_st_writer *w, const char *path, kd_error *err);

/* ---- reading ---------------------------------------------------------------------------------- */

typedef struct kd_st_tensor {
    const char *name;       /* points into the parsed header */
    const char *dtype;      /* a safetensors dtype name ("F32", "I8", "BF16", ...) */
    size_t elem;            /* bytes per element */
    int ndim;
    int64_t shape[KD_ST_MAX_DIMS];
    uint64_t count;         /* elements */
    uint64_t begin, end;    /* byte range in the data buffer */
    int used;               /* free for the client (e.g. to find tensors that belong to nothing) */
} kd_st_tensor;

typedef struct kd_st_file {
    char *bytes;            /* the whole file */
    size_t len;
    void *root;             /* the header's cJSON tree */
    const unsigned char *data; /* the data buffer */
    size_t data_len;
    kd_st_tensor *t;        /* sorted by name */
    int n;
} kd_st_file;

/* Read and validate a whole file: header length (at most KD_ST_MAX_HEADER), JSON object with only
 * whitespace after it, __metadata__ an object of strings, every tensor entry (known dtype, at most
 * KD_ST_MAX_DIMS non-negative integer dimensions, integer offsets inside the data buffer, exactly
 * count * elem bytes), no name twice, and tensors tiling the data buffer exactly (no overlap, hole
 * or tail). KD_STATUS_BAD_FILE naming path and the problem; on error f holds nothing. */
kd_status kd_st_read(kd_st_file *f, const char *path, kd_error *err);
void kd_st_close(kd_st_file *f);
/* The one reader of integers in files: a decimal integer in [0, max] at s, digits only (no sign or
 * space): the position after it and *v, or NULL when there is none or it exceeds max (never wraps
 * around). kd_st_meta_u64 and the clients' composite metadata values use it. */
const char *kd_st_parse_u64(const char *s, uint64_t max, uint64_t *v);
/* The same for a JSON value (a cJSON *): a number that is an integer in [lo, hi] (|lo|, |hi| <=
 * KD_MAX_EXACT): 1 and *v, else 0. */
int kd_st_json_int(const void *json, double lo, double hi, double *v);
/* A metadata string, or NULL. */
const char *kd_st_meta_get(const kd_st_file *f, const char *key);
/* A metadata value holding a decimal integer in [0, max], digits only, as the writers print them:
 * 1 and *v, or 0 when it is missing or malformed. */
int kd_st_meta_u64(const kd_st_file *f, const char *key, uint64_t max, uint64_t *v);
/* The tensor of that name, or NULL. */
kd_st_tensor *kd_st_find(const kd_st_file *f, const char *name);
/* Copy a 1- or 4-byte-element tensor into dst (count elements, host order). */
void kd_st_copy(const kd_st_file *f, const kd_st_tensor *t, void *dst);
/* Copy an F32 tensor into dst; returns the index of its first NaN/inf element, or count. */
size_t kd_st_copy_f32(const kd_st_file *f, const kd_st_tensor *t, float *dst);
/* Index of the first NaN/inf among p[0..n), or n when all are finite. */
size_t kd_st_first_nonfinite(const float *p, size_t n);
/* "[2,3]": a shape for messages. */
void kd_st_shape_str(char *buf, size_t n, const int64_t *shape, int ndim);

#endif
