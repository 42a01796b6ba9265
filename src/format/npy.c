/* NumPy .npy arrays: the header parser every .npy reader shares (versions 1-3; the data readers of
 * src/data/numpy_data.c use it on .npy files and .npz members), and the reader of teacher logits
 * written by any framework (np.save): little-endian float32 ('<f4') or float16 ('<f2'), C order,
 * shape (N, C). Every header field is checked; NaN/inf values are rejected (soft targets from them
 * would be garbage). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/fileio.h"
#include "distill/model.h"
#include "distill/npy.h"
#include "distill/quant.h"

/* The value at p (a header dict value: a quoted string, or a structured dtype's list) for a message:
 * up to its end, printable ASCII kept, anything else as \xNN, cut at about 60 characters. */
static void printable_value(char *out, size_t cap, const char *p) {
    size_t o = 0;
    int depth = 0;
    char quote = 0; /* inside a quoted string: its quote character */
    for (; *p && o + 8 < cap; p++) {
        if (!quote && depth <= 0 && (*p == ',' || *p == '}')) break; /* the next key, or the dict's end */
        if (o >= 60) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char u = (unsigned char)*p;
        if (u >= 0x20 && u < 0x7f && u != '\\') out[o++] = *p;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", u);
        if (quote) quote = *p == quote ? 0 : quote;
        else if (*p == '\'' || *p == '"') quote = *p;
        else if (*p == '(' || *p == '[') depth++;
        else if (*p == ')' || *p == ']') depth--;
    }
    out[o] = 0;
}

/* Finds `'key':` in the header dict and returns a pointer just after the colon, or NULL. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

kd_status kd_npy_parse_header(const void *buf, size_t len, const char *name, kd_npy_header *h, kd_error *err) {
    memset(h, 0, sizeof *h);
    const unsigned char *b = (const unsigned char *)buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a NumPy .npy file (bad magic)", name);
    size_t hlen, hoff;
    if (b[6] == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hoff = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (len < 12) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated header", name);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hoff = 12;
    } else {
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: unsupported .npy version %d", name, b[6]);
    }
    if (hlen > len - hoff || hlen > 65536)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated (header of %zu bytes, file %zu)", name, hlen, len);
    char *hdr = malloc(hlen + 1);
    if (!hdr) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", name);
    memcpy(hdr, b + hoff, hlen);
    hdr[hlen] = 0;
    h->data_off = hoff + hlen;
    const char *descr = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *shape = dict_value(hdr, "shape");
    snprintf(h->descr, sizeof h->descr, "(none)");
    if (descr) {
        printable_value(h->descr, sizeof h->descr, descr);
        /* 'Bkn': byte order B ('<' little, '>' big, '|' not applicable, '=' native: little here), kind k, n bytes */
        if (descr[0] == '\'' && strchr("<>|=", descr[1]) && descr[1] && strchr("fiub", descr[2]) && descr[2] &&
            strchr("1248", descr[3]) && descr[3] && descr[4] == '\'') {
            h->kind = descr[2];
            h->item = descr[3] - '0';
            h->big_endian = descr[1] == '>' && h->item > 1;
        }
    }
    h->fortran = !fo ? -1 : !strncmp(fo, "False", 5) ? 0 : !strncmp(fo, "True", 4) ? 1 : -1;
    h->ndim = -1;
    h->has_shape = shape && *shape == '(';
    if (h->has_shape) {
        int nd = 0;
        const char *p = shape + 1;
        while (*p && *p != ')') {
            while (*p == ' ' || *p == ',') p++;
            if (*p == ')') break;
            char *e;
            long long v = strtoll(p, &e, 10);
            if (e == p || v < 0) { nd = -1; break; }
            if (nd < KD_NPY_MAX_DIMS) h->dims[nd] = v;
            nd++;
            p = e;
        }
        h->ndim = nd > KD_NPY_MAX_DIMS || (nd >= 0 && *p != ')') ? -1 : nd;
    }
    free(hdr);
    return KD_STATUS_OK;
}

int64_t kd_npy_count(const kd_npy_header *h) {
    if (h->ndim < 0) return INT64_MAX;
    int64_t n = 1;
    for (int i = 0; i < h->ndim; i++) n = kd_size_mul(n, h->dims[i]);
    return n;
}

/* The raw bits of element i, in host (little-endian) order. */
static uint64_t npy_bits(const kd_npy_header *h, const unsigned char *d, size_t i) {
    const unsigned char *p = d + (size_t)h->item * i;
    uint64_t v = 0;
    for (int k = 0; k < h->item; k++) v |= (uint64_t)p[h->big_endian ? h->item - 1 - k : k] << (8 * k);
    return v;
}

double kd_npy_get_f64(const kd_npy_header *h, const unsigned char *d, size_t i) {
    uint64_t v = npy_bits(h, d, i);
    if (h->kind == 'f') {
        if (h->item == 2) return kd_half_to_float((uint16_t)v);
        if (h->item == 4) {
            uint32_t u = (uint32_t)v;
            float f;
            memcpy(&f, &u, 4);
            return f;
        }
        double x;
        memcpy(&x, &v, 8);
        return x;
    }
    return (double)kd_npy_get_i64(h, d, i);
}

int64_t kd_npy_get_i64(const kd_npy_header *h, const unsigned char *d, size_t i) {
    uint64_t v = npy_bits(h, d, i);
    if (h->kind == 'i' && h->item < 8 && (v >> (8 * h->item - 1)) & 1) v |= ~0ULL << (8 * h->item); /* sign-extend */
    if (h->kind == 'u' && h->item == 8 && v > (uint64_t)INT64_MAX) return -1;
    return (int64_t)v;
}

kd_status kd_npy_load_logits(const char *path, int want_c, float **data, int *n, int *c, kd_error *err) {
    *data = NULL;
    char *buf = NULL;
    size_t len = 0;
    kd_status st = kd_read_file(path, &buf, &len, err);
    if (st) return st;
    const unsigned char *b = (const unsigned char *)buf;
    kd_npy_header h;
    st = kd_npy_parse_header(buf, len, path, &h, err);
    if (st) {
        free(buf);
        return st;
    }
    /* '<f4', '=f4', '<f2' or '=f2', as before the header parser was shared ('|' is no float's order) */
    int item = h.kind == 'f' && (h.descr[1] == '<' || h.descr[1] == '=') && (h.item == 4 || h.item == 2) ? h.item : 0;
    if (!item) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: dtype %s is not supported: save float32 or float16 "
                            "(e.g. logits.astype(np.float32))", path, h.descr);
    }
    if (h.fortran != 0) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: Fortran-ordered arrays are not supported (use np.ascontiguousarray)", path);
    }
    if (!h.has_shape) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no shape in the header", path);
    }
    int nd = h.ndim;
    long dims[2] = {(long)h.dims[0], (long)h.dims[1]};
    if (nd != 2 || dims[0] < 1 || dims[1] < 1 || dims[0] > (1L << 30) || dims[1] > 1000000) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: logits must have shape [N, classes] (2 dimensions), "
                            "this file has %d", path, nd < 0 ? 0 : nd);
    }
    if (want_c > 0 && dims[1] != want_c) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: logits of shape [%ld, %ld] have %ld columns, expected %d (one "
                            "per class of the model)", path, dims[0], dims[1], dims[1], want_c);
    }
    size_t count = (size_t)dims[0] * (size_t)dims[1], need = count * (size_t)item;
    if (len - h.data_off < need) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated: shape [%ld, %ld] needs %zu bytes of data, file has %zu",
                            path, dims[0], dims[1], need, len - h.data_off);
    }
    float *out = malloc(sizeof(float) * count);
    if (!out) {
        free(buf);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu floats", path, count);
    }
    const unsigned char *d = b + h.data_off;
    for (size_t i = 0; i < count; i++) {
        if (item == 4) memcpy(&out[i], d + 4 * i, 4); /* little-endian host */
        else out[i] = kd_half_to_float((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
        if (!isfinite(out[i])) {
            kd_status s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: NaN or inf at row %zu, column %zu", path,
                                       i / (size_t)dims[1], i % (size_t)dims[1]);
            free(out);
            free(buf);
            return s;
        }
    }
    free(buf);
    *data = out;
    *n = (int)dims[0];
    *c = (int)dims[1];
    return KD_STATUS_OK;
}

kd_status kd_npy_save(const char *path, const float *data, int n, int c, kd_error *err) {
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, c);
    int total = 10 + len + 1, pad = (64 - total % 64) % 64; /* data aligned to 64 bytes */
    size_t hl = (size_t)len + (size_t)pad + 1, bytes = 10 + hl + (size_t)n * c * 4;
    unsigned char *buf = malloc(bytes);
    if (!buf) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes", path, bytes);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, hdr, (size_t)len);
    memset(buf + 10 + len, ' ', (size_t)pad);
    buf[10 + hl - 1] = '\n';
    memcpy(buf + 10 + hl, data, (size_t)n * c * 4); /* little-endian host */
    kd_status st = kd_write_file_atomic(path, buf, bytes, err);
    free(buf);
    return st;
}
