/* The safetensors layer: framing, tensor table, offset and dtype validation and metadata, shared by
 * the fp32, int8 and language-model checkpoints (safetensors.h). The header is parsed with cJSON;
 * every field of a file from outside is validated here, once, with one set of limits. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "distill/fileio.h"
#include "format/safetensors.h"


/* The dtypes of the safetensors specification and their sizes: a foreign file's framing is
 * validated whatever it holds; each client then says which dtypes it reads. */
static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F32", 4}, {"I32", 4}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},    {"F16", 2},
              {"BF16", 2}, {"I16", 2}, {"U16", 2}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"U32", 4},
              {"F64", 8}, {"I64", 8}, {"U64", 8}};

static size_t dtype_size(const char *name) {
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dtypes[i].name, name)) return dtypes[i].size;
    return 0;
}

/* ---------------------------------------------------------------- writing */

typedef struct st_blob {
    const void *data;
    size_t n, elem;
} st_blob;

struct kd_st_writer {
    cJSON *root, *meta;
    st_blob *b;
    int n, cap;
    size_t off; /* data bytes so far */
    int oom;
};

kd_st_writer *kd_st_writer_create(void) {
    kd_st_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->root = cJSON_CreateObject();
    w->meta = w->root ? cJSON_AddObjectToObject(w->root, "__metadata__") : NULL;
    if (!w->meta) {
        kd_st_writer_free(w);
        return NULL;
    }
    return w;
}

void kd_st_writer_free(kd_st_writer *w) {
    if (!w) return;
    cJSON_Delete(w->root);
    free(w->b);
    free(w);
}

void kd_st_meta(kd_st_writer *w, const char *key, const char *value) {
    if (!cJSON_AddStringToObject(w->meta, key, value)) w->oom = 1;
}

void kd_st_metaf(kd_st_writer *w, const char *key, const char *fmt, ...) {
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    kd_st_meta(w, key, buf);
}

void kd_st_add(kd_st_writer *w, const char *name, const char *dtype, int ndim, const int64_t *shape,
               const void *data) {
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 32;
        st_blob *b = realloc(w->b, sizeof *b * (size_t)cap);
        if (!b) {
            w->oom = 1;
            return;
        }
        w->b = b;
        w->cap = cap;
    }
    st_blob *b = &w->b[w->n++];
    b->data = data;
    b->elem = dtype_size(dtype);
    b->n = 1;
    cJSON *t = cJSON_AddObjectToObject(w->root, name);
    cJSON_AddStringToObject(t, "dtype", dtype);
    cJSON *sh = cJSON_AddArrayToObject(t, "shape");
    for (int d = 0; d < ndim; d++) {
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[d]));
        b->n *= (size_t)shape[d];
    }
    cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)w->off));
    w->off += b->n * b->elem;
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)w->off));
    if (!of || cJSON_GetArraySize(of) != 2 || cJSON_GetArraySize(sh) != ndim) w->oom = 1;
}

kd_status kd_st_write(kd_st_writer *w, const char *path, kd_error *err) {
    char *json = w->oom ? NULL : cJSON_PrintUnformatted(w->root);
    if (!json) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory building the header", path);
    /* The header is padded with spaces so the data buffer starts 8-byte aligned (as the
     * safetensors writer does); readers that mmap the file can then use the values in place. */
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8, total = 8 + padded + w->off;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(json);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes", path, total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, json, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(json);
    unsigned char *d = buf + 8 + padded;
    for (int k = 0; k < w->n; k++) { /* little-endian on any host */
        const unsigned char *s = w->b[k].data;
        if (w->b[k].elem == 1) {
            memcpy(d, s, w->b[k].n);
        } else {
            for (size_t i = 0; i < w->b[k].n; i++) {
                uint32_t u;
                memcpy(&u, s + 4 * i, 4);
                for (int j = 0; j < 4; j++) d[4 * i + (size_t)j] = (unsigned char)(u >> (8 * j));
            }
        }
        d += w->b[k].n * w->b[k].elem;
    }
    kd_status s = kd_write_file_atomic(path, buf, total, err);
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- reading */

void kd_st_close(kd_st_file *f) {
    cJSON_Delete(f->root);
    free(f->bytes);
    free(f->t);
    memset(f, 0, sizeof *f);
}

static kd_status fail(kd_st_file *f, kd_status s) {
    kd_st_close(f);
    return s;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const kd_st_tensor *)a)->name, ((const kd_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
    const kd_st_tensor *x = *(const kd_st_tensor *const *)a, *y = *(const kd_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

const char *kd_st_parse_u64(const char *s, uint64_t max, uint64_t *v) {
    if (*s < '0' || *s > '9') return NULL;
    uint64_t x = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (d > max || x > (max - d) / 10) return NULL; /* x * 10 + d > max */
        x = x * 10 + d;
    }
    *v = x;
    return s;
}

int kd_st_json_int(const void *json, double lo, double hi, double *v) {
    const cJSON *x = json;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi) || x->valuedouble != floor(x->valuedouble))
        return 0;
    *v = x->valuedouble;
    return 1;
}

/* A non-negative JSON integer that a double holds exactly. */
static int json_u64(const cJSON *x, uint64_t *v) {
    double d;
    if (!kd_st_json_int(x, 0, KD_MAX_EXACT, &d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

void kd_st_shape_str(char *buf, size_t n, const int64_t *shape, int nd) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? "," : "", shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* One tensor entry of the header into e; KD_STATUS_OK or a message. */
static kd_status parse_entry(const kd_st_file *f, const cJSON *t, kd_st_tensor *e, const char *path, kd_error *err) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    e->name = t->string;
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        !json_u64(cJSON_GetArrayItem(of, 0), &e->begin) || !json_u64(cJSON_GetArrayItem(of, 1), &e->end))
        return kd_error_set(err, KD_STATUS_BAD_FILE,
                            "%s: tensor %s: malformed entry (needs dtype, shape and two integer data_offsets)", path,
                            t->string);
    e->dtype = dt->valuestring;
    if (!(e->elem = dtype_size(e->dtype)))
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s has dtype %s, which is not a safetensors dtype",
                            path, t->string, e->dtype);
    if (cJSON_GetArraySize(sh) > KD_ST_MAX_DIMS)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s has %d dimensions (at most %d)", path, t->string,
                            cJSON_GetArraySize(sh), KD_ST_MAX_DIMS);
    /* element count without overflow: any product above 2^60 cannot fit in the file anyway */
    int overflow = 0;
    const cJSON *d;
    e->count = 1;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!json_u64(d, &v))
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: shape holds something other than a "
                                "non-negative integer", path, t->string);
        e->shape[e->ndim++] = (int64_t)v;
        if (v && e->count > (UINT64_C(1) << 60) / v) overflow = 1;
        else e->count *= v;
    }
    if (e->begin > e->end || e->end > f->data_len)
        return kd_error_set(err, KD_STATUS_BAD_FILE,
                            "%s: tensor %s: data offsets [%" PRIu64 ", %" PRIu64 "] outside the %zu data bytes "
                            "(truncated file?)", path, t->string, e->begin, e->end, f->data_len);
    if (overflow || e->end - e->begin != e->elem * e->count) {
        char shs[128];
        kd_st_shape_str(shs, sizeof shs, e->shape, e->ndim);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: %" PRIu64 " data bytes do not match its shape %s",
                            path, t->string, e->end - e->begin, shs);
    }
    return KD_STATUS_OK;
}

/* No name twice, and the tensors tile the data buffer exactly (the safetensors rule: contiguous,
 * no holes, nothing after the last). f->t is sorted by name on return. */
static kd_status check_table(kd_st_file *f, const char *path, kd_error *err) {
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_name);
    for (int i = 0; i + 1 < f->n; i++)
        if (!strcmp(f->t[i].name, f->t[i + 1].name))
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s appears twice in the header", path, f->t[i].name);
    kd_st_tensor **by_off = calloc(f->n > 0 ? (size_t)f->n : 1, sizeof *by_off);
    if (!by_off) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < f->n; i++) by_off[i] = &f->t[i];
    qsort(by_off, (size_t)f->n, sizeof *by_off, cmp_offset);
    kd_status s = KD_STATUS_OK;
    uint64_t pos = 0;
    for (int i = 0; i < f->n && !s; i++) {
        if (by_off[i]->begin < pos)
            s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s overlaps tensor %s in the data buffer", path,
                             by_off[i]->name, by_off[i - 1]->name);
        else if (by_off[i]->begin > pos)
            s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %" PRIu64 " unused bytes in the data buffer before "
                             "tensor %s", path, by_off[i]->begin - pos, by_off[i]->name);
        pos = by_off[i]->end;
    }
    if (!s && pos != f->data_len)
        s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %" PRIu64 " bytes after the last tensor's data", path,
                         (uint64_t)f->data_len - pos);
    free(by_off);
    return s;
}

kd_status kd_st_read(kd_st_file *f, const char *path, kd_error *err) {
    memset(f, 0, sizeof *f);
    kd_status s = kd_read_file(path, &f->bytes, &f->len, err);
    if (s) return s;
    const unsigned char *b = (const unsigned char *)f->bytes;
    if (f->len < 8)
        return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE,
                                    "%s: not a safetensors file (%zu bytes, less than the 8-byte header length)", path,
                                    f->len));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > KD_ST_MAX_HEADER || hlen > f->len - 8)
        return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE,
                                    "%s: not a safetensors file or truncated (header length %" PRIu64
                                    " bytes, file %zu bytes)", path, hlen, f->len));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(f->bytes + 8, (size_t)hlen, &end, 0);
    f->root = root;
    if (!cJSON_IsObject(root))
        return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt safetensors header (invalid JSON)", path));
    for (const char *c = end; c < f->bytes + 8 + hlen; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r')
            return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE,
                                        "%s: corrupt safetensors header (bytes after the JSON object)", path));
    f->data = b + 8 + hlen;
    f->data_len = f->len - 8 - (size_t)hlen;

    /* __metadata__: strings to strings */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), *mv;
    if (meta && !cJSON_IsObject(meta))
        return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE, "%s: __metadata__ is not a JSON object", path));
    cJSON_ArrayForEach(mv, meta) {
        if (!cJSON_IsString(mv))
            return fail(f, kd_error_set(err, KD_STATUS_BAD_FILE, "%s: __metadata__ value \"%s\" is not a string", path,
                                        mv->string));
    }

    int n = cJSON_GetArraySize(root) - (meta != NULL);
    f->t = calloc(n > 0 ? (size_t)n : 1, sizeof *f->t);
    if (!f->t) return fail(f, kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path));
    const cJSON *t;
    cJSON_ArrayForEach(t, root) {
        if (t == meta) continue;
        if ((s = parse_entry(f, t, &f->t[f->n++], path, err))) return fail(f, s);
    }
    if ((s = check_table(f, path, err))) return fail(f, s);
    return KD_STATUS_OK;
}

const char *kd_st_meta_get(const kd_st_file *f, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f->root, "__metadata__"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int kd_st_meta_u64(const kd_st_file *f, const char *key, uint64_t max, uint64_t *v) {
    const char *s = kd_st_meta_get(f, key);
    uint64_t x;
    if (!s || !(s = kd_st_parse_u64(s, max, &x)) || *s) return 0;
    *v = x;
    return 1;
}

kd_st_tensor *kd_st_find(const kd_st_file *f, const char *name) {
    kd_st_tensor key = {.name = name};
    return f->n ? bsearch(&key, f->t, (size_t)f->n, sizeof key, cmp_name) : NULL;
}

void kd_st_copy(const kd_st_file *f, const kd_st_tensor *t, void *dst) {
    const unsigned char *s = f->data + t->begin;
    unsigned char *d = dst;
    if (t->elem == 1) {
        memcpy(d, s, (size_t)t->count);
        return;
    }
    for (size_t i = 0; i < t->count; i++, s += 4) {
        uint32_t u = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
        memcpy(d + 4 * i, &u, 4);
    }
}

size_t kd_st_first_nonfinite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return i;
    return n;
}

size_t kd_st_copy_f32(const kd_st_file *f, const kd_st_tensor *t, float *dst) {
    kd_st_copy(f, t, dst);
    return kd_st_first_nonfinite(dst, (size_t)t->count);
}
