/* Checkpoints in the safetensors format: u64 LE header length, JSON header (parsed with cJSON),
 * raw little-endian F32 data. The model's YAML and the training state live in __metadata__ and
 * optimizer moments are extra tensors, so a file is self-describing and readable by the
 * `safetensors` Python package. Every field of a file from outside is validated. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "distill/checkpoint.h"

#define KD_MAX_HEADER (100u << 20)

/* ---------------------------------------------------------------- files */

kd_status kd_write_file_atomic(const char *path, const void *data, size_t len, kd_error *err) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: cannot create (%s)", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: write failed (%s)", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return st;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: fsync/close failed (%s)", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        kd_status st = kd_error_set(err, KD_STATUS_IO, "%s: cannot rename into place (%s)", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    /* Make the rename itself durable (best effort: some file systems refuse fsync on dirs). */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    free(tmp);
    return KD_STATUS_OK;
}

kd_status kd_read_file(const char *path, char **data, size_t *len, kd_error *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: no such file", path);
        return kd_error_set(err, KD_STATUS_IO, "%s: cannot open (%s)", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return kd_error_set(err, KD_STATUS_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return kd_error_set(err, KD_STATUS_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return KD_STATUS_OK;
}

/* ---------------------------------------------------------------- tensor table */

typedef struct tensor_ref {
    char name[KD_NAME_MAX + 32];
    int ndim;
    int shape[4];
    float *data;       /* in the model/optimizer, for saving and loading */
    size_t n;
} tensor_ref;

typedef struct tensor_list {
    tensor_ref *t;
    int n, cap;
} tensor_list;

static int add_tensor(tensor_list *l, const char *prefix, const char *layer, const char *what, float *data, int ndim,
                      const int *shape) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        tensor_ref *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) return -1;
        l->t = t;
        l->cap = cap;
    }
    tensor_ref *r = &l->t[l->n++];
    snprintf(r->name, sizeof r->name, "%s%s.%s", prefix, layer, what);
    r->ndim = ndim;
    r->n = 1;
    for (int i = 0; i < ndim; i++) {
        r->shape[i] = shape[i];
        r->n *= (size_t)shape[i];
    }
    r->data = data;
    return 0;
}

/* The tensors of a model: base = params (or optimizer moments with the same layout), buffers for
 * batch norm running statistics (NULL to skip them). */
static int model_tensors(tensor_list *l, const kd_model *m, const char *prefix, float *base, float *buffers) {
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        int ws[4], nd = 0;
        if (L->type == KD_LAYER_CONV2D) {
            ws[0] = L->out; ws[1] = L->in_c / L->groups; ws[2] = ws[3] = L->kernel; nd = 4;
        } else if (L->type == KD_LAYER_LINEAR) {
            ws[0] = L->out; ws[1] = L->in_c; nd = 2;
        } else if (L->type == KD_LAYER_BATCHNORM) {
            ws[0] = L->c; nd = 1;
        } else {
            continue;
        }
        if (add_tensor(l, prefix, L->name, "weight", base + L->w_off, nd, ws)) return -1;
        int bs = (int)L->b_size;
        if (L->b_size && add_tensor(l, prefix, L->name, "bias", base + L->b_off, 1, &bs)) return -1;
        if (L->type == KD_LAYER_BATCHNORM && buffers) {
            if (add_tensor(l, prefix, L->name, "running_mean", buffers + L->buf_off, 1, ws) ||
                add_tensor(l, prefix, L->name, "running_var", buffers + L->buf_off + L->c, 1, ws))
                return -1;
        }
    }
    return 0;
}

static int build_list(tensor_list *l, const kd_model *m, const kd_optimizer *opt) {
    memset(l, 0, sizeof *l);
    if (model_tensors(l, m, "", m->params, m->buffers)) return -1;
    if (opt && opt->m && model_tensors(l, m, "optim.m.", opt->m, NULL)) return -1;
    if (opt && opt->v && model_tensors(l, m, "optim.v.", opt->v, NULL)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- save */

static void set_meta(cJSON *meta, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_meta(cJSON *meta, const char *k, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(meta, k, buf);
}

kd_status kd_checkpoint_save(const char *path, const kd_model *m, const kd_optimizer *opt, const kd_train_state *st,
                             kd_error *err) {
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i]))
            return kd_error_set(err, KD_STATUS_DIVERGED, "%s: refusing to write a checkpoint with NaN/inf weights", path);
    tensor_list l;
    if (build_list(&l, m, opt)) {
        free(l.t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "distill");
    cJSON_AddStringToObject(meta, "version", "1");
    cJSON_AddStringToObject(meta, "model_yaml", m->yaml ? m->yaml : "");
    if (st && opt) {
        set_meta(meta, "epoch", "%d", st->epoch);
        set_meta(meta, "step", "%lld", st->step);
        set_meta(meta, "rng_state", "%" PRIu64, st->rng.state);
        set_meta(meta, "rng_inc", "%" PRIu64, st->rng.inc);
        set_meta(meta, "best_val_acc", "%.9g", (double)st->best_val_acc);
        set_meta(meta, "optimizer_t", "%lld", opt->t);
        set_meta(meta, "optimizer", "%s", opt->cfg.type == KD_OPT_ADAMW ? "adamw" : "sgd");
    }
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, l.t[i].name);
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < l.t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber(l.t[i].shape[d]));
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += l.t[i].n * 4;
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        free(l.t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8;
    size_t total = 8 + padded + off;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(json);
        free(l.t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: cannot allocate %zu bytes", path, total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, json, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    unsigned char *d = buf + 8 + padded;
    for (int i = 0; i < l.n; i++) { /* little-endian host (x86-64, ARM64): raw copy */
        memcpy(d, l.t[i].data, l.t[i].n * 4);
        d += l.t[i].n * 4;
    }
    free(json);
    free(l.t);
    kd_status s = kd_write_file_atomic(path, buf, total, err);
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- load */

typedef struct parsed {
    char *file;
    size_t len;
    cJSON *root;
    const unsigned char *data; /* start of the data buffer */
    size_t data_len;
} parsed;

static void parsed_free(parsed *p) {
    cJSON_Delete(p->root);
    free(p->file);
    memset(p, 0, sizeof *p);
}

static const char *meta_str(const parsed *p, const char *key) {
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(p->root, "__metadata__");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Reads and validates the whole file structure (header, every tensor entry). */
static kd_status parse_file(parsed *p, const char *path, kd_error *err) {
    memset(p, 0, sizeof *p);
    kd_status st = kd_read_file(path, &p->file, &p->len, err);
    if (st) return st;
    const unsigned char *b = (const unsigned char *)p->file;
    if (p->len < 8) {
        kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a safetensors file (only %zu bytes)", path, p->len);
        parsed_free(p);
        return e_;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > KD_MAX_HEADER || hlen > p->len - 8) {
        kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE,
                        "%s: not a safetensors file or truncated (header length %" PRIu64 ", file %zu bytes)", path,
                        hlen, p->len);
        parsed_free(p);
        return e_;
    }
    p->root = cJSON_ParseWithLength(p->file + 8, (size_t)hlen);
    if (!cJSON_IsObject(p->root)) {
        kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: corrupt safetensors header (invalid JSON)", path);
        parsed_free(p);
        return e_;
    }
    p->data = b + 8 + hlen;
    p->data_len = p->len - 8 - (size_t)hlen;
    const char *fmt = meta_str(p, "format");
    if (!fmt || strcmp(fmt, "distill") != 0 || !meta_str(p, "model_yaml")) {
        kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE,
                        "%s: not a Distill checkpoint (no model_yaml in its metadata; a safetensors file from "
                        "elsewhere needs a model description)", path);
        parsed_free(p);
        return e_;
    }
    cJSON *t;
    cJSON_ArrayForEach(t, p->root) {
        if (!strcmp(t->string, "__metadata__")) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
            kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: malformed entry", path, t->string);
            parsed_free(p);
            return e_;
        }
        if (strcmp(dt->valuestring, "F32") != 0) {
            kd_status s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s has dtype %s; only F32 is supported", path,
                                       t->string, dt->valuestring);
            parsed_free(p);
            return s;
        }
        double count = 1;
        cJSON *d;
        cJSON_ArrayForEach(d, sh) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 || d->valuedouble != floor(d->valuedouble)) {
                kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: bad shape", path, t->string);
                parsed_free(p);
                return e_;
            }
            count *= d->valuedouble;
        }
        double o0 = cJSON_GetArrayItem(of, 0)->valuedouble, o1 = cJSON_GetArrayItem(of, 1)->valuedouble;
        if (!(o0 >= 0 && o1 >= o0 && o1 <= (double)p->data_len)) {
            kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: data offsets [%.0f, %.0f] outside the %zu data bytes (truncated file?)",
                            path, t->string, o0, o1, p->data_len);
            parsed_free(p);
            return e_;
        }
        if (o1 - o0 != 4 * count) {
            kd_status e_ = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s: %.0f data bytes do not match its shape (%.0f)",
                            path, t->string, o1 - o0, 4 * count);
            parsed_free(p);
            return e_;
        }
    }
    return KD_STATUS_OK;
}

static void shape_str(char *buf, size_t n, const int *shape, int nd) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? "," : "", shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Copy the listed tensors from the file into memory (after checking names and shapes). */
static kd_status load_list(const parsed *p, const char *path, const tensor_list *l, kd_error *err) {
    for (int i = 0; i < l->n; i++) {
        const tensor_ref *r = &l->t[i];
        cJSON *t = cJSON_GetObjectItemCaseSensitive(p->root, r->name);
        char want[64], got[64];
        shape_str(want, sizeof want, r->shape, r->ndim);
        if (!t) return kd_error_set(err, KD_STATUS_MISMATCH, "%s: missing tensor %s %s that the model needs", path, r->name, want);
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        int fs[8], nd = 0;
        cJSON *d;
        cJSON_ArrayForEach(d, sh) {
            if (nd < 8) fs[nd] = (int)d->valuedouble;
            nd++;
        }
        int same = nd == r->ndim;
        for (int k = 0; same && k < nd; k++) same = fs[k] == r->shape[k];
        if (!same) {
            shape_str(got, sizeof got, fs, nd < 8 ? nd : 8);
            return kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s has shape %s, the model expects %s", path, r->name,
                                got, want);
        }
        size_t o0 = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0)->valuedouble;
        memcpy(r->data, p->data + o0, r->n * 4);
        for (size_t k = 0; k < r->n; k++)
            if (!isfinite(r->data[k]))
                return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s contains NaN or inf", path, r->name);
    }
    return KD_STATUS_OK;
}

static int in_list(const tensor_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return 1;
    return 0;
}

static int parse_u64(const char *s, uint64_t *v) {
    if (!s || !*s) return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno) return 0;
    *v = x;
    return 1;
}

kd_status kd_checkpoint_load_into(const char *path, kd_model *m, kd_optimizer *opt, kd_train_state *st, int *has_state,
                                  kd_error *err) {
    if (has_state) *has_state = 0;
    parsed p;
    kd_status s = parse_file(&p, path, err);
    if (s) return s;
    int state = meta_str(&p, "step") != NULL;
    /* The model tensors, and the optimizer's when a state is wanted and present. */
    tensor_list l;
    const kd_optimizer *use_opt = (opt && st && state) ? opt : NULL;
    if (use_opt) {
        const char *o = meta_str(&p, "optimizer"), *want = opt->cfg.type == KD_OPT_ADAMW ? "adamw" : "sgd";
        if (!o || strcmp(o, want) != 0) {
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: was trained with %s, this run uses %s", path, o ? o : "?", want);
            parsed_free(&p);
            return s;
        }
    }
    if (build_list(&l, m, use_opt)) {
        parsed_free(&p);
        free(l.t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    /* Stage into copies so a failed load leaves the model untouched. */
    size_t np = m->n_params, nb = m->n_buffers;
    float *save_p = malloc(np * 4 + 1), *save_b = malloc(nb * 4 + 1);
    if (!save_p || !save_b) {
        free(save_p); free(save_b); free(l.t); parsed_free(&p);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    memcpy(save_p, m->params, np * 4);
    memcpy(save_b, m->buffers, nb * 4);
    s = load_list(&p, path, &l, err);
    if (!s) {
        cJSON *t;
        cJSON_ArrayForEach(t, p.root) {
            if (!strcmp(t->string, "__metadata__") || in_list(&l, t->string)) continue;
            if (!strncmp(t->string, "optim.", 6) && !use_opt) continue; /* state not requested */
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s does not belong to model %s", path, t->string, m->name);
            break;
        }
    }
    if (!s && use_opt) {
        uint64_t ep, step, rs, ri, ot;
        if (!parse_u64(meta_str(&p, "epoch"), &ep) || !parse_u64(meta_str(&p, "step"), &step) ||
            !parse_u64(meta_str(&p, "rng_state"), &rs) || !parse_u64(meta_str(&p, "rng_inc"), &ri) ||
            !parse_u64(meta_str(&p, "optimizer_t"), &ot)) {
            s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: training state in the metadata is incomplete", path);
        } else {
            st->epoch = (int)ep;
            st->step = (long long)step;
            st->rng.state = rs;
            st->rng.inc = ri;
            const char *bv = meta_str(&p, "best_val_acc");
            st->best_val_acc = bv ? strtof(bv, NULL) : -1.f;
            opt->t = (long long)ot;
            if (has_state) *has_state = 1;
        }
    }
    if (s) {
        memcpy(m->params, save_p, np * 4);
        memcpy(m->buffers, save_b, nb * 4);
    }
    free(save_p);
    free(save_b);
    free(l.t);
    parsed_free(&p);
    return s;
}

kd_status kd_checkpoint_load(const char *path, kd_model **out, kd_error *err) {
    *out = NULL;
    parsed p;
    kd_status s = parse_file(&p, path, err);
    if (s) return s;
    kd_model *m = NULL;
    s = kd_model_from_yaml(&m, meta_str(&p, "model_yaml"), path, 0, err);
    parsed_free(&p);
    if (s) return s;
    if ((s = kd_checkpoint_load_into(path, m, NULL, NULL, NULL, err))) {
        kd_model_free(m);
        return s;
    }
    *out = m;
    return KD_STATUS_OK;
}
