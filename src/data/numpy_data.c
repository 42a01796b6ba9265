/* NumPy data sets: one .npz holding x_train, y_train, x_test, y_test (np.savez or
 * np.savez_compressed), "X.npy,Y.npy" (one pair split by test_fraction, stratified and seeded) or
 * "Xtr.npy,Ytr.npy,Xte.npy,Yte.npy". x is uint8 (pixels) or float16/32/64 (values, kept as float32),
 * of shape (N,H,W), (N,C,H,W), (N,H,W,C) or (N,F); y is integers of shape (N) or (N,1). The rules
 * are in docs/DATA.md ("NumPy arrays"). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/data.h"
#include "distill/fileio.h"
#include "distill/npy.h"
#include "distill/npz.h"

#define NUMPY_MAX_LABEL (1 << 20) /* labels are class indices: 0 .. 2^20 - 1 */

/* One array in memory: its bytes (a file, or an archive member), header and data. */
typedef struct np_array {
    char name[1100];       /* for messages: the file, or "FILE.npz:member" */
    unsigned char *buf;
    size_t len;
    kd_npy_header h;
    const unsigned char *d;
    int64_t count;
} np_array;

static void array_free(np_array *a) {
    free(a->buf);
    a->buf = NULL;
}

/* Parse a->buf as a .npy and check its data fits in it. */
static kd_status array_parse(np_array *a, kd_error *err) {
    kd_status st = kd_npy_parse_header(a->buf, a->len, a->name, &a->h, err);
    if (st) return st;
    if (!a->h.kind)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: dtype %s is not a number type", a->name, a->h.descr);
    if (a->h.ndim < 1)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s shape in the header", a->name,
                            a->h.has_shape && a->h.ndim == 0 ? "a scalar (empty)" : "no valid");
    if (a->h.ndim >= 2 && a->h.fortran != 0)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: Fortran-ordered arrays are not read (save "
                            "np.ascontiguousarray(a))", a->name);
    a->count = kd_npy_count(&a->h);
    size_t have = a->len - a->h.data_off;
    if (a->count == INT64_MAX || (uint64_t)a->count > have / (size_t)a->h.item)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: truncated: its shape needs %s%llu bytes of data, it has %zu",
                            a->name, a->count == INT64_MAX ? "more than " : "",
                            (unsigned long long)(a->count == INT64_MAX ? INT64_MAX : a->count * a->h.item), have);
    a->d = a->buf + a->h.data_off;
    return KD_STATUS_OK;
}

static kd_status array_load_file(np_array *a, const char *path, size_t max_bytes, kd_error *err) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", path);
    char *buf;
    kd_status st = kd_read_file_max(path, max_bytes, "a NumPy array in memory", &buf, &a->len, err);
    if (st) return st;
    a->buf = (unsigned char *)buf;
    return array_parse(a, err);
}

static kd_status array_load_member(np_array *a, kd_npz *z, const char *path, const char *member, size_t max_bytes,
                                   kd_error *err) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s:%s", path, member);
    kd_status st = kd_npz_read(z, member, max_bytes, &a->buf, &a->len, err);
    return st ? st : array_parse(a, err);
}

/* The labels of y: integers, shape (N) or (N,1), each in [0, 2^20); *max_label raised to their max. */
static kd_status array_labels(const np_array *y, int32_t **out, int *n, int *max_label, kd_error *err) {
    const kd_npy_header *h = &y->h;
    if (h->kind != 'i' && h->kind != 'u')
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: labels must be integers, dtype %s is not", y->name, h->descr);
    if (h->ndim > 2 || (h->ndim == 2 && h->dims[1] != 1))
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: labels must have shape (N) or (N, 1), this has %d dimensions%s",
                            y->name, h->ndim, h->ndim == 2 ? " of which the second is not 1" : "");
    if (h->dims[0] > INT32_MAX - 1)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %lld labels are too many", y->name, (long long)h->dims[0]);
    int32_t *l = malloc(sizeof(int32_t) * (size_t)(h->dims[0] ? h->dims[0] : 1));
    if (!l) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", y->name);
    for (int64_t i = 0; i < h->dims[0]; i++) {
        int64_t v = kd_npy_get_i64(h, y->d, (size_t)i);
        if (v < 0 || v >= NUMPY_MAX_LABEL) {
            free(l);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: label %lld at index %lld is out of range (0 .. %d)", y->name,
                                (long long)v, (long long)i, NUMPY_MAX_LABEL - 1);
        }
        l[i] = (int32_t)v;
        if (l[i] > *max_label) *max_label = l[i];
    }
    *out = l;
    *n = (int)h->dims[0];
    return KD_STATUS_OK;
}

/* ds's samples from x: shape, type and values (channels-last moved to channels-first). */
static kd_status array_samples(kd_dataset *ds, const np_array *x, const char *spec, size_t max_bytes, kd_error *err) {
    const kd_npy_header *h = &x->h;
    int u8 = h->kind == 'u' && h->item == 1;
    if (!u8 && h->kind != 'f')
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: dtype %s is not read: samples must be uint8 (pixels) or "
                            "float16/32/64 (values)", x->name, h->descr);
    int64_t n = h->dims[0], c, hh = 1, w = 1;
    int nhwc = 0;
    switch (h->ndim) {
    case 2: c = h->dims[1]; break;                              /* N,F: F x 1 x 1 */
    case 3: c = 1; hh = h->dims[1]; w = h->dims[2]; break;       /* N,H,W: 1 x H x W */
    case 4:
        /* N,H,W,C when the last dimension is a channel count (1, 3 or 4) and H and W are larger than 4 */
        nhwc = (h->dims[3] == 1 || h->dims[3] == 3 || h->dims[3] == 4) && h->dims[1] > 4 && h->dims[2] > 4;
        c = nhwc ? h->dims[3] : h->dims[1];
        hh = nhwc ? h->dims[1] : h->dims[2];
        w = nhwc ? h->dims[2] : h->dims[3];
        break;
    default:
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: samples must have shape (N,H,W), (N,C,H,W), (N,H,W,C) or "
                            "(N,F); this has %d dimensions", x->name, h->ndim);
    }
    if (n < 1 || c < 1 || hh < 1 || w < 1 || n > INT32_MAX - 1 || c > INT32_MAX / 4 || hh > INT32_MAX / 4 ||
        w > INT32_MAX / 4)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: shape (%lld, %lld, %lld, %lld) has an empty or too large "
                            "dimension", x->name, (long long)n, (long long)c, (long long)hh, (long long)w);
    kd_status st = kd_dataset_check_size(spec, n, (int)c, (int)hh, (int)w, u8 ? 1 : 4, max_bytes, err);
    if (st) return st;
    ds->n = (int)n;
    ds->c = (int)c;
    ds->h = (int)hh;
    ds->w = (int)w;
    ds->type = u8 ? KD_DATA_U8 : KD_DATA_F32;
    size_t per = (size_t)c * (size_t)hh * (size_t)w, hw = (size_t)hh * (size_t)w;
    ds->pixels = malloc(per * (size_t)n * (u8 ? 1 : 4));
    if (!ds->pixels) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", x->name);
    for (size_t i = 0; i < per * (size_t)n; i++) {
        size_t src = i;
        if (nhwc) { /* destination i = (s, ch, p) with p = y*W+x; source (s, p, ch) */
            size_t s = i / per, r = i % per, ch = r / hw, p = r % hw;
            src = s * per + p * (size_t)c + ch;
        }
        if (u8) {
            ds->pixels[i] = x->d[src];
            continue;
        }
        float v = (float)kd_npy_get_f64(h, x->d, src);
        if (!isfinite(v))
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: NaN or inf (or a value beyond float32) in sample %zu at "
                                "flat index %zu", x->name, src / per, src);
        memcpy(ds->pixels + 4 * i, &v, 4);
    }
    return KD_STATUS_OK;
}

/* Split a "A,B,..." spec into at most 4 parts. */
static int split_spec(const char *spec, char parts[4][1024]) {
    int k = 0;
    for (const char *p = spec;; k++) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (k == 4 || l >= 1024) return -1;
        memcpy(parts[k], p, l);
        parts[k][l] = 0;
        if (!e) return k + 1;
        p = e + 1;
    }
}

kd_status kd_dataset_load_numpy(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                kd_error *err) {
    memset(ds, 0, sizeof *ds);
    kd_data_opts def = kd_data_opts_default();
    if (!opts) opts = &def;
    char parts[4][1024];
    int np = split_spec(spec, parts), test = !strcmp(split, "test");
    size_t l0 = np >= 1 ? strlen(parts[0]) : 0;
    if (np != 1 && np != 2 && np != 4)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: NumPy data is FILE.npz, X.npy,Y.npy or "
                            "XTRAIN.npy,YTRAIN.npy,XTEST.npy,YTEST.npy", spec);
    if (np == 1 && l0 >= 4 && !strcmp(parts[0] + l0 - 4, ".npy"))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: a .npy of samples needs its labels: X.npy,Y.npy (or one .npz)",
                            spec);
    np_array x, y[2];
    memset(&x, 0, sizeof x);
    memset(y, 0, sizeof y);
    int32_t *lab[2] = {NULL, NULL};
    int nl[2] = {0, 0}, max_label = -1;
    kd_npz *z = NULL;
    kd_status st = KD_STATUS_OK;
    size_t mb = opts->max_bytes;
    if (np == 1) { /* one archive: the labels of both splits, the samples of this one */
        st = kd_npz_open(parts[0], &z, err);
        const char *need[4] = {"x_train", "y_train", "x_test", "y_test"};
        for (int i = 0; !st && i < 4; i++)
            if (!kd_npz_has(z, need[i]))
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no member %s (a data set .npz holds x_train, y_train, "
                                  "x_test and y_test)", parts[0], need[i]);
        for (int s = 0; !st && s < 2; s++) {
            st = array_load_member(&y[s], z, parts[0], s ? "y_test" : "y_train", mb, err);
            if (!st) st = array_labels(&y[s], &lab[s], &nl[s], &max_label, err);
            array_free(&y[s]);
        }
        if (!st) st = array_load_member(&x, z, parts[0], test ? "x_test" : "x_train", mb, err);
    } else {
        int ys = np == 2 ? 1 : 2; /* label files: 1 (split below) or 2 */
        for (int s = 0; !st && s < ys; s++) {
            st = array_load_file(&y[s], parts[2 * s + 1], mb, err);
            if (!st) st = array_labels(&y[s], &lab[s], &nl[s], &max_label, err);
            array_free(&y[s]);
        }
        if (!st) st = array_load_file(&x, parts[np == 4 && test ? 2 : 0], mb, err);
    }
    int s = np == 2 ? 0 : test;
    if (!st && x.h.dims[0] != nl[s])
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s has %lld samples but %s has %d labels", x.name,
                          (long long)x.h.dims[0], np == 1 ? (s ? "y_test" : "y_train") : parts[2 * s + 1], nl[s]);
    if (!st) st = array_samples(ds, &x, spec, mb, err);
    if (!st) {
        ds->labels = lab[s];
        lab[s] = NULL;
        ds->n_classes = max_label + 1;
        snprintf(ds->labels_path, sizeof ds->labels_path, "%.200s%s", np == 1 ? parts[0] : parts[2 * s + 1],
                 np == 1 ? (s ? ":y_test" : ":y_train") : "");
    }
    if (!st && np == 2) /* one pair: this split's share, stratified and seeded */
        st = kd_dataset_take_split(ds, opts, split, err);
    array_free(&x);
    free(lab[0]);
    free(lab[1]);
    kd_npz_close(z);
    if (st) {
        kd_dataset_free(ds);
        memset(ds, 0, sizeof *ds);
    }
    return st;
}
