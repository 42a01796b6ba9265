/* The one reader of the golden-fixture container KDGF (layout documented in tests/golden/gen_ops.py;
 * tests/golden/gen_lm.py writes the same): used by tests/unit/test_golden.c (ops) and test_lm_ops.c
 * (language model). It returns a code and never exits; each test turns that into its own CHECK. */
#ifndef KD_TEST_GOLDEN_KDGF_H
#define KD_TEST_GOLDEN_KDGF_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX_MAX_DIMS 8

typedef struct fx_array {
    char name[64];
    int ndim;
    int dims[FX_MAX_DIMS];
    size_t n;
    float *data;
} fx_array;

typedef struct fx_file {
    const char *case_name;
    int count;
    fx_array *arrays;
} fx_file;

enum { KDGF_OK = 0, KDGF_MISSING = 1, KDGF_MALFORMED = 2 };

static void fx_free(fx_file *f) {
    for (int i = 0; i < f->count; i++) free(f->arrays[i].data);
    free(f->arrays);
    f->arrays = NULL;
    f->count = 0;
}

static int rd_u32(const unsigned char *buf, size_t len, size_t *pos, uint32_t *v) {
    if (len - *pos < 4) return 0;
    /* fixtures are little-endian */
    *v = (uint32_t)buf[*pos] | (uint32_t)buf[*pos + 1] << 8 | (uint32_t)buf[*pos + 2] << 16 |
         (uint32_t)buf[*pos + 3] << 24;
    *pos += 4;
    return 1;
}

/* Reads the whole file at `path` into f (case_name is kept for messages). KDGF_OK, KDGF_MISSING
 * (cannot open) or KDGF_MALFORMED (bad magic or version, truncated, oversized, trailing bytes); f
 * holds nothing on failure. */
static int kdgf_load(fx_file *f, const char *path, const char *case_name) {
    memset(f, 0, sizeof *f);
    f->case_name = case_name;
    FILE *fp = fopen(path, "rb");
    if (!fp) return KDGF_MISSING;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = sz > 0 ? malloc((size_t)sz) : NULL;
    int ok = buf && fread(buf, 1, (size_t)sz, fp) == (size_t)sz;
    fclose(fp);
    size_t len = ok ? (size_t)sz : 0, pos = 4;
    uint32_t version = 0, count = 0;
    ok = ok && len >= 12 && memcmp(buf, "KDGF", 4) == 0 && rd_u32(buf, len, &pos, &version) &&
         version == 1 && rd_u32(buf, len, &pos, &count) && count < 1000;
    if (ok) {
        f->arrays = calloc(count, sizeof *f->arrays);
        ok = f->arrays != NULL;
    }
    for (uint32_t i = 0; ok && i < count; i++) {
        fx_array *a = &f->arrays[i];
        uint32_t nlen = 0, ndim = 0;
        ok = rd_u32(buf, len, &pos, &nlen) && nlen > 0 && nlen < sizeof a->name && len - pos >= nlen;
        if (!ok) break;
        memcpy(a->name, buf + pos, nlen);
        pos += nlen;
        ok = rd_u32(buf, len, &pos, &ndim) && ndim <= FX_MAX_DIMS;
        a->ndim = (int)ndim;
        a->n = 1;
        for (uint32_t d = 0; ok && d < ndim; d++) {
            uint32_t v = 0;
            ok = rd_u32(buf, len, &pos, &v) && v > 0 && v < (1u << 24);
            a->dims[d] = (int)v;
            a->n *= v;
            ok = ok && a->n < (1u << 24);
        }
        ok = ok && (len - pos) / 4 >= a->n;
        if (!ok) break;
        a->data = malloc(a->n * sizeof(float));
        ok = a->data != NULL;
        for (size_t k = 0; ok && k < a->n; k++) {
            uint32_t bits = 0;
            rd_u32(buf, len, &pos, &bits);
            memcpy(&a->data[k], &bits, 4);
        }
        f->count = (int)i + 1;
    }
    ok = ok && pos == len;
    free(buf);
    if (!ok) fx_free(f);
    return ok ? KDGF_OK : KDGF_MALFORMED;
}

/* The array called `name`, or NULL. */
static const fx_array *fx_find(const fx_file *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->arrays[i].name, name) == 0) return &f->arrays[i];
    return NULL;
}

#endif
