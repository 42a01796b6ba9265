/* Model descriptions in YAML, reader and writer. The reader (libyaml's document API) parses the
 * layer list, resolves layer inputs by name, infers every shape and reports the first problem with
 * its file, line and layer; the writer (model_yaml_write.c) turns a layer table back into that text.
 * Grammar: a mapping with `name`, `input: [C, H, W]` and `layers:`, a sequence of mappings, each
 * with `type` and the type's options (see docs/MODELS.md). The reader builds a kd_model, so this
 * container sits beside src/nn rather than below it: it calls nn's layout code (model_internal.h). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "distill/data.h" /* KD_CLASS_NAME_MAX */
#include "distill/fileio.h"
#include "distill/model.h"
#include "distill/yaml_doc.h"
#include "format/model_yaml_internal.h"
#include "nn/model_internal.h"

struct kd_zoo_entry {
    const char *name;
    const char *yaml;
};
extern const struct kd_zoo_entry kd_zoo_table[]; /* generated: build/zoo_data.c */

const char *kd_model_zoo_yaml(const char *name) {
    for (int i = 0; kd_zoo_table[i].name; i++)
        if (strcmp(kd_zoo_table[i].name, name) == 0) return kd_zoo_table[i].yaml;
    return NULL;
}

const char *kd_model_zoo_name(int i) {
    for (int j = 0; kd_zoo_table[j].name; j++)
        if (j == i) return kd_zoo_table[j].name;
    return NULL;
}

static const char *const layer_names[KD_LAYER_COUNT] = {
    [KD_LAYER_CONV2D] = "conv2d",     [KD_LAYER_LINEAR] = "linear",
    [KD_LAYER_MAXPOOL] = "maxpool",   [KD_LAYER_AVGPOOL] = "avgpool",
    [KD_LAYER_GLOBAL_AVGPOOL] = "global_avgpool",
    [KD_LAYER_BATCHNORM] = "batchnorm", [KD_LAYER_RELU] = "relu",
    [KD_LAYER_GELU] = "gelu",         [KD_LAYER_DROPOUT] = "dropout",
    [KD_LAYER_FLATTEN] = "flatten",   [KD_LAYER_ADD] = "add",
    [KD_LAYER_CONCAT] = "concat",     [KD_LAYER_CLIP] = "clip",
    [KD_LAYER_LEAKY_RELU] = "leaky_relu", [KD_LAYER_SIGMOID] = "sigmoid",
    [KD_LAYER_HARD_SIGMOID] = "hard_sigmoid", [KD_LAYER_HARD_SWISH] = "hard_swish",
    [KD_LAYER_MUL] = "mul",           [KD_LAYER_PAD] = "pad",
    [KD_LAYER_SCALE] = "scale",
};

const char *kd_layer_type_name(kd_layer_type t) {
    return (t >= 0 && t < KD_LAYER_COUNT) ? layer_names[t] : "?";
}

typedef struct parse_ctx {
    yaml_document_t *doc;
    const char *source;
    kd_error *err;
    int classes;            /* what `out: classes` stands for */
    int auto_input;         /* the input shape came from `input: auto` */
} parse_ctx;

/* What `input: auto` and `out: classes` stand for when the data does not say (kd_model_fit's 0s):
 * the shape and classes of the zoo's first data sets, MNIST and Fashion-MNIST. */
enum { FIT_DEFAULT_C = 1, FIT_DEFAULT_H = 28, FIT_DEFAULT_W = 28, FIT_DEFAULT_CLASSES = 10 };

static kd_status fail(parse_ctx *p, yaml_node_t *at, const char *fmt, const char *a, const char *b) {
    char what[300];
    snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
    if (at)
        return kd_error_set(p->err, KD_STATUS_BAD_MODEL, "%s:%zu: %s", p->source,
                            (size_t)at->start_mark.line + 1, what);
    return kd_error_set(p->err, KD_STATUS_BAD_MODEL, "%s: %s", p->source, what);
}

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *kv = map->data.mapping.pairs.start; kv < map->data.mapping.pairs.top; kv++) {
        yaml_node_t *k = yaml_document_get_node(doc, kv->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, kv->value);
    }
    return NULL;
}

/* Integer option: absent -> def; present but not an integer in [lo, hi] -> error. */
static kd_status get_int(parse_ctx *p, yaml_node_t *map, const char *key, int def, int lo, int hi,
                        const char *layer, int *out) {
    yaml_node_t *n = map_get(p->doc, map, key);
    if (!n) {
        *out = def;
        return KD_STATUS_OK;
    }
    const char *s = kd_yaml_node_scalar(n);
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        char msg[200];
        snprintf(msg, sizeof msg, "layer %%s: option '%s' must be an integer in [%d, %d]%%s", key, lo, hi);
        return fail(p, n, msg, layer, "");
    }
    *out = (int)v;
    return KD_STATUS_OK;
}

/* `out:` of conv2d and linear: an integer in [1, hi], or `classes`, the class count (p->classes). */
static kd_status get_out(parse_ctx *p, yaml_node_t *map, int hi, const char *layer, int *out) {
    const char *s = kd_yaml_node_scalar(map_get(p->doc, map, "out"));
    if (!s || strcmp(s, "classes")) return get_int(p, map, "out", 0, 1, hi, layer, out);
    if (p->classes > hi) {
        char buf[64];
        snprintf(buf, sizeof buf, "%d classes (at most %d)", p->classes, hi);
        return fail(p, map_get(p->doc, map, "out"), "layer %s: 'out: classes' is %s", layer, buf);
    }
    *out = p->classes;
    return KD_STATUS_OK;
}

static kd_status get_float(parse_ctx *p, yaml_node_t *map, const char *key, float def, float lo, float hi,
                          const char *layer, float *out) {
    yaml_node_t *n = map_get(p->doc, map, key);
    if (!n) {
        *out = def;
        return KD_STATUS_OK;
    }
    const char *s = kd_yaml_node_scalar(n);
    char *end = NULL;
    float v = s ? strtof(s, &end) : 0.f;
    if (!s || !*s || *end || !(v >= lo && v <= hi)) {
        char msg[200];
        snprintf(msg, sizeof msg, "layer %%s: option '%s' must be a number in [%g, %g]%%s", key, lo, hi);
        return fail(p, n, msg, layer, "");
    }
    *out = v;
    return KD_STATUS_OK;
}

static kd_status get_bool(parse_ctx *p, yaml_node_t *map, const char *key, int def, const char *layer,
                         int *out) {
    yaml_node_t *n = map_get(p->doc, map, key);
    const char *s = kd_yaml_node_scalar(n);
    if (!n) {
        *out = def;
        return KD_STATUS_OK;
    }
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))) *out = 1;
    else if (s && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))) *out = 0;
    else return fail(p, n, "layer %s: option '%s' must be true or false", layer, key);
    return KD_STATUS_OK;
}

/* Keys each layer type accepts, so a typo ("kernal") is an error instead of being ignored. */
static int key_allowed(kd_layer_type t, const char *k) {
    if (!strcmp(k, "name") || !strcmp(k, "type") || !strcmp(k, "inputs") || !strcmp(k, "input")) return 1;
    switch (t) {
    case KD_LAYER_CONV2D:
        return !strcmp(k, "out") || !strcmp(k, "kernel") || !strcmp(k, "stride") || !strcmp(k, "pad") ||
               !strcmp(k, "groups") || !strcmp(k, "bias") || !strcmp(k, "dilation");
    case KD_LAYER_LINEAR: return !strcmp(k, "out") || !strcmp(k, "bias");
    case KD_LAYER_AVGPOOL:
        if (!strcmp(k, "count_pad")) return 1;
        /* fall through */
    case KD_LAYER_MAXPOOL:
        return !strcmp(k, "kernel") || !strcmp(k, "stride") || !strcmp(k, "pad") || !strcmp(k, "ceil_mode");
    case KD_LAYER_BATCHNORM: return !strcmp(k, "eps") || !strcmp(k, "momentum");
    case KD_LAYER_DROPOUT: return !strcmp(k, "p");
    case KD_LAYER_CLIP: return !strcmp(k, "lo") || !strcmp(k, "hi");
    case KD_LAYER_LEAKY_RELU: return !strcmp(k, "alpha");
    case KD_LAYER_HARD_SIGMOID: return !strcmp(k, "alpha") || !strcmp(k, "beta");
    case KD_LAYER_PAD: return !strcmp(k, "pads") || !strcmp(k, "value");
    case KD_LAYER_SCALE: return !strcmp(k, "per_channel");
    default: return 0;
    }
}

/* `pads: [top, left, bottom, right]` of a pad layer, each in [0, KD_PAD_MAX]; required. */
_Static_assert(KD_PAD_MAX == 1024, "get_pads' message says 1024");
static kd_status get_pads(parse_ctx *p, yaml_node_t *map, const char *layer, int pads[4]) {
    yaml_node_t *n = map_get(p->doc, map, "pads");
    int cnt = 0;
    if (n && n->type == YAML_SEQUENCE_NODE)
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            const char *v = kd_yaml_node_scalar(yaml_document_get_node(p->doc, *it));
            char *end = NULL;
            errno = 0;
            long x = v ? strtol(v, &end, 10) : -1;
            if (cnt == 4 || !v || !*v || *end || errno || x < 0 || x > KD_PAD_MAX) { cnt = -1; break; }
            pads[cnt++] = (int)x;
        }
    if (cnt != 4)
        return fail(p, n ? n : map, "layer %s: pad needs 'pads: [top, left, bottom, right]', integers in [0, 1024]%s",
                    layer, NULL);
    return KD_STATUS_OK;
}

static int find_layer(const kd_model *m, int upto, const char *name) {
    for (int i = upto - 1; i >= 0; i--)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    return -2;
}

/* Shape inference for layer i (inputs already resolved). */
static kd_status infer_shape(parse_ctx *p, yaml_node_t *at, kd_model *m, int i) {
    kd_layer *L = &m->layers[i];
    int src = L->inputs[0];
    if (src == KD_MODEL_INPUT) {
        L->in_c = m->in_c; L->in_h = m->in_h; L->in_w = m->in_w;
    } else {
        L->in_c = m->layers[src].c; L->in_h = m->layers[src].h; L->in_w = m->layers[src].w;
    }
    char buf[160];
    L->c = L->in_c; L->h = L->in_h; L->w = L->in_w;
    switch (L->type) {
    case KD_LAYER_CONV2D: {
        if (L->in_c % L->groups || L->out % L->groups) {
            snprintf(buf, sizeof buf, "groups=%d must divide input channels %d and out %d", L->groups,
                     L->in_c, L->out);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        int span = L->dilation * (L->kernel - 1) + 1; /* the kernel's extent with its taps dilated */
        int ho = kd_conv2d_out_size(L->in_h, span, L->stride, L->pad);
        int wo = kd_conv2d_out_size(L->in_w, span, L->stride, L->pad);
        if (ho < 1 || wo < 1) {
            if (L->dilation > 1)
                snprintf(buf, sizeof buf, "kernel %d (dilation %d, pad %d) does not fit the %dx%d input", L->kernel,
                         L->dilation, L->pad, L->in_h, L->in_w);
            else
                snprintf(buf, sizeof buf, "kernel %d (pad %d) does not fit the %dx%d input", L->kernel, L->pad,
                         L->in_h, L->in_w);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        long long weights = kd_size_mul(kd_size_mul(L->out, L->in_c / L->groups), kd_size_mul(L->kernel, L->kernel));
        if (weights > KD_MODEL_MAX_PARAMS) {
            snprintf(buf, sizeof buf, "%lld weights (at most %d)", weights, KD_MODEL_MAX_PARAMS);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        L->c = L->out; L->h = ho; L->w = wo;
        L->macs = kd_size_mul(kd_size_mul(ho, wo), weights);
        break;
    }
    case KD_LAYER_LINEAR:
        L->in_c = (int)kd_layer_in_size(L); L->in_h = L->in_w = 1;  /* implicit flatten (<= KD_MODEL_MAX_ELEMS) */
        if (kd_size_mul(L->in_c, L->out) > KD_MODEL_MAX_PARAMS) {
            snprintf(buf, sizeof buf, "%lld weights (at most %d)", (long long)kd_size_mul(L->in_c, L->out),
                     KD_MODEL_MAX_PARAMS);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        L->c = L->out; L->h = L->w = 1;
        L->macs = kd_size_mul(L->in_c, L->out);
        break;
    case KD_LAYER_MAXPOOL:
    case KD_LAYER_AVGPOOL:
        if (2 * L->pad > L->kernel) { /* PyTorch's rule: a window is never all padding */
            snprintf(buf, sizeof buf, "pad %d is more than half the window %d", L->pad, L->kernel);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        L->h = kd_pool_out_size(L->in_h, L->kernel, L->stride, L->pad, L->ceil_mode);
        L->w = kd_pool_out_size(L->in_w, L->kernel, L->stride, L->pad, L->ceil_mode);
        if (L->h < 1 || L->w < 1) {
            snprintf(buf, sizeof buf, "window %d is larger than the %dx%d input (padded by %d)", L->kernel, L->in_h,
                     L->in_w, L->pad);
            return fail(p, at, "layer %s: %s", L->name, buf);
        }
        break;
    case KD_LAYER_GLOBAL_AVGPOOL: L->h = L->w = 1; break;
    case KD_LAYER_FLATTEN: L->c = (int)kd_layer_in_size(L); L->h = L->w = 1; break;
    case KD_LAYER_ADD:
    case KD_LAYER_MUL: { /* broadcasting: each dimension equal, or 1 in one of the inputs */
        int a[3] = {L->in_c, L->in_h, L->in_w}, b[3], o[3];
        kd_layer_input_shape(m, L, 1, &b[0], &b[1], &b[2]);
        for (int d = 0; d < 3; d++) {
            if (a[d] != b[d] && a[d] != 1 && b[d] != 1) {
                snprintf(buf, sizeof buf,
                         "inputs have different shapes [%d,%d,%d] and [%d,%d,%d] (each dimension must be equal, or "
                         "1 in one of them)", a[0], a[1], a[2], b[0], b[1], b[2]);
                return fail(p, at, "layer %s: %s", L->name, buf);
            }
            o[d] = a[d] > b[d] ? a[d] : b[d];
        }
        L->c = o[0]; L->h = o[1]; L->w = o[2];
        if (L->type == KD_LAYER_MUL) L->macs = kd_size_mul(kd_size_mul(L->c, L->h), L->w);
        break;
    }
    case KD_LAYER_CONCAT: {
        long long c = 0;
        for (int k = 0; k < L->n_inputs; k++) {
            int ck, hk, wk;
            kd_layer_input_shape(m, L, k, &ck, &hk, &wk);
            if (hk != L->in_h || wk != L->in_w) {
                snprintf(buf, sizeof buf, "input %d is %dx%d, input 1 is %dx%d (concat joins channels of equal size)",
                         k + 1, hk, wk, L->in_h, L->in_w);
                return fail(p, at, "layer %s: %s", L->name, buf);
            }
            c += ck;
        }
        if (c > KD_MODEL_MAX_ELEMS) c = KD_MODEL_MAX_ELEMS + 1LL; /* refused below */
        L->c = (int)c;
        break;
    }
    case KD_LAYER_PAD:
        L->h = L->in_h + L->pads[0] + L->pads[2];
        L->w = L->in_w + L->pads[1] + L->pads[3];
        break;
    case KD_LAYER_SCALE:
        L->out = L->out ? L->in_c : 1; /* parse_layer: 1 = per channel, 0 = one scalar pair */
        L->macs = kd_size_mul(kd_size_mul(L->c, L->h), L->w);
        break;
    default: break;
    }
    /* every product of an output's dimensions (flatten, linear, the next layer's sizes) fits an int */
    long long elems = kd_size_mul(kd_size_mul(L->c, L->h), L->w);
    if (elems > KD_MODEL_MAX_ELEMS) {
        snprintf(buf, sizeof buf, "output [%d,%d,%d] has %lld elements per sample (at most %d)", L->c, L->h, L->w,
                 elems, KD_MODEL_MAX_ELEMS);
        return fail(p, at, "layer %s: %s", L->name, buf);
    }
    return KD_STATUS_OK;
}

/* One list of `normalize:`: exactly m->in_c finite numbers, each > 0 for std; *out malloc'd. */
static kd_status parse_norm_list(parse_ctx *p, kd_model *m, yaml_node_t *map, const char *key, float **out) {
    yaml_node_t *n = map_get(p->doc, map, key);
    char what[160];
    snprintf(what, sizeof what, "'normalize: %s' must be a list of %d finite numbers (one per input channel)%s", key,
             m->in_c, strcmp(key, "std") ? "" : ", each > 0");
    if (!n || n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top - n->data.sequence.items.start != m->in_c)
        return fail(p, n ? n : map, "%s%s", what, NULL);
    float *v = malloc((size_t)m->in_c * sizeof *v);
    if (!v) return kd_error_set(p->err, KD_STATUS_NO_MEMORY, "out of memory");
    *out = v; /* freed with the model */
    for (int c = 0; c < m->in_c; c++) {
        yaml_node_t *item = yaml_document_get_node(p->doc, n->data.sequence.items.start[c]);
        const char *s = kd_yaml_node_scalar(item);
        char *end = NULL;
        v[c] = s ? strtof(s, &end) : 0.f;
        if (!s || !*s || *end || !isfinite(v[c]) || (!strcmp(key, "std") && !(v[c] > 0.f)))
            return fail(p, item ? item : n, "%s%s", what, NULL);
    }
    return KD_STATUS_OK;
}

/* The model's input normalisation, `normalize: {mean: [..], std: [..]}` (optional). */
static kd_status parse_normalize(parse_ctx *p, kd_model *m, yaml_node_t *node) {
    if (!node) return KD_STATUS_OK;
    if (node->type != YAML_MAPPING_NODE)
        return fail(p, node, "'normalize' must be a mapping {mean: [..], std: [..]}%s%s", NULL, NULL);
    for (yaml_node_pair_t *kv = node->data.mapping.pairs.start; kv < node->data.mapping.pairs.top; kv++) {
        const char *k = kd_yaml_node_scalar(yaml_document_get_node(p->doc, kv->key));
        if (!k || (strcmp(k, "mean") && strcmp(k, "std")))
            return fail(p, node, "'normalize': unknown key '%s' (it has mean and std)%s", k ? k : "?", NULL);
    }
    kd_status st = parse_norm_list(p, m, node, "mean", &m->norm_mean);
    return st ? st : parse_norm_list(p, m, node, "std", &m->norm_std);
}

/* A shape error of a model whose input shape came from `input: auto` says which shape that was, so
 * the user sees that the data (not the file) is what the model cannot take. */
static kd_status shape_error(parse_ctx *p, const kd_model *m, kd_status st) {
    if (st && p->auto_input && p->err) {
        char inner[sizeof p->err->msg];
        snprintf(inner, sizeof inner, "%s", p->err->msg);
        kd_error_set(p->err, st, "model %s cannot take %dx%dx%d input: %s", m->name, m->in_c, m->in_h, m->in_w, inner);
    }
    return st;
}

/* names[0..n) copied into one block (kd_dataset_set_class_names' layout: the pointers, then the
 * strings; one free), or NULL when out of memory; the names are checked already. */
char **kd_model_yaml_class_names_copy(const char *const *names, int n) {
    kd_dataset tmp = {.n_classes = n};
    return kd_dataset_set_class_names(&tmp, names, n, NULL) ? NULL : tmp.class_names;
}

/* `input_type: pixels|values` and `class_names: [..]` (optional; the latter after the layers, which
 * give the class count). */
static kd_status parse_data_keys(parse_ctx *p, kd_model *m, yaml_node_t *root) {
    yaml_node_t *it = map_get(p->doc, root, "input_type");
    const char *t = kd_yaml_node_scalar(it);
    if (it) {
        if (t && !strcmp(t, "pixels")) m->input_values = 0;
        else if (t && !strcmp(t, "values")) m->input_values = 1;
        else return fail(p, it, "'input_type' must be pixels (8-bit images) or values (float arrays, tables)%s%s", NULL, NULL);
    }
    yaml_node_t *cn = map_get(p->doc, root, "class_names");
    if (!cn) return KD_STATUS_OK;
    char buf[96];
    long n = cn->type == YAML_SEQUENCE_NODE ? (long)(cn->data.sequence.items.top - cn->data.sequence.items.start) : -1;
    if (n != m->n_classes) {
        if (n < 0) snprintf(buf, sizeof buf, "'class_names' must be a list of %d names", m->n_classes);
        else snprintf(buf, sizeof buf, "'class_names' has %ld names, the model has %d classes", n, m->n_classes);
        return fail(p, cn, "%s%s", buf, NULL);
    }
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) return kd_error_set(p->err, KD_STATUS_NO_MEMORY, "out of memory");
    kd_status st = KD_STATUS_OK;
    for (long i = 0; i < n && !st; i++) {
        yaml_node_t *item = yaml_document_get_node(p->doc, cn->data.sequence.items.start[i]);
        const char *why = (names[i] = kd_yaml_node_scalar(item)) ? kd_class_name_problem(names[i]) : "is not a string";
        if (why) {
            snprintf(buf, sizeof buf, "class_names[%ld] %s", i, why);
            st = fail(p, item ? item : cn, "%s%s", buf, NULL);
        }
    }
    if (!st && !(m->class_names = kd_model_yaml_class_names_copy(names, (int)n)))
        st = kd_error_set(p->err, KD_STATUS_NO_MEMORY, "out of memory");
    free(names);
    return st;
}

static kd_status parse_layer(parse_ctx *p, kd_model *m, int i, yaml_node_t *node, int *type_count) {
    kd_layer *L = &m->layers[i];
    char idx[32];
    snprintf(idx, sizeof idx, "#%d", i + 1);
    if (node->type != YAML_MAPPING_NODE) return fail(p, node, "layer %s: expected a mapping {type: ...}", idx, NULL);
    const char *type = kd_yaml_node_scalar(map_get(p->doc, node, "type"));
    if (!type) return fail(p, node, "layer %s: missing 'type'", idx, NULL);
    int t = -1;
    for (int k = 0; k < KD_LAYER_COUNT; k++)
        if (!strcmp(layer_names[k], type)) t = k;
    if (t < 0)
        return fail(p, node,
                    "layer %s: unknown layer type '%s' (known: conv2d, linear, maxpool, avgpool, "
                    "global_avgpool, batchnorm, relu, gelu, dropout, flatten, add, concat, clip, leaky_relu, sigmoid, "
                    "hard_sigmoid, hard_swish, mul, pad, scale)", idx, type);
    L->type = (kd_layer_type)t;
    const char *name = kd_yaml_node_scalar(map_get(p->doc, node, "name"));
    if (name) {
        if (strlen(name) >= KD_NAME_MAX || !*name || strchr(name, ' ') || strchr(name, '"'))
            return fail(p, node, "layer %s: bad name '%s' (1-127 characters, no spaces or quotes)", idx, name);
        snprintf(L->name, sizeof L->name, "%s", name);
    } else {
        snprintf(L->name, sizeof L->name, "%s%d", type, ++type_count[t]);
    }
    if (find_layer(m, i, L->name) >= 0) return fail(p, node, "layer %s: duplicate layer name '%s'", idx, L->name);
    /* unknown keys */
    for (yaml_node_pair_t *kv = node->data.mapping.pairs.start; kv < node->data.mapping.pairs.top; kv++) {
        const char *k = kd_yaml_node_scalar(yaml_document_get_node(p->doc, kv->key));
        if (!k || !key_allowed(L->type, k)) return fail(p, node, "layer %s: unknown option '%s'", L->name, k ? k : "?");
    }
    kd_status st = KD_STATUS_OK;
    const char *n = L->name;
    switch (L->type) {
    case KD_LAYER_CONV2D:
        if (!map_get(p->doc, node, "out")) return fail(p, node, "layer %s: conv2d needs 'out' (output channels)", n, NULL);
        if ((st = get_out(p, node, 65536, n, &L->out)) ||
            (st = get_int(p, node, "kernel", 3, 1, KD_CONV_MAX_KERNEL, n, &L->kernel)) ||
            (st = get_int(p, node, "stride", 1, 1, KD_CONV_MAX_STRIDE, n, &L->stride)) ||
            (st = get_int(p, node, "pad", 0, 0, KD_CONV_MAX_PAD, n, &L->pad)) ||
            (st = get_int(p, node, "groups", 1, 1, 65536, n, &L->groups)) ||
            (st = get_int(p, node, "dilation", 1, 1, KD_CONV_MAX_DILATION, n, &L->dilation)) ||
            (st = get_bool(p, node, "bias", 1, n, &L->bias)))
            return st;
        break;
    case KD_LAYER_LINEAR:
        if (!map_get(p->doc, node, "out")) return fail(p, node, "layer %s: linear needs 'out' (output features)", n, NULL);
        if ((st = get_out(p, node, 1 << 20, n, &L->out)) || (st = get_bool(p, node, "bias", 1, n, &L->bias)))
            return st;
        break;
    case KD_LAYER_MAXPOOL:
    case KD_LAYER_AVGPOOL:
        if ((st = get_int(p, node, "kernel", 2, 1, KD_POOL_MAX_KERNEL, n, &L->kernel)) ||
            (st = get_int(p, node, "stride", L->kernel, 1, KD_POOL_MAX_STRIDE, n, &L->stride)) ||
            (st = get_int(p, node, "pad", 0, 0, KD_POOL_MAX_PAD, n, &L->pad)) ||
            (st = get_bool(p, node, "ceil_mode", 0, n, &L->ceil_mode)) ||
            (st = get_bool(p, node, "count_pad", 1, n, &L->count_pad)))
            return st;
        break;
    case KD_LAYER_CLIP:
        if ((st = get_float(p, node, "lo", 0.f, -INFINITY, INFINITY, n, &L->lo)) ||
            (st = get_float(p, node, "hi", 6.f, -INFINITY, INFINITY, n, &L->hi)))
            return st;
        if (!(L->lo <= L->hi)) return fail(p, node, "layer %s: clip needs lo <= hi%s", n, NULL);
        break;
    case KD_LAYER_LEAKY_RELU:
        if ((st = get_float(p, node, "alpha", 0.01f, -100.f, 100.f, n, &L->alpha))) return st;
        break;
    case KD_LAYER_HARD_SIGMOID:
        if ((st = get_float(p, node, "alpha", 0.2f, -100.f, 100.f, n, &L->alpha)) ||
            (st = get_float(p, node, "beta", 0.5f, -100.f, 100.f, n, &L->beta)))
            return st;
        break;
    case KD_LAYER_PAD:
        if ((st = get_pads(p, node, n, L->pads)) ||
            (st = get_float(p, node, "value", 0.f, -FLT_MAX, FLT_MAX, n, &L->value)))
            return st;
        break;
    case KD_LAYER_SCALE: /* infer_shape turns this into the parameter count, C or 1 */
        if ((st = get_bool(p, node, "per_channel", 1, n, &L->out))) return st;
        break;
    case KD_LAYER_BATCHNORM:
        if ((st = get_float(p, node, "eps", 1e-5f, 1e-12f, 1.f, n, &L->eps)) ||
            (st = get_float(p, node, "momentum", 0.1f, 0.f, 1.f, n, &L->momentum)))
            return st;
        break;
    case KD_LAYER_DROPOUT:
        if ((st = get_float(p, node, "p", 0.5f, 0.f, 0.99f, n, &L->p))) return st;
        break;
    default: break;
    }
    /* inputs: default previous layer (or the model input for the first) */
    yaml_node_t *in = map_get(p->doc, node, "inputs");
    if (!in) in = map_get(p->doc, node, "input");
    int two = L->type == KD_LAYER_ADD || L->type == KD_LAYER_MUL, cat = L->type == KD_LAYER_CONCAT;
    int lo = two || cat ? 2 : 1, hi = two ? 2 : cat ? KD_LAYER_MAX_INPUTS : 1;
    if (!in) {
        if (lo == 2) return fail(p, node, "layer %s: %s needs 'inputs: [a, b, ...]'", n, type);
        L->n_inputs = 1;
        L->inputs[0] = i - 1; /* -1 == KD_MODEL_INPUT for the first layer */
    } else {
        const char *names[KD_LAYER_MAX_INPUTS] = {0};
        int cnt = 0;
        if (in->type == YAML_SCALAR_NODE) names[cnt++] = kd_yaml_node_scalar(in);
        else if (in->type == YAML_SEQUENCE_NODE)
            for (yaml_node_item_t *it = in->data.sequence.items.start; it < in->data.sequence.items.top; it++) {
                if (cnt == hi) { cnt = hi + 1; break; }
                names[cnt++] = kd_yaml_node_scalar(yaml_document_get_node(p->doc, *it));
            }
        if (cnt < lo || cnt > hi) {
            char buf[64];
            if (lo == hi) snprintf(buf, sizeof buf, "%d input(s)", lo);
            else snprintf(buf, sizeof buf, "%d to %d inputs", lo, hi);
            return fail(p, in, "layer %s: expects %s", n, buf);
        }
        for (int k = 0; k < cnt; k++) {
            if (!names[k]) return fail(p, in, "layer %s: input names must be strings%s", n, "");
            int j = !strcmp(names[k], "input") ? KD_MODEL_INPUT : find_layer(m, i, names[k]);
            if (j == -2)
                return fail(p, in, "layer %s: input '%s' is not an earlier layer (or 'input')", n, names[k]);
            L->inputs[k] = j;
        }
        L->n_inputs = cnt;
    }
    return shape_error(p, m, infer_shape(p, node, m, i));
}

/* ------------------------------------------------------- auto shapes: the resolved text */

/* A scalar of the text replaced by its value: `input: auto` by [C, H, W], `out: classes` by N. */
typedef struct subst {
    size_t at, end; /* bytes */
    char with[48];
} subst;

/* Byte offset in text[0..len) of a libyaml mark index (it counts characters, the BOM not included). */
static size_t mark_byte(const char *text, size_t len, size_t index) {
    size_t b = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0;
    for (; b < len && index; index--)
        for (b++; b < len && ((unsigned char)text[b] & 0xc0) == 0x80; b++) {}
    return b;
}

/* Add the substitution of scalar node n (whose value is word) unless it is there (an alias names a
 * node twice); 0 if its text is not where libyaml's marks say, plain or quoted. */
static int subst_add(subst *subs, int *n_subs, const char *text, size_t len, yaml_node_t *n, const char *word,
                     const char *with) {
    size_t at = mark_byte(text, len, n->start_mark.index), end = mark_byte(text, len, n->end_mark.index);
    size_t wl = strlen(word);
    for (int k = 0; k < *n_subs; k++)
        if (subs[k].at == at) return 1;
    int plain = end - at == wl && !memcmp(text + at, word, wl);
    int quoted = end - at == wl + 2 && (text[at] == '\'' || text[at] == '"') && text[end - 1] == text[at] &&
                 !memcmp(text + at + 1, word, wl);
    if (end > len || !(plain || quoted)) return 0;
    subst *s = &subs[(*n_subs)++];
    s->at = at;
    s->end = end;
    snprintf(s->with, sizeof s->with, "%s", with);
    return 1;
}

static int subst_cmp(const void *a, const void *b) {
    size_t x = ((const subst *)a)->at, y = ((const subst *)b)->at;
    return x < y ? -1 : x > y;
}

/* The text of a model read from doc (text[0..len)) with `input: auto` and every `out: classes`
 * replaced by what they stood for, the rest (comments, layout) as written: a zoo model resolved to
 * 1x28x28 and 10 classes is the text the zoo had before `auto`, so checkpoints keep their bytes.
 * *yaml NULL (and OK) if a scalar is not where libyaml's marks say; the writer writes the model then. */
static kd_status resolved_text(const parse_ctx *p, const kd_model *m, yaml_node_t *root, const char *text, size_t len,
                               char **yaml) {
    *yaml = NULL;
    subst *subs = calloc((size_t)m->n_layers + 1, sizeof *subs);
    if (!subs) return kd_error_set(p->err, KD_STATUS_NO_MEMORY, "out of memory");
    int n_subs = 0, ok = 1;
    char with[48];
    if (p->auto_input) {
        snprintf(with, sizeof with, "[%d, %d, %d]", m->in_c, m->in_h, m->in_w);
        ok = subst_add(subs, &n_subs, text, len, map_get(p->doc, root, "input"), "auto", with);
    }
    yaml_node_t *layers = map_get(p->doc, root, "layers");
    for (int i = 0; ok && i < m->n_layers; i++) {
        yaml_node_t *o = map_get(p->doc, yaml_document_get_node(p->doc, layers->data.sequence.items.start[i]), "out");
        const char *v = kd_yaml_node_scalar(o);
        if (v && !strcmp(v, "classes") && (m->layers[i].type == KD_LAYER_CONV2D || m->layers[i].type == KD_LAYER_LINEAR)) {
            snprintf(with, sizeof with, "%d", m->layers[i].out);
            ok = subst_add(subs, &n_subs, text, len, o, "classes", with);
        }
    }
    if (!ok) {
        free(subs);
        return KD_STATUS_OK;
    }
    qsort(subs, (size_t)n_subs, sizeof *subs, subst_cmp);
    size_t out_len = len + 1;
    for (int k = 0; k < n_subs; k++) out_len += strlen(subs[k].with);
    char *s = malloc(out_len), *w = s;
    if (!s) {
        free(subs);
        return kd_error_set(p->err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    size_t from = 0;
    for (int k = 0; k < n_subs; k++) {
        memcpy(w, text + from, subs[k].at - from);
        w += subs[k].at - from;
        size_t wl = strlen(subs[k].with);
        memcpy(w, subs[k].with, wl);
        w += wl;
        from = subs[k].end;
    }
    memcpy(w, text + from, len - from);
    w[len - from] = '\0';
    free(subs);
    *yaml = s;
    return KD_STATUS_OK;
}

/* The model in text[0..len) (a file's bytes, NULs included, so that one is an error at its line),
 * `input: auto` and `out: classes` taking fit's shape and class count (the defaults where fit is NULL
 * or says 0). build = 0: the layers and shapes only, no parameter block (a check of a text). */
kd_status kd_model_yaml_parse(kd_model **out, const char *yaml, size_t len, const char *source, uint64_t seed,
                              const kd_model_fit *fit, int build, kd_error *err) {
    *out = NULL;
    if (!source) source = "<model>";
    yaml_document_t doc;
    kd_status st = kd_yaml_load(&doc, yaml, len, source, err);
    if (st == KD_STATUS_BAD_FILE) { /* a malformed model file is a bad model, as every other model error */
        st = KD_STATUS_BAD_MODEL;
        if (err) err->status = st;
    }
    if (st) return st;
    int fit_shape = fit && fit->in_c > 0 && fit->in_h > 0 && fit->in_w > 0;
    parse_ctx p = {&doc, source, err, fit && fit->n_classes > 0 ? fit->n_classes : FIT_DEFAULT_CLASSES, 0};
    kd_model *m = calloc(1, sizeof *m);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!m) { st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory"); goto done; }
    if (!root || root->type != YAML_MAPPING_NODE) {
        st = fail(&p, root, "expected a mapping with 'name', 'input' and 'layers'%s%s", NULL, NULL);
        goto done;
    }
    static const char *const keys[] = {"name", "input", "normalize", "input_type", "class_names", "layers"};
    for (yaml_node_pair_t *kv = root->data.mapping.pairs.start; kv < root->data.mapping.pairs.top; kv++) {
        const char *k = kd_yaml_node_scalar(yaml_document_get_node(&doc, kv->key));
        int known = 0;
        for (size_t i = 0; k && i < sizeof keys / sizeof *keys; i++) known |= !strcmp(k, keys[i]);
        if (!known) {
            st = fail(&p, yaml_document_get_node(&doc, kv->key),
                      k ? "unknown key '%s' (a model has name, input, normalize, input_type, class_names and layers)%s"
                        : "keys must be plain names%s%s",
                      k, NULL);
            goto done;
        }
    }
    const char *name = kd_yaml_node_scalar(map_get(&doc, root, "name"));
    snprintf(m->name, sizeof m->name, "%s", name ? name : "model");
    yaml_node_t *input = map_get(&doc, root, "input");
    int dims[3] = {0, 0, 0}, nd = 0;
    if (kd_yaml_node_scalar(input) && !strcmp(kd_yaml_node_scalar(input), "auto")) {
        p.auto_input = 1;
        dims[0] = fit_shape ? fit->in_c : FIT_DEFAULT_C;
        dims[1] = fit_shape ? fit->in_h : FIT_DEFAULT_H;
        dims[2] = fit_shape ? fit->in_w : FIT_DEFAULT_W;
        nd = dims[0] <= 65536 && dims[1] <= 65536 && dims[2] <= 65536 ? 3 : -1;
    } else if (input && input->type == YAML_SEQUENCE_NODE)
        for (yaml_node_item_t *it = input->data.sequence.items.start; it < input->data.sequence.items.top; it++) {
            const char *s = kd_yaml_node_scalar(yaml_document_get_node(&doc, *it));
            char *end = NULL;
            long v = s ? strtol(s, &end, 10) : 0;
            if (nd >= 3 || !s || *end || v < 1 || v > 65536) { nd = -1; break; }
            dims[nd++] = (int)v;
        }
    if (nd != 3) {
        st = p.auto_input ? kd_error_set(err, KD_STATUS_BAD_ARG, "model %s: the data's samples are %dx%dx%d (at most 65536 each)",
                                         m->name, dims[0], dims[1], dims[2])
                          : fail(&p, input ? input : root, "'input' must be [channels, height, width] of positive integers, or auto%s%s",
                                 NULL, NULL);
        goto done;
    }
    if (!p.auto_input && fit_shape && (fit->in_c != dims[0] || fit->in_h != dims[1] || fit->in_w != dims[2])) {
        st = kd_error_set(err, KD_STATUS_MISMATCH,
                          "data has %dx%dx%d samples, model %s expects %dx%dx%d (%s:%zu; 'input: auto' takes the data's shape)",
                          fit->in_c, fit->in_h, fit->in_w, m->name, dims[0], dims[1], dims[2], source,
                          (size_t)input->start_mark.line + 1);
        goto done;
    }
    long long in_elems = kd_size_mul(kd_size_mul(dims[0], dims[1]), dims[2]);
    if (in_elems > KD_MODEL_MAX_ELEMS) {
        char buf[96];
        snprintf(buf, sizeof buf, "[%d, %d, %d] has %lld elements per sample (at most %d)", dims[0], dims[1], dims[2],
                 in_elems, KD_MODEL_MAX_ELEMS);
        st = shape_error(&p, m, fail(&p, input, "'input' %s%s", buf, NULL));
        goto done;
    }
    m->in_c = dims[0]; m->in_h = dims[1]; m->in_w = dims[2];
    if ((st = parse_normalize(&p, m, map_get(&doc, root, "normalize")))) goto done;
    yaml_node_t *layers = map_get(&doc, root, "layers");
    if (!layers || layers->type != YAML_SEQUENCE_NODE ||
        layers->data.sequence.items.top == layers->data.sequence.items.start) {
        st = fail(&p, layers ? layers : root, "'layers' must be a non-empty list%s%s", NULL, NULL);
        goto done;
    }
    m->n_layers = (int)(layers->data.sequence.items.top - layers->data.sequence.items.start);
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    if (!m->layers) { st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory"); goto done; }
    int type_count[KD_LAYER_COUNT] = {0};
    for (int i = 0; i < m->n_layers; i++) {
        yaml_node_t *ln = yaml_document_get_node(&doc, layers->data.sequence.items.start[i]);
        if ((st = parse_layer(&p, m, i, ln, type_count))) goto done;
    }
    const kd_layer *last = &m->layers[m->n_layers - 1];
    if (last->h != 1 || last->w != 1) {
        char buf[96];
        snprintf(buf, sizeof buf, "[%d,%d,%d]", last->c, last->h, last->w);
        st = shape_error(&p, m, fail(&p, NULL, "the last layer (%s) must output a vector of class scores, not %s",
                                     last->name, buf));
        goto done;
    }
    m->n_classes = last->c;
    if (fit && fit->n_classes > m->n_classes) {
        st = kd_error_set(err, KD_STATUS_MISMATCH,
                          "data has %d classes, model %s has %d outputs (its last layer %s; 'out: classes' takes the data's count)",
                          fit->n_classes, m->name, m->n_classes, last->name);
        goto done;
    }
    if ((st = parse_data_keys(&p, m, root))) goto done;
    if ((st = resolved_text(&p, m, root, yaml, len, &m->yaml))) goto done;
    if (!m->yaml && (st = kd_model_yaml_from_layers(m, m->layers, m->n_layers, &m->yaml, err))) goto done;
    if (!build) goto done;
    if ((st = kd_model_layout_params(m, err))) goto done;
    kd_model_init_params(m, seed);
done:
    yaml_document_delete(&doc);
    if (st) kd_model_free(m);
    else *out = m;
    return st;
}

kd_status kd_model_from_yaml(kd_model **out, const char *yaml, const char *source, uint64_t seed,
                             kd_error *err) {
    return kd_model_yaml_parse(out, yaml, strlen(yaml), source, seed, NULL, 1, err);
}

kd_status kd_model_create(kd_model **out, const char *name_or_path, uint64_t seed, kd_error *err) {
    return kd_model_create_for(out, name_or_path, seed, NULL, err);
}

kd_status kd_model_create_for(kd_model **out, const char *name_or_path, uint64_t seed, const kd_model_fit *fit,
                              kd_error *err) {
    *out = NULL;
    const char *zoo = kd_model_zoo_yaml(name_or_path);
    if (zoo) return kd_model_yaml_parse(out, zoo, strlen(zoo), name_or_path, seed, fit, 1, err);
    char *text = NULL;
    size_t len = 0;
    kd_status st = kd_yaml_read_file(name_or_path, &text, &len, err);
    if (st == KD_STATUS_NOT_FOUND) {
        char names[256] = "";
        for (int i = 0; kd_model_zoo_name(i); i++) {
            strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
            strncat(names, kd_model_zoo_name(i), sizeof names - strlen(names) - 1);
        }
        return kd_error_set(err, KD_STATUS_NOT_FOUND, "'%s' is neither a built-in model (%s) nor a YAML file",
                            name_or_path, names);
    }
    if (st) return st;
    st = kd_model_yaml_parse(out, text, len, name_or_path, seed, fit, 1, err);
    free(text);
    return st;
}
