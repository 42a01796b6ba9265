/* The fp32 checkpoint (kd_checkpoint_save / _load / _load_into), a client of the safetensors layer
 * (safetensors.h): which tensors a kd_model and its optimizer have, and the metadata that makes a
 * file self-describing: the model's YAML, the optimizer configuration and the training state. F32
 * data, readable by the `safetensors` Python package. */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "distill/checkpoint.h"
#include "format/safetensors.h"


/* ---------------------------------------------------------------- tensor table */

/* Where a tensor lives: the model's parameter or buffer block, or an optimizer moment block with
 * the parameter layout. Saving reads from the real blocks; loading writes into staging copies. */
enum { BLK_PARAMS = 0, BLK_BUFFERS, BLK_M, BLK_V, BLK_COUNT };

typedef struct tensor_ref {
    char name[KD_NAME_MAX + 32]; /* "optim.m." + layer + ".running_mean" fits */
    int ndim;
    int64_t shape[4];
    int block;
    size_t off, n;               /* in floats */
} tensor_ref;

typedef struct tensor_list {
    tensor_ref *t;
    int n, cap;
} tensor_list;

static int add_tensor(tensor_list *l, const char *prefix, const char *layer, const char *what, int block, size_t off,
                      int ndim, const int *shape) {
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
    r->block = block;
    r->off = off;
    return 0;
}

/* The tensors of a model under `prefix`, with weights and biases in `block` (params or a moment
 * block of the same layout) and, if with_buffers, batch-norm running statistics. Returns 0, -1 out
 * of memory, or the index + 1 of a layer whose size table disagrees with its shape (a bug). */
static int model_tensors(tensor_list *l, const kd_model *m, const char *prefix, int block, int with_buffers) {
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        int ws[4], nd;
        if (L->type == KD_LAYER_CONV2D) {
            ws[0] = L->out; ws[1] = L->groups > 0 ? L->in_c / L->groups : 0; ws[2] = ws[3] = L->kernel; nd = 4;
        } else if (L->type == KD_LAYER_LINEAR) {
            ws[0] = L->out; ws[1] = L->in_c; nd = 2;
        } else if (L->type == KD_LAYER_BATCHNORM) {
            ws[0] = L->c; nd = 1;
        } else if (L->type == KD_LAYER_SCALE) {
            ws[0] = L->out; nd = 1; /* C, or 1 for one scalar pair */
        } else {
            continue;
        }
        size_t wn = 1;
        for (int d = 0; d < nd; d++) wn *= (size_t)(ws[d] > 0 ? ws[d] : 0);
        if (wn != L->w_size || (L->b_size && L->b_size != (size_t)ws[0])) return i + 1;
        if (add_tensor(l, prefix, L->name, "weight", block, L->w_off, nd, ws)) return -1;
        if (L->b_size && add_tensor(l, prefix, L->name, "bias", block, L->b_off, 1, ws)) return -1;
        if (L->type == KD_LAYER_BATCHNORM && with_buffers) {
            if (add_tensor(l, prefix, L->name, "running_mean", BLK_BUFFERS, L->buf_off, 1, ws) ||
                add_tensor(l, prefix, L->name, "running_var", BLK_BUFFERS, L->buf_off + (size_t)L->c, 1, ws))
                return -1;
        }
    }
    return 0;
}

/* All tensors of a checkpoint: the model's, then optimizer moments m (with_m) and v (with_v). */
static kd_status build_list(tensor_list *l, const kd_model *m, int with_m, int with_v, const char *path,
                            kd_error *err) {
    memset(l, 0, sizeof *l);
    int r = model_tensors(l, m, "", BLK_PARAMS, 1);
    if (!r && with_m) r = model_tensors(l, m, "optim.m.", BLK_M, 0);
    if (!r && with_v) r = model_tensors(l, m, "optim.v.", BLK_V, 0);
    if (!r) return KD_STATUS_OK;
    free(l->t);
    memset(l, 0, sizeof *l);
    if (r < 0) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: layer %s of model %s: parameter sizes disagree with its shape",
                        path, m->layers[r - 1].name, m->name);
}

/* ---------------------------------------------------------------- optimizer metadata */

/* The optimizer as a JSON string. A float is written as the shortest decimal that reads back,
 * through a double as cJSON reads it, to the same float (9 significant digits always do). */
static void add_float(cJSON *j, const char *k, float v) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    cJSON_AddRawToObject(j, k, buf);
}

static char *optimizer_json(const kd_optimizer *o) {
    const kd_optim_config *c = &o->cfg;
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char buf[32];
    cJSON_AddStringToObject(j, "type", kd_opt_type_name(c->type));
    add_float(j, "lr", c->lr);
    add_float(j, "momentum", c->momentum);
    cJSON_AddBoolToObject(j, "nesterov", c->nesterov != 0);
    add_float(j, "beta1", c->beta1);
    add_float(j, "beta2", c->beta2);
    add_float(j, "eps", c->eps);
    add_float(j, "weight_decay", c->weight_decay);
    cJSON_AddStringToObject(j, "sched", kd_sched_name(c->sched));
    add_float(j, "warmup_epochs", c->warmup_epochs);
    cJSON_AddNumberToObject(j, "step_epochs", c->step_epochs);
    add_float(j, "step_gamma", c->step_gamma);
    add_float(j, "min_lr", c->min_lr);
    snprintf(buf, sizeof buf, "%lld", o->t);
    cJSON_AddRawToObject(j, "t", buf);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static int config_finite(const kd_optim_config *c) {
    const float f[] = {c->lr, c->momentum, c->beta1, c->beta2, c->eps, c->weight_decay, c->warmup_epochs, c->step_gamma,
                       c->min_lr};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (!isfinite(f[i])) return 0;
    return 1;
}

static int json_float(const cJSON *j, const char *k, float *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > FLT_MAX) return 0;
    *v = (float)x->valuedouble;
    return 1;
}

static int json_int(const cJSON *j, const char *k, double lo, double hi, double *v) {
    return kd_st_json_int(cJSON_GetObjectItemCaseSensitive(j, k), lo, hi, v);
}

/* Parse the "optimizer" metadata string into a config and step count; NULL on success, else the
 * name of the first bad field. */
static const char *parse_optimizer(const char *s, kd_optim_config *c, long long *t) {
    cJSON *j = cJSON_Parse(s);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return "(not a JSON object)";
    }
    const char *bad = NULL;
    memset(c, 0, sizeof *c);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "sched");
    const cJSON *ne = cJSON_GetObjectItemCaseSensitive(j, "nesterov");
    double se = 0, tt = 0;
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "sgd")) c->type = KD_OPT_SGD;
    else if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "adamw")) c->type = KD_OPT_ADAMW;
    else bad = "type";
    if (!bad) {
        if (cJSON_IsString(sc) && !strcmp(sc->valuestring, "const")) c->sched = KD_SCHED_CONST;
        else if (cJSON_IsString(sc) && !strcmp(sc->valuestring, "step")) c->sched = KD_SCHED_STEP;
        else if (cJSON_IsString(sc) && !strcmp(sc->valuestring, "cosine")) c->sched = KD_SCHED_COSINE;
        else bad = "sched";
    }
    if (!bad && !cJSON_IsBool(ne)) bad = "nesterov";
    c->nesterov = cJSON_IsTrue(ne);
    if (!bad && !json_float(j, "lr", &c->lr)) bad = "lr";
    if (!bad && !json_float(j, "momentum", &c->momentum)) bad = "momentum";
    if (!bad && !json_float(j, "beta1", &c->beta1)) bad = "beta1";
    if (!bad && !json_float(j, "beta2", &c->beta2)) bad = "beta2";
    if (!bad && !json_float(j, "eps", &c->eps)) bad = "eps";
    if (!bad && !json_float(j, "weight_decay", &c->weight_decay)) bad = "weight_decay";
    if (!bad && !json_float(j, "warmup_epochs", &c->warmup_epochs)) bad = "warmup_epochs";
    if (!bad && !json_int(j, "step_epochs", INT_MIN, INT_MAX, &se)) bad = "step_epochs";
    if (!bad && !json_float(j, "step_gamma", &c->step_gamma)) bad = "step_gamma";
    if (!bad && !json_float(j, "min_lr", &c->min_lr)) bad = "min_lr";
    if (!bad && !json_int(j, "t", 0, KD_MAX_EXACT, &tt)) bad = "t";
    c->step_epochs = (int)se;
    *t = (long long)tt;
    cJSON_Delete(j);
    return bad;
}

/* ---------------------------------------------------------------- save */

kd_status kd_checkpoint_save(const char *path, const kd_model *m, const kd_optimizer *opt, const kd_train_state *st,
                             kd_error *err) {
    if (!path || !m) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_checkpoint_save: no path or no model");
    if (!m->yaml)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: model %s has no YAML description to store", path, m->name);
    if (opt && (opt->n != m->n_params || !opt->m || (opt->cfg.type == KD_OPT_ADAMW) != (opt->v != NULL)))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: the optimizer does not belong to model %s", path, m->name);
    tensor_list l;
    kd_status s = build_list(&l, m, opt != NULL, opt && opt->v, path, err);
    if (s) return s;
    const float *base[BLK_COUNT] = {m->params, m->buffers, opt ? opt->m : NULL, opt ? opt->v : NULL};
    /* A checkpoint never holds NaN/inf: the loader would refuse it, and the last good one must
     * not be replaced by garbage. */
    for (int i = 0; i < l.n; i++) {
        size_t k = kd_st_first_nonfinite(base[l.t[i].block] + l.t[i].off, l.t[i].n);
        if (k < l.t[i].n) {
            s = kd_error_set(err, KD_STATUS_DIVERGED, "%s: refusing to write a checkpoint: tensor %s holds %g at element %zu",
                             path, l.t[i].name, (double)base[l.t[i].block][l.t[i].off + k], k);
            free(l.t);
            return s;
        }
    }
    if ((st && !isfinite(st->best_val_acc)) || (opt && !config_finite(&opt->cfg))) {
        free(l.t);
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: %s holds NaN or inf", path,
                            st && !isfinite(st->best_val_acc) ? "best_val_acc" : "the optimizer configuration");
    }

    char *optjson = opt ? optimizer_json(opt) : NULL;
    kd_st_writer *w = !opt || optjson ? kd_st_writer_create() : NULL;
    if (!w) {
        free(optjson);
        free(l.t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory building the header", path);
    }
    kd_st_meta(w, "format", "distill");
    kd_st_meta(w, "version", "1");
    kd_st_meta(w, "model_yaml", m->yaml);
    if (optjson) kd_st_meta(w, "optimizer", optjson);
    free(optjson);
    if (st) {
        kd_st_metaf(w, "epoch", "%d", st->epoch);
        kd_st_metaf(w, "step", "%lld", st->step);
        kd_st_metaf(w, "rng_state", "%" PRIu64, st->rng.state);
        kd_st_metaf(w, "rng_inc", "%" PRIu64, st->rng.inc);
        kd_st_metaf(w, "best_val_acc", "%.9g", (double)st->best_val_acc);
    }
    for (int i = 0; i < l.n; i++)
        kd_st_add(w, l.t[i].name, "F32", l.t[i].ndim, l.t[i].shape, base[l.t[i].block] + l.t[i].off);
    s = kd_st_write(w, path, err);
    kd_st_writer_free(w);
    free(l.t);
    return s;
}

/* ---------------------------------------------------------------- parse and validate a file */

typedef struct parsed {
    kd_st_file f;              /* framing and tensor table, validated by the safetensors layer */
    const char *yaml;
    /* optimizer and training state, when the metadata holds them (validated) */
    int has_opt, has_state, legacy_opt;
    kd_optim_config ocfg;
    long long ot;
    kd_train_state st;
} parsed;

static const char *meta_str(const parsed *p, const char *key) { return kd_st_meta_get(&p->f, key); }

static kd_status parse_fail(parsed *p, kd_status s) {
    kd_st_close(&p->f);
    return s;
}

/* The training state in the metadata: all of it or none of it. */
static kd_status parse_state(parsed *p, const char *path, kd_error *err) {
    static const char *keys[] = {"epoch", "step", "rng_state", "rng_inc", "best_val_acc"};
    int present = 0;
    for (int i = 0; i < 5; i++) present += meta_str(p, keys[i]) != NULL;
    if (present == 0) return KD_STATUS_OK;
    uint64_t ep, step, rs, ri;
    const char *bad = NULL;
    if (!kd_st_meta_u64(&p->f, "epoch", INT_MAX, &ep)) bad = "epoch";
    else if (!kd_st_meta_u64(&p->f, "step", LLONG_MAX, &step)) bad = "step";
    else if (!kd_st_meta_u64(&p->f, "rng_state", UINT64_MAX, &rs)) bad = "rng_state";
    else if (!kd_st_meta_u64(&p->f, "rng_inc", UINT64_MAX, &ri) || !(ri & 1)) bad = "rng_inc"; /* PCG: odd */
    if (!bad) {
        const char *bv = meta_str(p, "best_val_acc");
        char *end = NULL;
        float acc = bv ? strtof(bv, &end) : NAN;
        if (!bv || !*bv || *end || !(acc == -1.f || (acc >= 0.f && acc <= 1.f))) bad = "best_val_acc"; /* -1: none yet */
        p->st.best_val_acc = acc;
    }
    if (bad)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: training state in the metadata: \"%s\" is %s", path, bad,
                            meta_str(p, bad) ? "malformed" : "missing");
    p->st.epoch = (int)ep;
    p->st.step = (long long)step;
    p->st.rng.state = rs;
    p->st.rng.inc = ri;
    p->has_state = 1;
    return KD_STATUS_OK;
}

/* Reads and validates the whole file: the container (kd_st_read), then what makes it a Distill
 * checkpoint: format and version, model YAML, optimizer and training state, F32 tensors only. */
static kd_status parse_file(parsed *p, const char *path, kd_error *err) {
    memset(p, 0, sizeof *p);
    kd_status st = kd_st_read(&p->f, path, err);
    if (st) return st;
    const char *fmt = meta_str(p, "format");
    p->yaml = meta_str(p, "model_yaml");
    if (!fmt || strcmp(fmt, "distill") != 0 || !p->yaml)
        return parse_fail(p, kd_error_set(err, KD_STATUS_BAD_FILE,
                                          "%s: not a Distill checkpoint (%s; a safetensors file from elsewhere needs "
                                          "a model description)", path,
                                          !p->yaml ? "no model_yaml in its metadata" : "metadata format is not \"distill\""));
    const char *ver = meta_str(p, "version");
    if (!ver || strcmp(ver, "1") != 0)
        return parse_fail(p, kd_error_set(err, KD_STATUS_BAD_FILE,
                                          "%s: Distill checkpoint format version %s; this build reads version 1", path,
                                          ver ? ver : "(missing)"));
    const char *os = meta_str(p, "optimizer");
    uint64_t legacy_t;
    if (os && (!strcmp(os, "sgd") || !strcmp(os, "adamw"))) {
        /* Files written before the configuration was stored: only the type, and the step count
         * in "optimizer_t"; the run's own configuration is kept on resume. */
        if (!kd_st_meta_u64(&p->f, "optimizer_t", LLONG_MAX, &legacy_t))
            return parse_fail(p, kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"optimizer_t\" is %s", path,
                                              meta_str(p, "optimizer_t") ? "malformed" : "missing"));
        p->ocfg.type = !strcmp(os, "adamw") ? KD_OPT_ADAMW : KD_OPT_SGD;
        p->ot = (long long)legacy_t;
        p->has_opt = p->legacy_opt = 1;
    } else if (os) {
        const char *bad = parse_optimizer(os, &p->ocfg, &p->ot);
        if (bad)
            return parse_fail(p, kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"optimizer\" is malformed (%s)",
                                              path, bad));
        p->has_opt = 1;
    }
    if ((st = parse_state(p, path, err))) return parse_fail(p, st);
    /* after the metadata, so that another kind of safetensors file (an int8 model) is named as such */
    for (int i = 0; i < p->f.n; i++)
        if (strcmp(p->f.t[i].dtype, "F32") != 0)
            return parse_fail(p, kd_error_set(err, KD_STATUS_BAD_FILE,
                                              "%s: tensor %s has dtype %s; Distill checkpoints hold only F32", path,
                                              p->f.t[i].name, p->f.t[i].dtype));
    return KD_STATUS_OK;
}

/* ---------------------------------------------------------------- load */

/* Load a parsed file into m (and opt/st): check every tensor against the model, stage the data,
 * and only then copy it in, so a failed load leaves the model and optimizer untouched. */
static kd_status load_parsed(parsed *p, const char *path, kd_model *m, kd_optimizer *opt, kd_train_state *st,
                             int *has_state, kd_error *err) {
    if (has_state) *has_state = 0;
    int want = opt && st && p->has_opt && p->has_state;
    if (want && opt->cfg.type != p->ocfg.type)
        return kd_error_set(err, KD_STATUS_MISMATCH, "%s: was trained with %s, this run uses %s", path,
                            kd_opt_type_name(p->ocfg.type), kd_opt_type_name(opt->cfg.type));
    if (want && (opt->n != m->n_params || !opt->m || (opt->cfg.type == KD_OPT_ADAMW && !opt->v)))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: the optimizer does not belong to model %s", path, m->name);
    /* Moments in the file are checked (names, shapes, finite) even when not wanted. */
    int with_m = p->has_opt, with_v = p->has_opt && p->ocfg.type == KD_OPT_ADAMW;
    tensor_list l;
    kd_status s = build_list(&l, m, with_m, with_v, path, err);
    if (s) return s;
    size_t sizes[BLK_COUNT] = {m->n_params, m->n_buffers, with_m ? m->n_params : 0, with_v ? m->n_params : 0};
    float *stage[BLK_COUNT] = {0};
    for (int b = 0; b < BLK_COUNT; b++)
        if (!(stage[b] = malloc(sizes[b] * sizeof(float) + 1))) s = kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < l.n && !s; i++) {
        const tensor_ref *r = &l.t[i];
        char want_s[64], got_s[160];
        kd_st_shape_str(want_s, sizeof want_s, r->shape, r->ndim);
        kd_st_tensor *e = kd_st_find(&p->f, r->name);
        if (!e) {
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: missing tensor %s %s that model %s needs", path, r->name,
                             want_s, m->name);
            break;
        }
        e->used = 1;
        int same = e->ndim == r->ndim;
        for (int k = 0; same && k < r->ndim; k++) same = e->shape[k] == r->shape[k];
        if (!same) {
            kd_st_shape_str(got_s, sizeof got_s, e->shape, e->ndim);
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s has shape %s, the model expects %s", path, r->name, got_s,
                             want_s);
            break;
        }
        float *dst = stage[r->block] + r->off;
        size_t k = kd_st_copy_f32(&p->f, e, dst);
        if (k < r->n)
            s = kd_error_set(err, KD_STATUS_BAD_FILE,
                             "%s: tensor %s holds NaN or inf (%g at element %zu); a checkpoint must never contain them",
                             path, r->name, (double)dst[k], k);
    }
    for (int i = 0; i < p->f.n && !s; i++)
        if (!p->f.t[i].used)
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s does not belong to model %s%s", path,
                             p->f.t[i].name, m->name,
                             !strncmp(p->f.t[i].name, "optim.", 6) && !p->has_opt ? " (no optimizer in the metadata)" : "");
    if (!s) {
        if (m->n_params) memcpy(m->params, stage[BLK_PARAMS], m->n_params * sizeof(float));
        if (m->n_buffers) memcpy(m->buffers, stage[BLK_BUFFERS], m->n_buffers * sizeof(float));
        if (want && m->n_params) {
            memcpy(opt->m, stage[BLK_M], m->n_params * sizeof(float));
            if (with_v) memcpy(opt->v, stage[BLK_V], m->n_params * sizeof(float));
        }
        if (want) {
            if (!p->legacy_opt) opt->cfg = p->ocfg;
            opt->t = p->ot;
            *st = p->st;
            if (has_state) *has_state = 1;
        }
    }
    for (int b = 0; b < BLK_COUNT; b++) free(stage[b]);
    free(l.t);
    return s;
}

kd_status kd_checkpoint_load_into(const char *path, kd_model *m, kd_optimizer *opt, kd_train_state *st, int *has_state,
                                  kd_error *err) {
    if (has_state) *has_state = 0;
    if (!path || !m) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_checkpoint_load_into: no path or no model");
    parsed p;
    kd_status s = parse_file(&p, path, err);
    if (s) return s;
    s = load_parsed(&p, path, m, opt, st, has_state, err);
    kd_st_close(&p.f);
    return s;
}

kd_status kd_checkpoint_load(const char *path, kd_model **out, kd_error *err) {
    if (!out || !path) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_checkpoint_load: no path or no output");
    *out = NULL;
    parsed p;
    kd_status s = parse_file(&p, path, err);
    if (s) return s;
    kd_model *m = NULL;
    s = kd_model_from_yaml(&m, p.yaml, path, 0, err);
    if (!s) s = load_parsed(&p, path, m, NULL, NULL, NULL, err);
    kd_st_close(&p.f);
    if (s) {
        kd_model_free(m);
        return s;
    }
    *out = m;
    return KD_STATUS_OK;
}
