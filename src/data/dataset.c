/* What every data set shares, whatever file it came from: the format dispatcher (kd_dataset_load_ex),
 * statistics, the validation split and the stratified train/test split of single-tree sources,
 * batching with augmentation and each model's normalisation. The readers are one file each:
 * idx.c, and the others named in data.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill/data.h"
#include "distill/fileio.h"
#include "distill/model.h" /* kd_size_mul */

/* Value j of a sample's bytes p, as a model sees it before normalisation. */
static inline double sample_value(const kd_dataset *ds, const uint8_t *p, size_t j) {
    if (ds->type == KD_DATA_F32) {
        float v;
        memcpy(&v, p + 4 * j, 4);
        return v;
    }
    return p[j] / 255.0;
}

void kd_dataset_compute_stats(kd_dataset *ds) {
    size_t per = (size_t)ds->c * ds->h * ds->w, n = (size_t)ds->n * per, sb = kd_dataset_sample_bytes(ds);
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < ds->n; i++) { /* every value in file order, as kd_dataset_channel_stats reads them */
        const uint8_t *p = ds->pixels + sb * (size_t)i;
        for (size_t j = 0; j < per; j++) {
            double v = sample_value(ds, p, j);
            s += v;
            ss += v * v;
        }
    }
    double mean = s / (double)n, var = ss / (double)n - mean * mean;
    ds->mean = (float)mean;
    ds->std = var > 1e-12 ? (float)sqrt(var) : 1.f;
}

kd_status kd_dataset_check_labels(const kd_dataset *ds, int n_classes, const char *model, kd_error *err) {
    if (ds->n_classes <= n_classes) return KD_STATUS_OK; /* 1 + the largest label of the file */
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] < 0 || ds->labels[i] >= n_classes)
            return kd_error_set(err, KD_STATUS_MISMATCH,
                                "%s: label %d at index %d is out of range: model %s has %d classes (labels 0 to %d)",
                                ds->labels_path[0] ? ds->labels_path : "labels", (int)ds->labels[i],
                                (int)kd_dataset_orig_index(ds, i), model, n_classes, n_classes - 1);
    return KD_STATUS_OK; /* the bad labels are in another part of the split */
}

void kd_dataset_free(kd_dataset *ds) {
    free(ds->pixels);
    free(ds->labels);
    free(ds->orig);
    free(ds->class_names);
    ds->pixels = NULL;
    ds->labels = NULL;
    ds->orig = NULL;
    ds->class_names = NULL;
    ds->n = 0;
}

void kd_dataset_truncate(kd_dataset *ds, int n) {
    if (n >= 0 && n < ds->n) ds->n = n;
}

int kd_dataset_default_val(int n) {
    return n / 12 < 5000 ? (n > 0 ? n / 12 : 0) : 5000;
}

kd_status kd_dataset_split(kd_dataset *ds, kd_dataset *val, int n_val, uint64_t seed, kd_error *err) {
    if (n_val < 0 || n_val >= ds->n)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "validation size %d must be in [0, %d)", n_val, ds->n);
    memset(val, 0, sizeof *val);
    size_t img = kd_dataset_sample_bytes(ds);
    int n_train = ds->n - n_val;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)ds->n);
    uint8_t *tp = malloc(img * (size_t)n_train), *vp = malloc(img * (size_t)(n_val ? n_val : 1));
    int32_t *tl = malloc(sizeof(int32_t) * (size_t)n_train), *vl = malloc(sizeof(int32_t) * (size_t)(n_val ? n_val : 1));
    int32_t *to = malloc(sizeof(int32_t) * (size_t)n_train), *vo = malloc(sizeof(int32_t) * (size_t)(n_val ? n_val : 1));
    char *is_val = calloc((size_t)ds->n, 1);
    if (!perm || !tp || !vp || !tl || !vl || !to || !vo || !is_val) {
        free(perm); free(tp); free(vp); free(tl); free(vl); free(to); free(vo); free(is_val);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    kd_rng r;
    kd_rng_seed(&r, seed, 0x59117ULL);
    for (int i = 0; i < ds->n; i++) perm[i] = i;
    kd_rng_shuffle(&r, perm, ds->n);
    /* Keep the training part in its original order (sorted indices) so the split is the only
     * thing the seed changes. */
    for (int i = ds->n - n_val; i < ds->n; i++) is_val[perm[i]] = 1;
    int a = 0, b = 0;
    for (int i = 0; i < ds->n; i++) {
        if (is_val[i]) {
            memcpy(vp + img * b, ds->pixels + img * i, img);
            vo[b] = kd_dataset_orig_index(ds, i);
            vl[b++] = ds->labels[i];
        } else {
            memcpy(tp + img * a, ds->pixels + img * i, img);
            to[a] = kd_dataset_orig_index(ds, i);
            tl[a++] = ds->labels[i];
        }
    }
    free(is_val);
    free(perm);
    char **names = ds->class_names; /* ds keeps them; val gets a copy */
    ds->class_names = NULL;
    *val = *ds;
    kd_status st = names ? kd_dataset_set_class_names(val, (const char *const *)names, ds->n_classes, err) : KD_STATUS_OK;
    if (st) {
        ds->class_names = names;
        free(tp); free(vp); free(tl); free(vl); free(to); free(vo);
        memset(val, 0, sizeof *val);
        return st;
    }
    val->n = n_val;
    val->pixels = vp;
    val->labels = vl;
    val->orig = vo;
    kd_dataset_free(ds); /* the whole set's arrays; ds keeps its geometry and takes the training part */
    ds->pixels = tp;
    ds->labels = tl;
    ds->orig = to;
    ds->n = n_train;
    ds->class_names = names;
    return KD_STATUS_OK;
}

/* One image (C planes of hw pixels) normalised: channel c as (p/255 - mean[c]) / std[c], or with the
 * data set's scalar statistics when mean is NULL. Written as p * scale + shift with scale and shift
 * of one channel computed as they always were, so a model without its own normalisation gets the
 * same floats, bit for bit, as before models could have one. */
static void normalize_image(float *o, const uint8_t *p, int C, size_t hw, const kd_dataset *ds, const float *mean,
                            const float *std) {
    for (int c = 0; c < C; c++) {
        float mu = mean ? mean[c] : ds->mean, sd = mean ? std[c] : ds->std;
        float *oc = o + hw * (size_t)c;
        if (ds->type == KD_DATA_F32) {
            float scale = 1.f / sd, shift = -mu / sd, v;
            for (size_t i = 0; i < hw; i++) {
                memcpy(&v, p + 4 * (hw * (size_t)c + i), 4);
                oc[i] = v * scale + shift;
            }
            continue;
        }
        float scale = 1.f / (255.f * sd), shift = -mu / sd;
        const uint8_t *pc = p + hw * (size_t)c;
        for (size_t i = 0; i < hw; i++) oc[i] = pc[i] * scale + shift;
    }
}

void kd_batch_fill(float *x, int32_t *y, const kd_dataset *ds, const float *mean, const float *std,
                   const int32_t *idx, int B) {
    size_t hw = (size_t)ds->h * ds->w, img = hw * (size_t)ds->c, sb = kd_dataset_sample_bytes(ds);
    for (int b = 0; b < B; b++) {
        y[b] = ds->labels[idx[b]];
        normalize_image(x + img * (size_t)b, ds->pixels + sb * (size_t)idx[b], ds->c, hw, ds, mean, std);
    }
}

void kd_batch_pixels(uint8_t *px, int32_t *y, const kd_dataset *ds, const int32_t *idx, int B, const kd_augment *aug,
                     kd_rng *rng) {
    int C = ds->c, H = ds->h, W = ds->w;
    size_t es = ds->type == KD_DATA_F32 ? 4 : 1, img = kd_dataset_sample_bytes(ds);
    int t = aug && rng ? aug->translate : 0, flip_on = aug && rng && aug->hflip;
    for (int b = 0; b < B; b++) {
        const uint8_t *p = ds->pixels + img * (size_t)idx[b];
        uint8_t *o = px + img * (size_t)b;
        y[b] = ds->labels[idx[b]];
        int dx = 0, dy = 0, flip = 0;
        if (t > 0) {
            dx = (int)kd_rng_below(rng, (uint32_t)(2 * t + 1)) - t;
            dy = (int)kd_rng_below(rng, (uint32_t)(2 * t + 1)) - t;
        }
        if (flip_on) flip = (int)(kd_rng_u32(rng) >> 31);
        if (!dx && !dy && !flip) {
            memcpy(o, p, img);
            continue;
        }
        /* out(y, x) = in(y - dy, x' - dx) with x' = flip ? W-1-x : x; outside: background 0 (the
         * zero bytes of a pixel or of a float). */
        for (int c = 0; c < C; c++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    int sy = yy - dy, sx = (flip ? W - 1 - xx : xx) - dx;
                    uint8_t *dst = o + es * (((size_t)c * H + yy) * W + xx);
                    if (sy >= 0 && sy < H && sx >= 0 && sx < W) {
                        const uint8_t *src = p + es * (((size_t)c * H + sy) * W + sx);
                        if (es == 1) *dst = *src;
                        else memcpy(dst, src, es);
                    } else {
                        memset(dst, 0, es);
                    }
                }
    }
}

void kd_batch_normalize(float *x, const uint8_t *px, int B, const kd_dataset *ds, const float *mean, const float *std) {
    size_t hw = (size_t)ds->h * ds->w, img = hw * (size_t)ds->c, sb = kd_dataset_sample_bytes(ds);
    for (int b = 0; b < B; b++) normalize_image(x + img * (size_t)b, px + sb * (size_t)b, ds->c, hw, ds, mean, std);
}

int kd_batch_same_norm(const kd_batch *in, const float *mean, const float *std) {
    if (!in->x) return 0;
    if (in->mean == mean && in->std == std) return 1;
    size_t n = sizeof(float) * (size_t)in->ds->c;
    return in->mean && mean && !memcmp(in->mean, mean, n) && !memcmp(in->std, std, n);
}


/* ---- Sources ------------------------------------------------------------------------------------ */

static const char *const format_names[KD_DATA_FORMAT_COUNT] = {"auto", "idx", "images", "cifar", "numpy", "csv"};

const char *kd_data_format_name(kd_data_format f) {
    return f >= 0 && f < KD_DATA_FORMAT_COUNT ? format_names[f] : NULL;
}

kd_data_format kd_data_format_parse(const char *name) {
    for (int f = 0; f < KD_DATA_FORMAT_COUNT; f++)
        if (!strcmp(name, format_names[f])) return (kd_data_format)f;
    return KD_DATA_FORMAT_COUNT;
}

kd_data_opts kd_data_opts_default(void) {
    kd_data_opts o;
    memset(&o, 0, sizeof o);
    o.test_fraction = 0.2f;
    o.split_seed = 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    o.max_bytes = pages > 0 && page > 0 ? (size_t)pages / 4 * 3 * (size_t)page : (size_t)1 << 32;
    return o;
}

static int has_suffix_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), ns = strlen(suffix);
    return n > ns && strcasecmp(s + n - ns, suffix) == 0;
}

static int path_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

kd_data_format kd_data_format_detect(const char *spec) {
    /* A list "A,B": the kind of its first part (IDX's IMAGES,LABELS pair has no suffix we know). */
    char first[4096];
    const char *comma = strchr(spec, ',');
    snprintf(first, sizeof first, "%.*s", comma ? (int)(comma - spec) : (int)strlen(spec), spec);
    if (has_suffix_ci(first, ".npz") || has_suffix_ci(first, ".npy")) return KD_DATA_FORMAT_NUMPY;
    if (has_suffix_ci(first, ".csv") || has_suffix_ci(first, ".tsv")) return KD_DATA_FORMAT_CSV;
    if (has_suffix_ci(first, ".bin")) return KD_DATA_FORMAT_CIFAR;
    if (!comma && kd_is_dir(first)) {
        char p[4200];
        const char *cifar[] = {"data_batch_1.bin", "train.bin", "cifar-10-batches-bin/data_batch_1.bin",
                               "cifar-100-binary/train.bin"};
        for (size_t i = 0; i < sizeof cifar / sizeof *cifar; i++) {
            snprintf(p, sizeof p, "%s/%s", first, cifar[i]);
            if (path_exists(p)) return KD_DATA_FORMAT_CIFAR;
        }
        /* IDX files by their names; anything else with sub-directories is an image folder. */
        snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", first);
        size_t n = strlen(p);
        if (path_exists(p) || (snprintf(p + n, sizeof p - n, ".gz"), path_exists(p))) return KD_DATA_FORMAT_IDX;
        return KD_DATA_FORMAT_IMAGES;
    }
    return KD_DATA_FORMAT_IDX;
}

kd_status kd_dataset_load_ex(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                             kd_error *err) {
    memset(ds, 0, sizeof *ds);
    kd_data_opts def = kd_data_opts_default();
    if (!opts) opts = &def;
    if (strcmp(split, "train") && strcmp(split, "test"))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown split '%s' (train or test)", split);
    kd_data_format f = opts->format == KD_DATA_FORMAT_AUTO ? kd_data_format_detect(spec) : opts->format;
    kd_status st;
    switch (f) {
    case KD_DATA_FORMAT_IDX: st = kd_dataset_load_idx_spec(ds, spec, split, err); break;
    case KD_DATA_FORMAT_IMAGES: st = kd_dataset_load_images(ds, spec, split, opts, err); break;
    case KD_DATA_FORMAT_CIFAR: st = kd_dataset_load_cifar(ds, spec, split, opts, err); break;
    case KD_DATA_FORMAT_NUMPY: st = kd_dataset_load_numpy(ds, spec, split, opts, err); break;
    case KD_DATA_FORMAT_CSV: st = kd_dataset_load_csv(ds, spec, split, opts, err); break;
    default: return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown data format %d", (int)f);
    }
    if (st) return st;
    if (ds->n <= 0) {
        kd_dataset_free(ds);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: the %s split has no samples", spec, split);
    }
    kd_dataset_compute_stats(ds);
    return KD_STATUS_OK;
}

kd_status kd_dataset_load(kd_dataset *ds, const char *spec, const char *split, kd_error *err) {
    return kd_dataset_load_ex(ds, spec, split, NULL, err);
}

kd_status kd_dataset_check_size(const char *spec, int64_t n, int c, int h, int w, int elem, size_t max_bytes,
                                kd_error *err) {
    int64_t need = kd_size_mul(kd_size_mul(kd_size_mul(kd_size_mul(n, c), h), w), elem);
    if (need == INT64_MAX || (uint64_t)need > max_bytes)
        return kd_error_set(err, KD_STATUS_NO_MEMORY,
                            "%s: %lld samples of %dx%dx%d need %.2f GB in memory; at most %.2f GB is allowed "
                            "(3/4 of this machine's memory): use fewer or smaller samples (--size)",
                            spec, (long long)n, c, h, w, need == INT64_MAX ? 1e18 : (double)need / 1e9,
                            (double)max_bytes / 1e9);
    return KD_STATUS_OK;
}

kd_status kd_split_stratified(const int32_t *labels, int n, int n_classes, float test_fraction, uint64_t seed,
                              uint8_t *is_test, kd_error *err) {
    if (!(test_fraction > 0.f && test_fraction < 1.f))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "test fraction %g must be in (0, 1)", (double)test_fraction);
    if (n < 0 || n_classes <= 0) return kd_error_set(err, KD_STATUS_BAD_ARG, "bad split of %d samples", n);
    int32_t *members = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!members) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    memset(is_test, 0, (size_t)n);
    for (int k = 0; k < n_classes; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (labels[i] == k) members[m++] = i;
        if (m < 2) continue;
        int t = (int)lround((double)test_fraction * m);
        if (t < 1) t = 1;
        if (t > m - 1) t = m - 1; /* the class stays in the training split */
        kd_rng r;
        kd_rng_seed(&r, seed, 0x5717ULL + (uint64_t)k); /* one stream per class: adding a class moves no other */
        kd_rng_shuffle(&r, members, m);
        for (int j = 0; j < t; j++) is_test[members[j]] = 1;
    }
    free(members);
    return KD_STATUS_OK;
}

kd_status kd_dataset_select(kd_dataset *ds, const uint8_t *keep, uint8_t want, kd_error *err) {
    size_t sb = kd_dataset_sample_bytes(ds);
    int32_t *orig = malloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1));
    if (!orig) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    int m = 0;
    for (int i = 0; i < ds->n; i++) {
        if (keep[i] != want) continue;
        if (m != i) {
            memmove(ds->pixels + sb * (size_t)m, ds->pixels + sb * (size_t)i, sb);
            ds->labels[m] = ds->labels[i];
        }
        orig[m++] = kd_dataset_orig_index(ds, i);
    }
    free(ds->orig);
    ds->orig = orig;
    ds->n = m;
    return KD_STATUS_OK;
}

kd_status kd_dataset_take_split(kd_dataset *ds, const kd_data_opts *opts, const char *split, kd_error *err) {
    uint8_t *is_test = malloc((size_t)(ds->n ? ds->n : 1));
    if (!is_test) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    kd_status st = kd_split_stratified(ds->labels, ds->n, ds->n_classes, opts->test_fraction, opts->split_seed, is_test,
                                       err);
    if (!st) st = kd_dataset_select(ds, is_test, (uint8_t)!strcmp(split, "test"), err);
    free(is_test);
    return st;
}

void kd_dataset_channel_stats(const kd_dataset *ds, float *mean, float *std) {
    size_t hw = (size_t)ds->h * ds->w, sb = kd_dataset_sample_bytes(ds);
    for (int c = 0; c < ds->c; c++) {
        double s = 0.0, ss = 0.0;
        for (int i = 0; i < ds->n; i++) {
            const uint8_t *p = ds->pixels + sb * (size_t)i;
            for (size_t j = hw * (size_t)c; j < hw * (size_t)(c + 1); j++) {
                double v = sample_value(ds, p, j);
                s += v;
                ss += v * v;
            }
        }
        double cnt = (double)ds->n * (double)hw, mu = cnt > 0 ? s / cnt : 0.0, var = cnt > 0 ? ss / cnt - mu * mu : 0.0;
        mean[c] = (float)mu;
        std[c] = var > 1e-12 ? (float)sqrt(var) : 1.f;
    }
}

/* NULL if s can be a class name (non-empty, shorter than KD_CLASS_NAME_MAX bytes, UTF-8 of printable
 * characters, so that any name is written and read back as it is), else what is wrong with it. */
const char *kd_class_name_problem(const char *s) {
    size_t len = strlen(s);
    if (!len) return "is empty";
    if (len >= KD_CLASS_NAME_MAX) return "is longer than 63 bytes";
    _Static_assert(KD_CLASS_NAME_MAX == 64, "the message says 63");
    for (const unsigned char *u = (const unsigned char *)s; *u;) {
        unsigned cp = *u, n = 0;
        if (cp >= 0xf0 && cp < 0xf5) cp &= 0x07, n = 3;
        else if (cp >= 0xe0 && cp < 0xf0) cp &= 0x0f, n = 2;
        else if (cp >= 0xc2 && cp < 0xe0) cp &= 0x1f, n = 1;
        else if (cp >= 0x80) return "is not valid UTF-8";
        u++;
        for (unsigned k = 0; k < n; k++, u++) {
            if ((*u & 0xc0) != 0x80) return "is not valid UTF-8";
            cp = cp << 6 | (*u & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp < 0xe000))
            return "is not valid UTF-8";
        /* YAML's printable set: no C0 or C1 controls, DEL, or U+FFFE / U+FFFF */
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0xfffe || cp == 0xffff) return "has a control character";
    }
    return NULL;
}

kd_status kd_dataset_set_class_names(kd_dataset *ds, const char *const *names, int n, kd_error *err) {
    if (n != ds->n_classes)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%d class names for %d classes", n, ds->n_classes);
    size_t bytes = sizeof(char *) * (size_t)n;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        const char *why = kd_class_name_problem(names[i]);
        if (why && len >= KD_CLASS_NAME_MAX)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "class name '%.40s...' %s", names[i], why);
        if (why) return kd_error_set(err, KD_STATUS_BAD_FILE, "class name %d %s", i, why);
        bytes += len + 1;
    }
    char **block = malloc(bytes);
    if (!block) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    char *s = (char *)(block + n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]) + 1;
        memcpy(s, names[i], len);
        block[i] = s;
        s += len;
    }
    free(ds->class_names);
    ds->class_names = block;
    return KD_STATUS_OK;
}
