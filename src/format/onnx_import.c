/* ONNX import: a .onnx CNN (opsets 11..17) parsed with protobuf-c's generated code becomes a distill
 * layer list (kd_model_yaml_from_layers -> kd_model_from_yaml), then its weights are copied in.
 * Every value of the graph is either an activation (a layer's output, per-sample shape) or a
 * constant (initializers, Constant nodes, and whatever depends only on them and on shapes: the
 * Shape/Gather/Concat/Reshape chains of dynamic-batch exports are evaluated here). Operators and
 * their mapping: docs/ONNX.md. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/fileio.h"
#include "distill/onnx.h"
#include "distill/ops.h"
#include "distill/quant.h"
#include "onnx.pb-c.h"

#define MAX_DIMS 8
/* The file: the weights (at most KD_MODEL_MAX_PARAMS floats) and room for the graph around them. */
#define ONNX_MAX_BYTES ((size_t)KD_MODEL_MAX_PARAMS * 4 + ((size_t)64 << 20))
/* Every constant element allocated over the import (initializers, Constant nodes, folded values;
 * each initializer element takes at least one byte of the file) counts against a budget of twice
 * the file's size plus 2^22 elements, so a tiny file cannot fold its way to gigabytes. */
#define ONNX_BUDGET(bytes) (2 * (size_t)(bytes) + ((size_t)1 << 22))
/* Nodes and initializers of the graph, each (at most; docs/ONNX.md). */
#define ONNX_MAX_NODES 100000

enum { DT_FLOAT = 1, DT_INT32 = 6, DT_INT64 = 7, DT_FLOAT16 = 10, DT_DOUBLE = 11 };

/* A constant tensor: float (f) or int64 (i) elements, row-major. */
typedef struct cten {
    int is_int;
    int nd;
    int64_t dims[MAX_DIMS];
    size_t n;
    float *f;
    int64_t *i;
} cten;

typedef enum { V_ACT = 1, V_CONST } vkind;

/* A value of the graph. An activation has the ONNX rank 4 (N, c, h, w) or 2 (N, c; h = w = 1). */
typedef struct value {
    const char *name;       /* owned by the parsed proto */
    vkind kind;
    int layer;              /* activations: the layer that outputs it, or KD_MODEL_INPUT */
    int rank, c, h, w;
    cten t;                 /* constants */
} value;

/* The weights of one layer, in distill's layout. */
typedef struct lweights {
    float *w, *b, *mean, *var;
    size_t nw, nb;
} lweights;

typedef struct imp {
    const char *path;
    kd_error *err;
    int opset;
    int64_t batch;          /* the input's batch dimension: its value, or 1 when symbolic */
    const Onnx__NodeProto *node; /* the node being mapped, for messages */
    value *v;
    int nv, cap_v;
    int *hash;              /* open addressing over v by name: index + 1, 0 empty; cap_h slots */
    size_t cap_h;
    size_t budget;          /* constant elements that may still be allocated (ONNX_BUDGET) */
    kd_layer *L;
    lweights *W;
    int nl, cap_l;
    kd_onnx_import_info info;
} imp;

static const char SUPPORTED[] =
    "Conv, BatchNormalization, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Add, Sub, Mul, Div, "
    "MaxPool, AveragePool, GlobalAveragePool, Concat, Pad, Gemm, MatMul, Flatten, Reshape, Squeeze, Unsqueeze, "
    "Identity, Dropout, Softmax/LogSoftmax (last), Constant, Shape, Gather, ConstantOfShape, Slice, Transpose, Cast";

/* ------------------------------------------------------------ messages */

static kd_status ferr(imp *im, kd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static kd_status ferr(imp *im, kd_status st, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kd_error_set(im->err, st, "%s: %s", im->path, what);
}

/* An error about the current node: "PATH: node NAME (OP, opset N): WHAT". */
static kd_status nerr(imp *im, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static kd_status nerr(imp *im, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = im->node;
    const char *name = n->name && *n->name ? n->name : n->n_output && n->output[0] ? n->output[0] : "?";
    return kd_error_set(im->err, KD_STATUS_BAD_MODEL, "%s: node '%.128s' (%s, opset %d): %s", im->path, name,
                        n->op_type ? n->op_type : "?", im->opset, what);
}

/* ------------------------------------------------------------ constants */

static void cten_free(cten *t) {
    free(t->f);
    free(t->i);
    memset(t, 0, sizeof *t);
}

/* Allocate t for dims (nd of them; each >= 0, checked against the model limits). */
static kd_status cten_alloc(imp *im, cten *t, int is_int, int nd, const int64_t *dims, const char *what) {
    memset(t, 0, sizeof *t);
    if (nd < 0 || nd > MAX_DIMS) return ferr(im, KD_STATUS_BAD_MODEL, "%s: %d dimensions (at most %d)", what, nd, MAX_DIMS);
    int64_t n = 1;
    for (int k = 0; k < nd; k++) {
        if (dims[k] < 0) return ferr(im, KD_STATUS_BAD_MODEL, "%s: negative dimension %lld", what, (long long)dims[k]);
        n = kd_size_mul(n, dims[k]);
        t->dims[k] = dims[k];
    }
    if (n > KD_MODEL_MAX_PARAMS)
        return ferr(im, KD_STATUS_BAD_MODEL, "%s: %lld elements (a model may have at most %d)", what, (long long)n,
                    KD_MODEL_MAX_PARAMS);
    if ((size_t)n > im->budget) {
        static const char fmt[] = "%s: %lld elements exceed what is left of the constants' budget (%zu elements; "
                                  "the budget is twice the file's size plus 2^22)";
        return im->node ? nerr(im, fmt, what, (long long)n, im->budget)
                        : ferr(im, KD_STATUS_BAD_MODEL, fmt, what, (long long)n, im->budget);
    }
    im->budget -= (size_t)n;
    t->nd = nd;
    t->n = (size_t)n;
    t->is_int = is_int;
    if (is_int) t->i = calloc(t->n ? t->n : 1, sizeof *t->i);
    else t->f = calloc(t->n ? t->n : 1, sizeof *t->f);
    if (!t->i && !t->f) return ferr(im, KD_STATUS_NO_MEMORY, "%s: out of memory (%zu elements)", what, t->n);
    return KD_STATUS_OK;
}

static double cget(const cten *t, size_t k) { return t->is_int ? (double)t->i[k] : (double)t->f[k]; }

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

/* An initializer (or a Constant's tensor) as a constant: float32/float16 -> float, int64/int32 ->
 * int64; raw_data (little-endian) or the typed fields; sizes checked before allocation. */
static kd_status tensor_to_cten(imp *im, const Onnx__TensorProto *tp, cten *t) {
    const char *name = tp->name && *tp->name ? tp->name : "(unnamed)";
    char what[200];
    snprintf(what, sizeof what, "tensor '%.128s'", name);
    memset(t, 0, sizeof *t);
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ferr(im, KD_STATUS_BAD_MODEL, "%s: its data is in an external file, which distill does not read "
                                             "(save the model with its weights inside: onnx.save(model, path, "
                                             "save_as_external_data=False))", what);
    if (tp->segment) return ferr(im, KD_STATUS_BAD_MODEL, "%s: segmented tensors are not supported", what);
    int dt = tp->data_type;
    int is_int;
    size_t esize;
    switch (dt) {
    case DT_FLOAT: is_int = 0; esize = 4; break;
    case DT_FLOAT16: is_int = 0; esize = 2; break;
    case DT_INT64: is_int = 1; esize = 8; break;
    case DT_INT32: is_int = 1; esize = 4; break;
    default:
        return ferr(im, KD_STATUS_BAD_MODEL, "%s: element type %d is not supported (float32, float16, int64, int32)",
                    what, dt);
    }
    if (tp->n_dims > MAX_DIMS) return ferr(im, KD_STATUS_BAD_MODEL, "%s: %zu dimensions (at most %d)", what, tp->n_dims, MAX_DIMS);
    kd_status st = cten_alloc(im, t, is_int, (int)tp->n_dims, tp->dims, what);
    if (st) return st;
    size_t n = t->n;
    if (tp->has_raw_data) {
        if (tp->raw_data.len != n * esize) {
            cten_free(t);
            return ferr(im, KD_STATUS_BAD_FILE, "%s: raw_data holds %zu bytes, its shape needs %zu", what,
                        tp->raw_data.len, n * esize);
        }
        const uint8_t *p = tp->raw_data.data;
        for (size_t k = 0; k < n; k++, p += esize) {
            switch (dt) {
            case DT_FLOAT: {
                uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
                memcpy(&t->f[k], &u, 4);
                break;
            }
            case DT_FLOAT16: t->f[k] = kd_half_to_float((uint16_t)(p[0] | p[1] << 8)); break;
            case DT_INT64: t->i[k] = (int64_t)le64(p); break;
            default: t->i[k] = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
            }
        }
        return KD_STATUS_OK;
    }
    size_t have = dt == DT_FLOAT ? tp->n_float_data : dt == DT_INT64 ? tp->n_int64_data : tp->n_int32_data;
    if (have != n) {
        cten_free(t);
        return ferr(im, KD_STATUS_BAD_FILE, "%s: holds %zu values, its shape needs %zu", what, have, n);
    }
    for (size_t k = 0; k < n; k++) {
        switch (dt) {
        case DT_FLOAT: t->f[k] = tp->float_data[k]; break;
        case DT_FLOAT16: t->f[k] = kd_half_to_float((uint16_t)tp->int32_data[k]); break;
        case DT_INT64: t->i[k] = tp->int64_data[k]; break;
        default: t->i[k] = tp->int32_data[k];
        }
    }
    return KD_STATUS_OK;
}

/* ------------------------------------------------------------ values */

static size_t name_hash(const char *s) {
    size_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The hash slot of name: the one holding it, or the empty one where it would go. */
static int *hash_slot(imp *im, const char *name) {
    size_t k = name_hash(name) & (im->cap_h - 1);
    while (im->hash[k] && strcmp(im->v[im->hash[k] - 1].name, name)) k = (k + 1) & (im->cap_h - 1);
    return &im->hash[k];
}

/* The value named name (the latest definition), or NULL. */
static value *find_value(imp *im, const char *name) {
    if (!im->cap_h) return NULL;
    int *slot = hash_slot(im, name);
    return *slot ? &im->v[*slot - 1] : NULL;
}

static value *new_value(imp *im, const char *name) {
    if (im->nv == im->cap_v) {
        int cap = im->cap_v ? 2 * im->cap_v : 64;
        value *v = realloc(im->v, (size_t)cap * sizeof *v);
        int *hash = calloc(2 * (size_t)cap, sizeof *hash);
        if (!v || !hash) {
            if (v) im->v = v;
            free(hash);
            return NULL;
        }
        im->v = v;
        im->cap_v = cap;
        free(im->hash);
        im->hash = hash;
        im->cap_h = 2 * (size_t)cap;
        for (int k = 0; k < im->nv; k++) *hash_slot(im, im->v[k].name) = k + 1;
    }
    value *v = &im->v[im->nv++];
    memset(v, 0, sizeof *v);
    v->name = name;
    *hash_slot(im, name) = im->nv;
    return v;
}

/* The node's input k: NULL when absent (optional inputs are "" or missing). */
static value *in_value(imp *im, const Onnx__NodeProto *n, size_t k) {
    if (k >= n->n_input || !n->input[k] || !*n->input[k]) return NULL;
    return find_value(im, n->input[k]);
}

/* Define output k of the current node as a constant (takes t's elements). */
static kd_status def_const(imp *im, size_t k, cten *t) {
    const Onnx__NodeProto *n = im->node;
    if (k >= n->n_output || !n->output[k] || !*n->output[k]) {
        cten_free(t);
        return nerr(im, "has no output %zu", k);
    }
    value *v = new_value(im, n->output[k]);
    if (!v) {
        cten_free(t);
        return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    }
    v->kind = V_CONST;
    v->t = *t;
    memset(t, 0, sizeof *t);
    return KD_STATUS_OK;
}

/* Define the current node's output as an activation: layer's output, of ONNX rank 4 or 2. */
static kd_status def_act(imp *im, int layer, int rank, int c, int h, int w) {
    const Onnx__NodeProto *n = im->node;
    if (!n->n_output || !n->output[0] || !*n->output[0]) return nerr(im, "has no output");
    value *v = new_value(im, n->output[0]);
    if (!v) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    v->kind = V_ACT;
    v->layer = layer;
    v->rank = rank;
    v->c = c; v->h = h; v->w = w;
    return KD_STATUS_OK;
}

/* The current node computes nothing: its output is activation a under another name. */
static kd_status alias(imp *im, const value *a) {
    im->info.n_dropped++;
    value copy = *a; /* new_value may move the table */
    return def_act(im, copy.layer, copy.rank, copy.c, copy.h, copy.w);
}

/* ------------------------------------------------------------ attributes */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k] && n->attribute[k]->name && !strcmp(n->attribute[k]->name, name)) return n->attribute[k];
    return NULL;
}

static kd_status attr_int(imp *im, const char *name, int64_t def, int64_t *out) {
    const Onnx__AttributeProto *a = attr(im->node, name);
    *out = def;
    if (!a) return KD_STATUS_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) return nerr(im, "attribute %s must be an integer", name);
    *out = a->i;
    return KD_STATUS_OK;
}

static kd_status attr_float(imp *im, const char *name, float def, float *out) {
    const Onnx__AttributeProto *a = attr(im->node, name);
    *out = def;
    if (!a) return KD_STATUS_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) return nerr(im, "attribute %s must be a float", name);
    *out = a->f;
    return KD_STATUS_OK;
}

/* An INTS attribute of exactly `want` values (or absent: *n = 0). */
static kd_status attr_ints(imp *im, const char *name, size_t want, const int64_t **v, size_t *n) {
    const Onnx__AttributeProto *a = attr(im->node, name);
    *v = NULL;
    *n = 0;
    if (!a) return KD_STATUS_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) return nerr(im, "attribute %s must be a list of integers", name);
    if (want && a->n_ints != want) return nerr(im, "attribute %s has %zu values, expected %zu", name, a->n_ints, want);
    *v = a->ints;
    *n = a->n_ints;
    return KD_STATUS_OK;
}

/* Attributes other than the ones listed are refused, so that none is silently ignored. */
static kd_status only_attrs(imp *im, const char *const *ok) {
    for (size_t k = 0; k < im->node->n_attribute; k++) {
        const char *a = im->node->attribute[k] && im->node->attribute[k]->name ? im->node->attribute[k]->name : "?";
        int found = 0;
        for (const char *const *p = ok; *p; p++) found |= !strcmp(*p, a);
        if (!found) {
            char list[200] = "";
            for (const char *const *p = ok; *p; p++) {
                strncat(list, p == ok ? "" : ", ", sizeof list - strlen(list) - 1);
                strncat(list, *p, sizeof list - strlen(list) - 1);
            }
            return nerr(im, "attribute '%.64s' is not supported (supported: %s)", a, *ok ? list : "none");
        }
    }
    return KD_STATUS_OK;
}

/* auto_pad: NOTSET (explicit pads) or VALID (none). */
static kd_status check_auto_pad(imp *im) {
    const Onnx__AttributeProto *a = attr(im->node, "auto_pad");
    if (!a) return KD_STATUS_OK;
    if (a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING &&
        ((a->s.len == 6 && !memcmp(a->s.data, "NOTSET", 6)) || (a->s.len == 5 && !memcmp(a->s.data, "VALID", 5))))
        return KD_STATUS_OK;
    return nerr(im, "auto_pad '%.*s' is not supported (supported: NOTSET with explicit pads, VALID)",
                a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING ? (int)(a->s.len > 32 ? 32 : a->s.len) : 1,
                a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING ? (const char *)a->s.data : "?");
}

/* ------------------------------------------------------------ layers */

/* Name L after the current node's output (plus suffix): the model YAML's names hold no space or double
 * quote, and `input` names the model's input. */
static kd_status set_layer_name(imp *im, kd_layer *L, const char *suffix) {
    const char *oname = im->node->n_output && im->node->output[0] ? im->node->output[0] : "";
    if (strlen(oname) + strlen(suffix) >= KD_NAME_MAX)
        return nerr(im, "output name '%.64s...' is longer than %d characters, the longest layer name", oname,
                    KD_NAME_MAX - 1);
    snprintf(L->name, sizeof L->name, "%s%s", oname, suffix);
    for (char *p = L->name; *p; p++)
        if (*p == ' ' || *p == '"') *p = '_';
    if (!strcmp(L->name, "input")) snprintf(L->name, sizeof L->name, "input_");
    return KD_STATUS_OK;
}

/* A new layer reading `inputs` (n of them), named after the node's output (plus suffix). */
static kd_status new_layer(imp *im, kd_layer_type type, const value *const *inputs, int n, const char *suffix,
                           kd_layer **out) {
    if (im->nl == im->cap_l) {
        int cap = im->cap_l ? 2 * im->cap_l : 64;
        kd_layer *L = realloc(im->L, (size_t)cap * sizeof *L);
        if (!L) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        im->L = L;
        lweights *W = realloc(im->W, (size_t)cap * sizeof *W);
        if (!W) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        im->W = W;
        im->cap_l = cap;
    }
    kd_layer *L = &im->L[im->nl];
    memset(L, 0, sizeof *L);
    memset(&im->W[im->nl], 0, sizeof im->W[im->nl]);
    kd_status st = set_layer_name(im, L, suffix);
    if (st) return st;
    L->type = type;
    L->n_inputs = n;
    for (int k = 0; k < n; k++) L->inputs[k] = inputs[k]->layer;
    L->kernel = L->stride = 1;
    L->groups = L->dilation = 1;
    *out = L;
    im->nl++;
    return KD_STATUS_OK;
}

static lweights *weights_of(imp *im, const kd_layer *L) { return &im->W[L - im->L]; }

static kd_status need_act(imp *im, const value *v, size_t k, int rank) {
    if (!v) return nerr(im, "input %zu is missing or not produced by an earlier node", k);
    if (v->kind != V_ACT) return nerr(im, "input %zu ('%.128s') must be the running tensor, not a constant", k, v->name);
    if (rank && v->rank != rank)
        return nerr(im, "input %zu ('%.128s') has rank %d, expected %d", k, v->name, v->rank, rank);
    return KD_STATUS_OK;
}

static kd_status need_const(imp *im, const value *v, size_t k) {
    if (!v) return nerr(im, "input %zu is missing or not produced by an earlier node", k);
    if (v->kind != V_CONST)
        return nerr(im, "input %zu ('%.128s') must be a constant (an initializer, or computed from shapes and "
                        "initializers only)", k, v->name);
    return KD_STATUS_OK;
}

/* The first n elements of t as a malloc'd float array (a layer's weights), or NULL. */
static float *fdup(const cten *t, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return NULL;
    for (size_t k = 0; k < n; k++) p[k] = (float)cget(t, k);
    return p;
}

/* A unary activation layer over a. */
static kd_status unary(imp *im, const value *a, kd_layer_type type, kd_layer **out) {
    kd_status st = need_act(im, a, 0, 0);
    if (st) return st;
    kd_layer *L;
    if ((st = new_layer(im, type, &a, 1, "", &L))) return st;
    if (out) *out = L;
    return def_act(im, im->nl - 1, a->rank, a->c, a->h, a->w);
}

/* Whether constant t broadcasts over activation a as a scalar or one value per channel; *stride: the
 * step between channels' values in t (0 for a scalar). */
static int per_channel(const value *a, const cten *t, size_t *stride) {
    /* numpy broadcasting against (N, C, H, W) or (N, C): every dimension 1 except the channel one */
    int rank = a->rank;
    if (t->nd > rank) return 0;
    int cdim = t->nd - (rank - 1); /* index of the channel dimension in t, may be < 0 */
    for (int k = 0; k < t->nd; k++)
        if (k != cdim && t->dims[k] != 1) return 0;
    if (cdim >= 0 && t->dims[cdim] != 1 && t->dims[cdim] != a->c) return 0;
    *stride = cdim >= 0 && t->dims[cdim] == a->c && a->c > 1 ? 1 : 0;
    return 1;
}

/* A scale layer y = x * (s_sign * s[c] or its reciprocal) + b_sign * b[c] over activation a, from
 * constants broadcast per channel (s or b NULL: 1 or 0). */
static kd_status scale_layer(imp *im, const value *a, const cten *s, float s_sign, int s_recip, const cten *b,
                             float b_sign) {
    size_t ss = 0, bs = 0;
    if ((s && !per_channel(a, s, &ss)) || (b && !per_channel(a, b, &bs)))
        return nerr(im, "the constant operand does not broadcast as a scalar or one value per channel over "
                        "'%.128s' (%d channels)", a->name, a->c);
    kd_status st;
    kd_layer *L;
    if ((st = new_layer(im, KD_LAYER_SCALE, &a, 1, "", &L))) return st;
    lweights *W = weights_of(im, L);
    W->nw = W->nb = (size_t)a->c;
    W->w = malloc(W->nw * sizeof(float));
    W->b = malloc(W->nb * sizeof(float));
    if (!W->w || !W->b) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    for (int c = 0; c < a->c; c++) {
        float sv = s ? (float)cget(s, (size_t)c * ss) : 1.f;
        if (s_recip) sv = 1.f / sv;
        W->w[c] = s_sign * sv;
        W->b[c] = b ? b_sign * (float)cget(b, (size_t)c * bs) : 0.f;
    }
    L->bias = 1;
    return def_act(im, im->nl - 1, a->rank, a->c, a->h, a->w);
}

/* ------------------------------------------------------------ constant folding */

/* numpy-broadcast binary arithmetic of two constants. */
static kd_status fold_binary(imp *im, const cten *a, const cten *b, char op) {
    int nd = a->nd > b->nd ? a->nd : b->nd;
    int64_t dims[MAX_DIMS];
    for (int k = 0; k < nd; k++) {
        int64_t da = k - (nd - a->nd) >= 0 ? a->dims[k - (nd - a->nd)] : 1;
        int64_t db = k - (nd - b->nd) >= 0 ? b->dims[k - (nd - b->nd)] : 1;
        if (da != db && da != 1 && db != 1) return nerr(im, "constant operands do not broadcast");
        dims[k] = da == 1 ? db : da;
    }
    cten r;
    int is_int = a->is_int && b->is_int;
    kd_status st = cten_alloc(im, &r, is_int, nd, dims, "folded constant");
    if (st) return st;
    for (size_t k = 0; k < r.n; k++) {
        size_t rem = k, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = nd - 1; d >= 0; d--) {
            size_t idx = rem % (size_t)dims[d];
            rem /= (size_t)dims[d];
            int ka = d - (nd - a->nd), kb = d - (nd - b->nd);
            if (ka >= 0) {
                if (a->dims[ka] != 1) ia += idx * sa;
                sa *= (size_t)a->dims[ka];
            }
            if (kb >= 0) {
                if (b->dims[kb] != 1) ib += idx * sb;
                sb *= (size_t)b->dims[kb];
            }
        }
        if (is_int) {
            int64_t x = a->i[ia], y = b->i[ib], z;
            switch (op) {
            case '+': z = (int64_t)((uint64_t)x + (uint64_t)y); break;
            case '-': z = (int64_t)((uint64_t)x - (uint64_t)y); break;
            case '*': z = (int64_t)((uint64_t)x * (uint64_t)y); break;
            default:
                if (y == 0 || (x == INT64_MIN && y == -1)) {
                    cten_free(&r);
                    return nerr(im, "integer division by zero in a constant");
                }
                z = x / y;
                if ((x % y != 0) && ((x < 0) != (y < 0))) z--; /* floor, as numpy */
            }
            r.i[k] = z;
        } else {
            double x = cget(a, ia), y = cget(b, ib);
            r.f[k] = (float)(op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y);
        }
    }
    return def_const(im, 0, &r);
}

/* Convert t in place to int64 (for shape arithmetic on a float constant) or float. */
static kd_status cten_cast(imp *im, cten *t, int to_int) {
    if (t->is_int == to_int) return KD_STATUS_OK;
    cten r;
    kd_status st = cten_alloc(im, &r, to_int, t->nd, t->dims, "cast constant");
    if (st) return st;
    for (size_t k = 0; k < t->n; k++) {
        if (to_int) {
            double x = cget(t, k);
            r.i[k] = x != x ? 0 : x >= 9.2e18 ? INT64_MAX : x <= -9.2e18 ? INT64_MIN : (int64_t)x;
        } else {
            r.f[k] = (float)cget(t, k);
        }
    }
    cten_free(t);
    *t = r;
    return KD_STATUS_OK;
}

static kd_status copy_cten(imp *im, const cten *src, cten *dst) {
    kd_status st = cten_alloc(im, dst, src->is_int, src->nd, src->dims, "constant");
    if (st) return st;
    if (src->is_int) memcpy(dst->i, src->i, src->n * sizeof *dst->i);
    else memcpy(dst->f, src->f, src->n * sizeof *dst->f);
    return KD_STATUS_OK;
}

/* Element k of src into element j of dst (same type). */
static void cset(cten *dst, size_t j, const cten *src, size_t k) {
    if (dst->is_int) dst->i[j] = src->i[k];
    else dst->f[j] = src->f[k];
}

/* A 1-D int64 constant's values as a list (at most MAX_DIMS * 2 of them). */
static kd_status int_list(imp *im, const value *v, size_t k, int64_t *out, size_t max, size_t *n) {
    kd_status st = need_const(im, v, k);
    if (st) return st;
    if (!v->t.is_int || v->t.nd > 1 || v->t.n > max)
        return nerr(im, "input %zu ('%.128s') must be a list of at most %zu integers", k, v->name, max);
    for (size_t j = 0; j < v->t.n; j++) out[j] = v->t.i[j];
    *n = v->t.n;
    return KD_STATUS_OK;
}

static int norm_axis(int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= rank) return 0;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 1;
}

/* Reshape/Squeeze/Unsqueeze/Flatten of a constant: the same elements under new dims. */
static kd_status fold_reshape(imp *im, const cten *src, int nd, const int64_t *dims) {
    cten r;
    kd_status st = cten_alloc(im, &r, src->is_int, nd, dims, "reshaped constant");
    if (st) return st;
    if (r.n != src->n) {
        cten_free(&r);
        return nerr(im, "reshape of a constant of %zu elements to %zu", src->n, r.n);
    }
    for (size_t k = 0; k < r.n; k++) cset(&r, k, src, k);
    return def_const(im, 0, &r);
}

/* The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input since. */
static kd_status get_axes(imp *im, const Onnx__NodeProto *n, int64_t *axes, size_t *na) {
    const int64_t *a;
    size_t k;
    kd_status st = attr_ints(im, "axes", 0, &a, &k);
    if (st) return st;
    if (a) {
        if (k > MAX_DIMS) return nerr(im, "too many axes");
        memcpy(axes, a, k * sizeof *a);
        *na = k;
        return KD_STATUS_OK;
    }
    value *v = in_value(im, n, 1);
    if (!v) {
        *na = 0;
        return KD_STATUS_OK;
    }
    return int_list(im, v, 1, axes, MAX_DIMS, na);
}

static kd_status fold_squeeze(imp *im, const Onnx__NodeProto *n, const cten *src, int unsq) {
    int64_t axes[MAX_DIMS], dims[MAX_DIMS];
    size_t na;
    kd_status st = get_axes(im, n, axes, &na);
    if (st) return st;
    int nd = 0;
    if (unsq) {
        int out_nd = src->nd + (int)na;
        if (out_nd > MAX_DIMS) return nerr(im, "too many dimensions");
        int mark[MAX_DIMS] = {0};
        for (size_t k = 0; k < na; k++) {
            int ax;
            if (!norm_axis(axes[k], out_nd, &ax) || mark[ax]) return nerr(im, "bad axis %lld", (long long)axes[k]);
            mark[ax] = 1;
        }
        int j = 0;
        for (int k = 0; k < out_nd; k++) dims[nd++] = mark[k] ? 1 : src->dims[j++];
    } else {
        int mark[MAX_DIMS] = {0};
        for (size_t k = 0; k < na; k++) {
            int ax;
            if (!norm_axis(axes[k], src->nd, &ax) || src->dims[ax] != 1) return nerr(im, "bad axis %lld", (long long)axes[k]);
            mark[ax] = 1;
        }
        for (int k = 0; k < src->nd; k++)
            if (na ? !mark[k] : src->dims[k] != 1) dims[nd++] = src->dims[k];
    }
    return fold_reshape(im, src, nd, dims);
}

/* Gather along an axis of a constant (indices: scalar or any shape). */
static kd_status fold_gather(imp *im, const cten *d, const cten *ix) {
    int64_t axis64;
    kd_status st = attr_int(im, "axis", 0, &axis64);
    if (st) return st;
    int axis;
    if (!ix->is_int || d->nd < 1 || !norm_axis(axis64, d->nd, &axis)) return nerr(im, "unsupported Gather of constants");
    int nd = d->nd - 1 + ix->nd;
    if (nd > MAX_DIMS) return nerr(im, "too many dimensions");
    int64_t dims[MAX_DIMS];
    int j = 0;
    for (int k = 0; k < axis; k++) dims[j++] = d->dims[k];
    for (int k = 0; k < ix->nd; k++) dims[j++] = ix->dims[k];
    for (int k = axis + 1; k < d->nd; k++) dims[j++] = d->dims[k];
    size_t outer = 1, inner = 1, len = (size_t)d->dims[axis];
    for (int k = 0; k < axis; k++) outer *= (size_t)d->dims[k];
    for (int k = axis + 1; k < d->nd; k++) inner *= (size_t)d->dims[k];
    cten r;
    if ((st = cten_alloc(im, &r, d->is_int, nd, dims, "gathered constant"))) return st;
    for (size_t o = 0; o < outer; o++)
        for (size_t q = 0; q < ix->n; q++) {
            int64_t id = ix->i[q];
            if (id < 0) id += (int64_t)len;
            if (id < 0 || (size_t)id >= len) {
                cten_free(&r);
                return nerr(im, "index %lld out of range [0, %zu)", (long long)ix->i[q], len);
            }
            for (size_t in = 0; in < inner; in++)
                cset(&r, (o * ix->n + q) * inner + in, d, (o * len + (size_t)id) * inner + in);
        }
    return def_const(im, 0, &r);
}

static kd_status fold_concat(imp *im, const Onnx__NodeProto *n) {
    int64_t axis64;
    kd_status st = attr_int(im, "axis", 0, &axis64);
    if (st) return st;
    for (size_t k = 0; k < n->n_input; k++)
        if (!in_value(im, n, k)) return nerr(im, "input %zu is empty", k);
    const cten *first = &in_value(im, n, 0)->t;
    int axis;
    if (!norm_axis(axis64, first->nd, &axis)) return nerr(im, "bad axis %lld", (long long)axis64);
    int64_t dims[MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    dims[axis] = 0;
    int is_int = first->is_int;
    for (size_t k = 0; k < n->n_input; k++) {
        const cten *t = &in_value(im, n, k)->t;
        if (t->nd != first->nd || t->is_int != is_int) return nerr(im, "constant inputs of different ranks or types");
        for (int d = 0; d < t->nd; d++)
            if (d != axis && t->dims[d] != first->dims[d]) return nerr(im, "constant inputs of different shapes");
        dims[axis] = kd_size_add(dims[axis], t->dims[axis]);
    }
    cten r;
    if ((st = cten_alloc(im, &r, is_int, first->nd, dims, "concatenated constant"))) return st;
    size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= (size_t)dims[d];
    for (int d = axis + 1; d < first->nd; d++) inner *= (size_t)dims[d];
    size_t j = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < n->n_input; k++) {
            const cten *t = &in_value(im, n, k)->t;
            size_t len = (size_t)t->dims[axis] * inner;
            for (size_t q = 0; q < len; q++) cset(&r, j++, t, o * len + q);
        }
    return def_const(im, 0, &r);
}

static kd_status fold_transpose(imp *im, const cten *t) {
    const int64_t *perm;
    size_t np;
    kd_status st = attr_ints(im, "perm", 0, &perm, &np);
    if (st) return st;
    int p[MAX_DIMS], used[MAX_DIMS] = {0};
    if (perm && np != (size_t)t->nd) return nerr(im, "perm has %zu values for %d dimensions", np, t->nd);
    for (int k = 0; k < t->nd; k++) {
        p[k] = perm ? (int)perm[k] : t->nd - 1 - k;
        if (perm && (perm[k] < 0 || perm[k] >= t->nd || used[perm[k]])) return nerr(im, "bad perm");
        used[p[k]] = 1;
    }
    int64_t dims[MAX_DIMS];
    size_t sstride[MAX_DIMS];
    for (int k = t->nd - 1, s = 1; k >= 0; k--) {
        sstride[k] = (size_t)s;
        s *= (int)t->dims[k];
    }
    for (int k = 0; k < t->nd; k++) dims[k] = t->dims[p[k]];
    cten r;
    if ((st = cten_alloc(im, &r, t->is_int, t->nd, dims, "transposed constant"))) return st;
    for (size_t j = 0; j < r.n; j++) {
        size_t rem = j, src = 0;
        for (int k = t->nd - 1; k >= 0; k--) {
            src += (rem % (size_t)dims[k]) * sstride[p[k]];
            rem /= (size_t)dims[k];
        }
        cset(&r, j, t, src);
    }
    return def_const(im, 0, &r);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static kd_status fold_slice(imp *im, const Onnx__NodeProto *n, const cten *t) {
    int64_t starts[MAX_DIMS], ends[MAX_DIMS], axes[MAX_DIMS], steps[MAX_DIMS];
    size_t ns = 0, ne = 0, na = 0, nst = 0;
    kd_status st;
    if ((st = int_list(im, in_value(im, n, 1), 1, starts, MAX_DIMS, &ns)) ||
        (st = int_list(im, in_value(im, n, 2), 2, ends, MAX_DIMS, &ne)))
        return st;
    if (in_value(im, n, 3) && (st = int_list(im, in_value(im, n, 3), 3, axes, MAX_DIMS, &na))) return st;
    if (in_value(im, n, 4) && (st = int_list(im, in_value(im, n, 4), 4, steps, MAX_DIMS, &nst))) return st;
    if (ne != ns || (na && na != ns) || (nst && nst != ns)) return nerr(im, "starts, ends, axes and steps differ in length");
    int64_t b[MAX_DIMS], s[MAX_DIMS], dims[MAX_DIMS];
    for (int d = 0; d < t->nd; d++) {
        b[d] = 0;
        s[d] = 1;
        dims[d] = t->dims[d];
    }
    for (size_t k = 0; k < ns; k++) {
        int ax;
        if (!norm_axis(na ? axes[k] : (int64_t)k, t->nd, &ax)) return nerr(im, "bad axis");
        int64_t step = nst ? steps[k] : 1, len = t->dims[ax];
        if (step == 0) return nerr(im, "a step of 0");
        step = clamp64(step, -len - 1, len + 1); /* a longer step takes one element as well */
        int64_t lo = starts[k], hi = ends[k];
        if (lo < 0) lo = lo < -len ? -len : lo, lo += len;
        if (hi < 0) hi = hi < -len ? -len - 1 : hi, hi += len;
        if (step > 0) {
            lo = clamp64(lo, 0, len);
            hi = clamp64(hi, 0, len);
            dims[ax] = hi > lo ? (hi - lo - 1) / step + 1 : 0;
        } else {
            lo = clamp64(lo, -1, len - 1);
            hi = clamp64(hi, -1, len - 1);
            dims[ax] = lo > hi ? (lo - hi - 1) / -step + 1 : 0;
        }
        b[ax] = lo;
        s[ax] = step;
    }
    cten r;
    if ((st = cten_alloc(im, &r, t->is_int, t->nd, dims, "sliced constant"))) return st;
    for (size_t j = 0; j < r.n; j++) {
        size_t rem = j, src = 0, stride = 1;
        for (int d = t->nd - 1; d >= 0; d--) {
            int64_t idx = (int64_t)(rem % (size_t)dims[d]);
            rem /= (size_t)dims[d];
            src += (size_t)(b[d] + idx * s[d]) * stride;
            stride *= (size_t)t->dims[d];
        }
        cset(&r, j, t, src);
    }
    return def_const(im, 0, &r);
}

/* The shape of a value as an int64 constant (batch: its value, or 1 when symbolic). */
static kd_status fold_shape(imp *im, const value *a) {
    int64_t d[MAX_DIMS];
    int nd;
    if (a->kind == V_ACT) {
        nd = a->rank;
        d[0] = im->batch;
        d[1] = a->c;
        d[2] = a->h;
        d[3] = a->w;
    } else {
        nd = a->t.nd;
        memcpy(d, a->t.dims, sizeof d);
    }
    int64_t start = 0, end = nd;
    kd_status st;
    if ((st = attr_int(im, "start", 0, &start)) || (st = attr_int(im, "end", nd, &end))) return st;
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    start = clamp64(start, 0, nd);
    end = clamp64(end, start, nd);
    int64_t one = end - start;
    cten r;
    if ((st = cten_alloc(im, &r, 1, 1, &one, "shape"))) return st;
    for (int64_t k = start; k < end; k++) r.i[k - start] = d[k];
    im->info.n_folded++;
    return def_const(im, 0, &r);
}

/* Evaluate a node whose inputs are all constants. Returns 1 in *done when it did. */
static kd_status try_fold(imp *im, const Onnx__NodeProto *n, const char *op, int *done) {
    *done = 0;
    int all_const = 1;
    for (size_t k = 0; k < n->n_input; k++) {
        if (!n->input[k] || !*n->input[k]) continue;
        value *v = find_value(im, n->input[k]);
        if (!v) return nerr(im, "input '%.128s' is not produced by an earlier node, an initializer or the graph input",
                            n->input[k]);
        if (v->kind != V_CONST) all_const = 0;
    }
    if (!strcmp(op, "Shape")) {
        value *a = in_value(im, n, 0);
        if (!a) return nerr(im, "input 0 is missing");
        *done = 1;
        return fold_shape(im, a);
    }
    if (!all_const || !n->n_input || !in_value(im, n, 0)) return KD_STATUS_OK;
    const cten *a = &in_value(im, n, 0)->t;
    value *bv = in_value(im, n, 1);
    const cten *b = bv ? &bv->t : NULL;
    kd_status st = KD_STATUS_OK;
    *done = 1;
    im->info.n_folded++;
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
        if (!b) return nerr(im, "input 1 is missing");
        return fold_binary(im, a, b, op[0] == 'A' ? '+' : op[0] == 'S' ? '-' : op[0] == 'M' ? '*' : '/');
    }
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        cten r;
        if ((st = copy_cten(im, a, &r))) return st;
        return def_const(im, 0, &r);
    }
    if (!strcmp(op, "Gather")) {
        if (!b) return nerr(im, "input 1 is missing");
        return fold_gather(im, a, b);
    }
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) return fold_squeeze(im, n, a, op[0] == 'U');
    if (!strcmp(op, "Concat")) return fold_concat(im, n);
    if (!strcmp(op, "Transpose")) return fold_transpose(im, a);
    if (!strcmp(op, "Slice")) return fold_slice(im, n, a);
    if (!strcmp(op, "Cast")) {
        int64_t to;
        if ((st = attr_int(im, "to", 0, &to))) return st;
        if (to != DT_FLOAT && to != DT_INT64 && to != DT_INT32 && to != DT_FLOAT16 && to != DT_DOUBLE)
            return nerr(im, "Cast to type %lld is not supported (float or integer types)", (long long)to);
        cten r;
        if ((st = copy_cten(im, a, &r)) || (st = cten_cast(im, &r, to == DT_INT64 || to == DT_INT32))) {
            cten_free(&r);
            return st;
        }
        return def_const(im, 0, &r);
    }
    if (!strcmp(op, "ConstantOfShape")) {
        int64_t dims[MAX_DIMS];
        size_t nd;
        if ((st = int_list(im, in_value(im, n, 0), 0, dims, MAX_DIMS, &nd))) return st;
        const Onnx__AttributeProto *va = attr(n, "value");
        cten v = {0}, r;
        if (va) {
            if (va->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !va->t)
                return nerr(im, "attribute value must be a tensor");
            if ((st = tensor_to_cten(im, va->t, &v))) return st;
            if (v.n != 1) {
                cten_free(&v);
                return nerr(im, "attribute value must hold one element");
            }
        }
        if ((st = cten_alloc(im, &r, v.is_int, (int)nd, dims, "ConstantOfShape"))) {
            cten_free(&v);
            return st;
        }
        for (size_t k = 0; k < r.n && va; k++) cset(&r, k, &v, 0);
        cten_free(&v);
        return def_const(im, 0, &r);
    }
    if (!strcmp(op, "Reshape") || !strcmp(op, "Flatten")) {
        int64_t dims[MAX_DIMS];
        size_t nd;
        if (op[0] == 'F') {
            int64_t axis64;
            int axis;
            if ((st = attr_int(im, "axis", 1, &axis64))) return st;
            if (!norm_axis(axis64, a->nd + 1, &axis)) return nerr(im, "bad axis");
            dims[0] = dims[1] = 1;
            for (int k = 0; k < a->nd; k++) dims[k >= axis] *= a->dims[k];
            nd = 2;
        } else {
            if ((st = int_list(im, bv, 1, dims, MAX_DIMS, &nd))) return st;
            int64_t known = 1, neg = -1;
            for (size_t k = 0; k < nd; k++) {
                if (dims[k] == 0) dims[k] = (int)k < a->nd ? a->dims[k] : 0;
                if (dims[k] == -1 && neg < 0) neg = (int64_t)k;
                else if (dims[k] < 0) return nerr(im, "bad shape value %lld", (long long)dims[k]);
                else known = kd_size_mul(known, dims[k]);
            }
            if (neg >= 0) dims[neg] = known ? (int64_t)a->n / known : 0;
        }
        return fold_reshape(im, a, (int)nd, dims);
    }
    im->info.n_folded--;
    *done = 0; /* not a folding operator: the node's own mapping explains what it needs */
    return KD_STATUS_OK;
}

/* ------------------------------------------------------------ operators */

/* How many node inputs (and graph outputs) read the value called name. */
static int count_uses(const Onnx__GraphProto *g, const char *name) {
    int uses = 0;
    for (size_t k = 0; k < g->n_node; k++)
        for (size_t j = 0; j < g->node[k]->n_input; j++)
            uses += g->node[k]->input[j] && !strcmp(g->node[k]->input[j], name);
    for (size_t k = 0; k < g->n_output; k++) uses += g->output[k] && g->output[k]->name && !strcmp(g->output[k]->name, name);
    return uses;
}

/* Outputs past the first (Dropout's mask, MaxPool's indices, BatchNormalization's training
 * statistics) are not computed: refused if anything reads them. */
static kd_status extra_outputs_unused(imp *im, const Onnx__GraphProto *g) {
    for (size_t k = 1; k < im->node->n_output; k++)
        if (im->node->output[k] && *im->node->output[k] && count_uses(g, im->node->output[k]))
            return nerr(im, "output %zu ('%.128s') is used; only the first output is supported", k, im->node->output[k]);
    return KD_STATUS_OK;
}

/* Square kernel, equal strides and dilations, pads (top, left, bottom, right) of Conv and the pools. */
typedef struct window {
    int k, stride, dil, pads[4];
} window;

/* v (the node's attribute what) is at most max, the model's limit (include/distill/model.h). */
static kd_status at_most(imp *im, const char *what, int v, int max) {
    return v > max ? nerr(im, "%s %d is out of range (supported: up to %d)", what, v, max) : KD_STATUS_OK;
}

static kd_status get_window(imp *im, int kh, int kw, window *wd) {
    const int64_t *ks, *st, *dl, *pd;
    size_t n;
    kd_status s;
    if ((s = check_auto_pad(im)) || (s = attr_ints(im, "kernel_shape", 2, &ks, &n))) return s;
    if (ks && kh > 0 && (ks[0] != kh || ks[1] != kw)) return nerr(im, "kernel_shape does not match the weight's shape");
    if (ks) kh = (int)clamp64(ks[0], 0, 1 << 16), kw = (int)clamp64(ks[1], 0, 1 << 16);
    if (kh < 1 || kw < 1) return nerr(im, "kernel_shape is missing or not positive");
    if (kh != kw) return nerr(im, "kernel %dx%d is not square (supported: square kernels)", kh, kw);
    if ((s = attr_ints(im, "strides", 2, &st, &n)) || (s = attr_ints(im, "dilations", 2, &dl, &n)) ||
        (s = attr_ints(im, "pads", 4, &pd, &n)))
        return s;
    if (st && st[0] != st[1]) return nerr(im, "strides %lld,%lld differ (supported: equal strides)", (long long)st[0], (long long)st[1]);
    if (dl && dl[0] != dl[1]) return nerr(im, "dilations differ (supported: equal dilations)");
    wd->k = kh;
    wd->stride = st ? (int)clamp64(st[0], 0, 1 << 16) : 1;
    wd->dil = dl ? (int)clamp64(dl[0], 0, 1 << 16) : 1;
    if (wd->stride < 1 || wd->dil < 1) return nerr(im, "strides and dilations must be positive");
    for (int k = 0; k < 4; k++) {
        wd->pads[k] = pd ? (int)clamp64(pd[k], -1, 1 << 16) : 0;
        if (wd->pads[k] < 0) return nerr(im, "negative pads are not supported");
    }
    return KD_STATUS_OK;
}

/* A pad layer in front of x (for asymmetric Conv pads): returns the value it outputs in *padded. */
static kd_status pad_layer(imp *im, const value *x, const int pads[4], float v, const char *suffix, value *padded) {
    kd_layer *L;
    kd_status st = KD_STATUS_OK;
    for (int k = 0; k < 4 && !st; k++) st = at_most(im, "pad", pads[k], KD_PAD_MAX);
    if (st || (st = new_layer(im, KD_LAYER_PAD, &x, 1, suffix, &L))) return st;
    memcpy(L->pads, pads, sizeof L->pads);
    L->value = v;
    *padded = *x;
    padded->layer = im->nl - 1;
    padded->h = x->h + pads[0] + pads[2];
    padded->w = x->w + pads[1] + pads[3];
    if (padded->h > 65536 || padded->w > 65536) return nerr(im, "padded size out of range");
    return KD_STATUS_OK;
}

static kd_status map_conv(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", NULL};
    kd_status st;
    value *x = in_value(im, n, 0), *wv = in_value(im, n, 1), *bv = in_value(im, n, 2);
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 4)) || (st = need_const(im, wv, 1))) return st;
    const cten *w = &wv->t;
    if (w->nd != 4 || w->is_int) return nerr(im, "weight '%.128s' must be a 4-D float tensor (2-D convolutions)", wv->name);
    window wd;
    if ((st = get_window(im, (int)clamp64(w->dims[2], 0, 1 << 16), (int)clamp64(w->dims[3], 0, 1 << 16), &wd)) ||
        (st = at_most(im, "kernel", wd.k, KD_CONV_MAX_KERNEL)) || (st = at_most(im, "stride", wd.stride, KD_CONV_MAX_STRIDE)) ||
        (st = at_most(im, "dilation", wd.dil, KD_CONV_MAX_DILATION)))
        return st;
    int64_t group;
    if ((st = attr_int(im, "group", 1, &group))) return st;
    if (group < 1 || group > x->c || w->dims[1] * group != x->c || w->dims[0] < 1 || w->dims[0] > 65536 ||
        w->dims[0] % group)
        return nerr(im, "weight [%lld,%lld,...] with group %lld does not fit %d input channels", (long long)w->dims[0],
                    (long long)w->dims[1], (long long)group, x->c);
    int out = (int)w->dims[0];
    if (bv && ((st = need_const(im, bv, 2)) || bv->t.n != (size_t)out || bv->t.is_int))
        return st ? st : nerr(im, "bias '%.128s' must hold %d floats", bv->name, out);
    value in = *x;
    int sym = wd.pads[0] == wd.pads[2] && wd.pads[1] == wd.pads[3] && wd.pads[0] == wd.pads[1];
    if (!sym || wd.pads[0] > KD_CONV_MAX_PAD) { /* a pad layer in front */
        if ((st = pad_layer(im, x, wd.pads, 0.f, "/pad", &in))) return st;
        memset(wd.pads, 0, sizeof wd.pads);
    }
    int extent = wd.dil * (wd.k - 1) + 1; /* pads are symmetric here */
    int oh = kd_conv2d_out_size(in.h, extent, wd.stride, wd.pads[0]);
    int ow = kd_conv2d_out_size(in.w, extent, wd.stride, wd.pads[0]);
    if (!oh || !ow) return nerr(im, "the kernel does not fit the %dx%d input", in.h, in.w);
    const value *inp = &in;
    kd_layer *L;
    if ((st = new_layer(im, KD_LAYER_CONV2D, &inp, 1, "", &L))) return st;
    L->out = out;
    L->kernel = wd.k;
    L->stride = wd.stride;
    L->pad = wd.pads[0];
    L->dilation = wd.dil;
    L->groups = (int)group;
    L->bias = bv != NULL;
    lweights *W = weights_of(im, L);
    W->nw = w->n;
    if (!(W->w = fdup(w, w->n))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    if (bv) {
        W->nb = bv->t.n;
        if (!(W->b = fdup(&bv->t, bv->t.n))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    }
    return def_act(im, im->nl - 1, 4, out, oh, ow);
}

static kd_status map_batchnorm(imp *im, const Onnx__NodeProto *n, const Onnx__GraphProto *g) {
    static const char *const ok[] = {"epsilon", "momentum", "training_mode", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 0)) || (st = extra_outputs_unused(im, g))) return st;
    int64_t training;
    float eps, mom;
    if ((st = attr_int(im, "training_mode", 0, &training)) || (st = attr_float(im, "epsilon", 1e-5f, &eps)) ||
        (st = attr_float(im, "momentum", 0.9f, &mom)))
        return st;
    if (training) return nerr(im, "training_mode 1 is not supported (export the model in eval mode)");
    const cten *p[4];
    for (size_t k = 1; k <= 4; k++) {
        value *v = in_value(im, n, k);
        if ((st = need_const(im, v, k))) return st;
        if (v->t.is_int || v->t.n != (size_t)x->c) return nerr(im, "input %zu ('%.128s') must hold %d floats", k, v->name, x->c);
        p[k - 1] = &v->t;
    }
    kd_layer *L;
    if ((st = new_layer(im, KD_LAYER_BATCHNORM, (const value *const *)&x, 1, "", &L))) return st;
    L->eps = eps;
    L->momentum = mom >= 0.f && mom <= 1.f ? 1.f - mom : 0.1f; /* ONNX keeps `momentum` of the old value */
    lweights *W = weights_of(im, L);
    size_t c = (size_t)x->c;
    W->nw = W->nb = c;
    if (!(W->w = fdup(p[0], c)) || !(W->b = fdup(p[1], c)) || !(W->mean = fdup(p[2], c)) ||
        !(W->var = fdup(p[3], c)))
        return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    return def_act(im, im->nl - 1, x->rank, x->c, x->h, x->w);
}

/* A scalar constant input (Clip's min/max, Pad's constant_value); def when absent. */
static kd_status scalar_in(imp *im, const Onnx__NodeProto *n, size_t k, float def, float *out) {
    value *v = in_value(im, n, k);
    *out = def;
    if (!v) return KD_STATUS_OK;
    kd_status st = need_const(im, v, k);
    if (st) return st;
    if (v->t.n != 1) return nerr(im, "input %zu ('%.128s') must be a scalar", k, v->name);
    *out = (float)cget(&v->t, 0);
    return KD_STATUS_OK;
}

static kd_status map_clip(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"min", "max", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    float lo, hi;
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 0)) || (st = attr_float(im, "min", -FLT_MAX, &lo)) ||
        (st = attr_float(im, "max", FLT_MAX, &hi)) || (st = scalar_in(im, n, 1, lo, &lo)) ||
        (st = scalar_in(im, n, 2, hi, &hi)))
        return st;
    if (!(lo <= hi)) return nerr(im, "min %g is above max %g", (double)lo, (double)hi);
    if (lo == 0.f && hi >= FLT_MAX) return unary(im, x, KD_LAYER_RELU, NULL);
    kd_layer *L;
    if ((st = unary(im, x, KD_LAYER_CLIP, &L))) return st;
    L->lo = lo < -FLT_MAX ? -FLT_MAX : lo;
    L->hi = hi > FLT_MAX ? FLT_MAX : hi;
    return KD_STATUS_OK;
}

static kd_status map_binary(imp *im, const Onnx__NodeProto *n, const Onnx__GraphProto *g, const char *op) {
    kd_status st;
    value *a = in_value(im, n, 0), *b = in_value(im, n, 1);
    if ((st = only_attrs(im, (const char *const[]){NULL}))) return st;
    if (!a || !b) return nerr(im, "needs two inputs");
    if (a->kind == V_ACT && b->kind == V_ACT) {
        if (op[0] != 'A' && op[0] != 'M')
            return nerr(im, "%s of two computed tensors is not supported (Add and Mul are; Sub and Div take a "
                            "constant operand)", op);
        /* ONNX broadcasts right-aligned: (N, C) against (N, C, H, W) lines C up with W, not channels */
        if (a->rank != b->rank)
            return nerr(im, "%s of computed tensors of ranks %d and %d is not supported (ONNX broadcasts them "
                            "right-aligned; reshape the (N, C) one to (N, C, 1, 1))", op, a->rank, b->rank);
        const value *ins[2] = {a, b};
        kd_layer *L;
        if ((st = new_layer(im, op[0] == 'A' ? KD_LAYER_ADD : KD_LAYER_MUL, ins, 2, "", &L))) return st;
        return def_act(im, im->nl - 1, a->rank, a->c > b->c ? a->c : b->c, a->h > b->h ? a->h : b->h,
                       a->w > b->w ? a->w : b->w);
    }
    const value *x = a->kind == V_ACT ? a : b;
    const cten *c = a->kind == V_ACT ? &b->t : &a->t;
    int const_first = a->kind != V_ACT;
    switch (op[0]) {
    case 'M': return scale_layer(im, x, c, 1.f, 0, NULL, 1.f);
    case 'D':
        if (const_first) return nerr(im, "a constant divided by a computed tensor is not supported");
        return scale_layer(im, x, c, 1.f, 1, NULL, 1.f);
    case 'S': return const_first ? scale_layer(im, x, NULL, -1.f, 0, c, 1.f) : scale_layer(im, x, NULL, 1.f, 0, c, -1.f);
    default: break;
    }
    /* Add: the bias of a MatMul (linear without bias) whose result nothing else reads is folded into it */
    size_t one;
    if (x->layer >= 0 && im->L[x->layer].type == KD_LAYER_LINEAR && !im->L[x->layer].bias && x->layer == im->nl - 1 &&
        count_uses(g, x->name) == 1 && per_channel(x, c, &one) && one) {
        kd_layer *L = &im->L[x->layer];
        lweights *W = weights_of(im, L);
        if ((st = set_layer_name(im, L, ""))) return st;
        W->nb = (size_t)x->c;
        if (!(W->b = fdup(c, W->nb))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        L->bias = 1;
        value copy = *x;
        im->info.n_dropped++;
        return def_act(im, copy.layer, copy.rank, copy.c, copy.h, copy.w);
    }
    return scale_layer(im, x, NULL, 1.f, 0, c, 1.f);
}

static kd_status map_pool(imp *im, const Onnx__NodeProto *n, const Onnx__GraphProto *g, int avg) {
    static const char *const okmax[] = {"kernel_shape", "strides", "pads", "ceil_mode", "dilations", "storage_order",
                                        "auto_pad", NULL};
    static const char *const okavg[] = {"kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad",
                                        "auto_pad", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    window wd;
    int64_t ceil_mode, cip, order;
    if ((st = only_attrs(im, avg ? okavg : okmax)) || (st = need_act(im, x, 0, 4)) ||
        (st = extra_outputs_unused(im, g)) || (st = get_window(im, 0, 0, &wd)) ||
        (st = attr_int(im, "ceil_mode", 0, &ceil_mode)) || (st = attr_int(im, "count_include_pad", 0, &cip)) ||
        (st = attr_int(im, "storage_order", 0, &order)))
        return st;
    if (wd.dil != 1) return nerr(im, "dilations other than 1 are not supported on pools");
    if ((st = at_most(im, "kernel", wd.k, KD_POOL_MAX_KERNEL)) || (st = at_most(im, "stride", wd.stride, KD_POOL_MAX_STRIDE)) ||
        (st = at_most(im, "pad", wd.pads[0], KD_POOL_MAX_PAD)))
        return st;
    if (order) return nerr(im, "storage_order 1 is not supported");
    if (wd.pads[0] != wd.pads[2] || wd.pads[1] != wd.pads[3] || wd.pads[0] != wd.pads[1])
        return nerr(im, "asymmetric pads %d,%d,%d,%d are not supported on pools (supported: the same on every side)",
                    wd.pads[0], wd.pads[1], wd.pads[2], wd.pads[3]);
    int oh = kd_pool_out_size(x->h, wd.k, wd.stride, wd.pads[0], ceil_mode != 0);
    int ow = kd_pool_out_size(x->w, wd.k, wd.stride, wd.pads[0], ceil_mode != 0);
    if (!oh || !ow) return nerr(im, "the %dx%d window does not fit the %dx%d input", wd.k, wd.k, x->h, x->w);
    kd_layer *L;
    if ((st = new_layer(im, avg ? KD_LAYER_AVGPOOL : KD_LAYER_MAXPOOL, (const value *const *)&x, 1, "", &L))) return st;
    L->kernel = wd.k;
    L->stride = wd.stride;
    L->pad = wd.pads[0];
    L->ceil_mode = ceil_mode != 0;
    L->count_pad = avg && cip != 0;
    return def_act(im, im->nl - 1, 4, x->c, oh, ow);
}

static kd_status map_concat(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"axis", NULL};
    kd_status st;
    int64_t axis64;
    if ((st = only_attrs(im, ok)) || (st = attr_int(im, "axis", 1, &axis64))) return st;
    if (n->n_input < 1 || n->n_input > KD_LAYER_MAX_INPUTS)
        return nerr(im, "%zu inputs (supported: 1 to %d)", n->n_input, KD_LAYER_MAX_INPUTS);
    const value *ins[KD_LAYER_MAX_INPUTS];
    int c = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        value *v = in_value(im, n, k);
        if ((st = need_act(im, v, k, 0))) return st;
        if (k && (v->rank != ins[0]->rank || v->h != ins[0]->h || v->w != ins[0]->w))
            return nerr(im, "inputs of different shapes");
        ins[k] = v;
        c += v->c;
    }
    int axis;
    if (!norm_axis(axis64, ins[0]->rank, &axis) || axis != 1)
        return nerr(im, "axis %lld is not supported (supported: 1, the channels)", (long long)axis64);
    if (n->n_input == 1) return alias(im, ins[0]);
    kd_layer *L;
    if ((st = new_layer(im, KD_LAYER_CONCAT, ins, (int)n->n_input, "", &L))) return st;
    return def_act(im, im->nl - 1, ins[0]->rank, c, ins[0]->h, ins[0]->w);
}

static kd_status map_pad(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"mode", "pads", "value", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 4))) return st;
    const Onnx__AttributeProto *mode = attr(n, "mode");
    if (mode && !(mode->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING && mode->s.len == 8 &&
                  !memcmp(mode->s.data, "constant", 8)))
        return nerr(im, "mode is not supported (supported: constant)");
    if (in_value(im, n, 3)) return nerr(im, "the axes input is not supported");
    int64_t p[8];
    size_t np;
    const int64_t *pa;
    if ((st = attr_ints(im, "pads", 8, &pa, &np))) return st;
    if (pa) memcpy(p, pa, sizeof p);
    else if ((st = int_list(im, in_value(im, n, 1), 1, p, 8, &np))) return st;
    if (np != 8) return nerr(im, "pads must hold 8 values for a 4-D input");
    float v;
    if ((st = attr_float(im, "value", 0.f, &v)) || (st = scalar_in(im, n, 2, v, &v))) return st;
    if (p[0] || p[1] || p[4] || p[5]) return nerr(im, "padding of the batch or channel dimension is not supported");
    int pads[4] = {(int)clamp64(p[2], -1, 1 << 16), (int)clamp64(p[3], -1, 1 << 16), (int)clamp64(p[6], -1, 1 << 16),
                   (int)clamp64(p[7], -1, 1 << 16)};
    for (int k = 0; k < 4; k++)
        if (pads[k] < 0) return nerr(im, "negative pads are not supported");
    if (!pads[0] && !pads[1] && !pads[2] && !pads[3]) return alias(im, x);
    value out;
    if ((st = pad_layer(im, x, pads, v, "", &out))) return st;
    return def_act(im, out.layer, 4, out.c, out.h, out.w);
}

static kd_status map_gemm(imp *im, const Onnx__NodeProto *n, int matmul) {
    static const char *const ok[] = {"alpha", "beta", "transA", "transB", NULL};
    kd_status st;
    value *a = in_value(im, n, 0), *bv = in_value(im, n, 1), *cv = matmul ? NULL : in_value(im, n, 2);
    if ((st = only_attrs(im, matmul ? (const char *const[]){NULL} : ok)) || (st = need_act(im, a, 0, 0)) ||
        (st = need_const(im, bv, 1)))
        return st;
    if (a->rank != 2 && (a->h != 1 || a->w != 1))
        return nerr(im, "input 0 ('%.128s') must be (batch, features); flatten it first", a->name);
    int64_t ta, tb;
    float alpha, beta;
    if ((st = attr_int(im, "transA", 0, &ta)) || (st = attr_int(im, "transB", 0, &tb)) ||
        (st = attr_float(im, "alpha", 1.f, &alpha)) || (st = attr_float(im, "beta", 1.f, &beta)))
        return st;
    if (ta) return nerr(im, "transA 1 is not supported");
    const cten *b = &bv->t;
    if (b->nd != 2 || b->is_int) return nerr(im, "input 1 ('%.128s') must be a 2-D float matrix", bv->name);
    int64_t k_in = tb ? b->dims[1] : b->dims[0], out = tb ? b->dims[0] : b->dims[1];
    if (k_in != a->c || out < 1 || out > (1 << 20))
        return nerr(im, "weight [%lld,%lld]%s does not fit %d input features", (long long)b->dims[0],
                    (long long)b->dims[1], tb ? " (transposed)" : "", a->c);
    if (cv) {
        if ((st = need_const(im, cv, 2))) return st;
        if (cv->t.is_int || (cv->t.n != 1 && cv->t.n != (size_t)out)) return nerr(im, "bias must hold 1 or %lld floats", (long long)out);
    }
    kd_layer *L;
    if ((st = new_layer(im, KD_LAYER_LINEAR, (const value *const *)&a, 1, "", &L))) return st;
    L->out = (int)out;
    L->bias = cv != NULL;
    lweights *W = weights_of(im, L);
    W->nw = b->n;
    if (!(W->w = malloc(W->nw * sizeof(float)))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    for (int64_t o = 0; o < out; o++) /* distill's linear weight is (out, in) */
        for (int64_t i = 0; i < k_in; i++) W->w[o * k_in + i] = alpha * b->f[tb ? o * k_in + i : i * out + o];
    if (cv) {
        W->nb = (size_t)out;
        if (!(W->b = malloc(W->nb * sizeof(float)))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        for (int64_t o = 0; o < out; o++) W->b[o] = beta * cv->t.f[cv->t.n == 1 ? 0 : o];
    }
    return def_act(im, im->nl - 1, 2, (int)out, 1, 1);
}

/* Flatten, and Reshape to (batch, features) or to the same shape. */
static kd_status flatten_to(imp *im, const value *x) {
    if (x->h == 1 && x->w == 1) {
        value copy = *x;
        copy.rank = 2;
        return alias(im, &copy);
    }
    kd_layer *L;
    kd_status st = new_layer(im, KD_LAYER_FLATTEN, &x, 1, "", &L);
    if (st) return st;
    return def_act(im, im->nl - 1, 2, x->c * x->h * x->w, 1, 1);
}

static kd_status map_reshape(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"allowzero", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    int64_t d[MAX_DIMS], allowzero;
    size_t nd;
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 0)) || (st = attr_int(im, "allowzero", 0, &allowzero)) ||
        (st = int_list(im, in_value(im, n, 1), 1, d, MAX_DIMS, &nd)))
        return st;
    int64_t full[4] = {im->batch, x->c, x->h, x->w};
    int64_t total = kd_size_mul(kd_size_mul(im->batch, x->c), kd_size_mul(x->h, x->w)), known = 1;
    int neg = -1;
    for (size_t k = 0; k < nd; k++) {
        if (d[k] == 0 && !allowzero && (int)k < x->rank) d[k] = full[k];
        if (d[k] == -1 && neg < 0) neg = (int)k;
        else if (d[k] <= 0) return nerr(im, "shape value %lld is not supported", (long long)d[k]);
        else known = kd_size_mul(known, d[k]);
    }
    if (neg >= 0) d[neg] = known && total % known == 0 ? total / known : -1;
    int64_t prod = 1;
    for (size_t k = 0; k < nd; k++) prod = kd_size_mul(prod, d[k]);
    if (nd >= 1 && d[0] == im->batch && prod == total) {
        if (nd == 2) return flatten_to(im, x);
        if (nd == 4 && d[1] == x->c && d[2] == x->h && d[3] == x->w) { /* the same, or (N, C) -> (N, C, 1, 1) */
            value copy = *x;
            copy.rank = 4;
            return alias(im, &copy);
        }
    }
    char shape[128] = "";
    for (size_t k = 0; k < nd && strlen(shape) < 100; k++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", k ? "," : "", (long long)d[k]);
    return nerr(im, "reshape of (N,%d,%d,%d) to [%s] is not supported (supported: to (N, features), to the same "
                    "shape, or (N, C) to (N, C, 1, 1))", x->c, x->h, x->w, shape);
}

static kd_status map_squeeze(imp *im, const Onnx__NodeProto *n, int unsq) {
    static const char *const ok[] = {"axes", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    int64_t axes[MAX_DIMS];
    size_t na;
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 0)) || (st = get_axes(im, n, axes, &na))) return st;
    int want = unsq ? 2 : 4, out_rank = unsq ? 4 : 2, mark[4] = {0};
    for (size_t k = 0; k < na; k++) {
        int ax;
        if (!norm_axis(axes[k], out_rank > want ? out_rank : want, &ax) || ax < 2) { mark[0] = 1; break; }
        mark[ax] = 1;
    }
    int ok_axes = na ? !mark[0] && mark[2] && mark[3] && na == 2 : !unsq;
    if (x->rank == want && x->h == 1 && x->w == 1 && ok_axes) {
        value copy = *x;
        copy.rank = out_rank;
        return alias(im, &copy);
    }
    return nerr(im, "%s of a rank-%d tensor (N,%d,%d,%d) is not supported (supported: between (N, C, 1, 1) and (N, C) "
                    "on axes 2, 3)", unsq ? "Unsqueeze" : "Squeeze", x->rank, x->c, x->h, x->w);
}

static kd_status map_flatten(imp *im, const Onnx__NodeProto *n) {
    static const char *const ok[] = {"axis", NULL};
    kd_status st;
    value *x = in_value(im, n, 0);
    int64_t axis64;
    int axis;
    if ((st = only_attrs(im, ok)) || (st = need_act(im, x, 0, 0)) || (st = attr_int(im, "axis", 1, &axis64))) return st;
    if (!norm_axis(axis64, x->rank + 1, &axis) || axis != 1) return nerr(im, "axis %lld is not supported (supported: 1)", (long long)axis64);
    return flatten_to(im, x);
}

static kd_status map_constant(imp *im, const Onnx__NodeProto *n) {
    if (n->n_attribute != 1 || !n->attribute[0] || !n->attribute[0]->name) return nerr(im, "needs exactly one attribute");
    const Onnx__AttributeProto *a = n->attribute[0];
    cten t;
    kd_status st;
    int64_t one = 1;
    im->info.n_folded++;
    if (!strcmp(a->name, "value") && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR && a->t) {
        if ((st = tensor_to_cten(im, a->t, &t))) return st;
    } else if (!strcmp(a->name, "value_float") && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) {
        if ((st = cten_alloc(im, &t, 0, 0, NULL, "constant"))) return st;
        t.f[0] = a->f;
    } else if (!strcmp(a->name, "value_int") && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) {
        if ((st = cten_alloc(im, &t, 1, 0, NULL, "constant"))) return st;
        t.i[0] = a->i;
    } else if (!strcmp(a->name, "value_floats") && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS) {
        one = (int64_t)a->n_floats;
        if ((st = cten_alloc(im, &t, 0, 1, &one, "constant"))) return st;
        memcpy(t.f, a->floats, a->n_floats * sizeof *t.f);
    } else if (!strcmp(a->name, "value_ints") && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) {
        one = (int64_t)a->n_ints;
        if ((st = cten_alloc(im, &t, 1, 1, &one, "constant"))) return st;
        memcpy(t.i, a->ints, a->n_ints * sizeof *t.i);
    } else {
        return nerr(im, "attribute '%.64s' is not supported (supported: value, value_float(s), value_int(s))", a->name);
    }
    return def_const(im, 0, &t);
}

static int is_graph_output(const Onnx__GraphProto *g, const char *name) {
    for (size_t k = 0; k < g->n_output; k++)
        if (g->output[k] && g->output[k]->name && !strcmp(g->output[k]->name, name)) return 1;
    return 0;
}

static kd_status map_node(imp *im, const Onnx__NodeProto *n, const Onnx__GraphProto *g) {
    im->node = n;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
        return nerr(im, "operator domain '%.64s' is not supported (supported: the default ONNX domain)", n->domain);
    if (!n->n_output || !n->output[0] || !*n->output[0]) return nerr(im, "has no output");
    for (size_t k = 0; k < n->n_output; k++)
        if (n->output[k] && *n->output[k] && find_value(im, n->output[k]))
            return nerr(im, "output '%.128s' is defined twice", n->output[k]);
    if (!strcmp(op, "Constant")) return map_constant(im, n);
    int done;
    kd_status st = try_fold(im, n, op, &done);
    if (st || done) return st;
    value *x = in_value(im, n, 0);
    if (!strcmp(op, "Conv")) return map_conv(im, n);
    if (!strcmp(op, "BatchNormalization")) return map_batchnorm(im, n, g);
    if (!strcmp(op, "Relu") || !strcmp(op, "Sigmoid") || !strcmp(op, "HardSwish")) {
        if ((st = only_attrs(im, (const char *const[]){NULL}))) return st;
        return unary(im, x, op[0] == 'R' ? KD_LAYER_RELU : op[0] == 'S' ? KD_LAYER_SIGMOID : KD_LAYER_HARD_SWISH, NULL);
    }
    if (!strcmp(op, "LeakyRelu") || !strcmp(op, "HardSigmoid")) {
        int hs = op[0] == 'H';
        kd_layer *L;
        float alpha, beta;
        if ((st = only_attrs(im, hs ? (const char *const[]){"alpha", "beta", NULL} : (const char *const[]){"alpha", NULL})) ||
            (st = attr_float(im, "alpha", hs ? 0.2f : 0.01f, &alpha)) || (st = attr_float(im, "beta", 0.5f, &beta)) ||
            (st = unary(im, x, hs ? KD_LAYER_HARD_SIGMOID : KD_LAYER_LEAKY_RELU, &L)))
            return st;
        L->alpha = alpha;
        L->beta = hs ? beta : 0.f;
        return KD_STATUS_OK;
    }
    if (!strcmp(op, "Clip")) return map_clip(im, n);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) return map_binary(im, n, g, op);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) return map_pool(im, n, g, op[0] == 'A');
    if (!strcmp(op, "GlobalAveragePool")) {
        kd_layer *L;
        if ((st = only_attrs(im, (const char *const[]){NULL})) || (st = need_act(im, x, 0, 4)) ||
            (st = new_layer(im, KD_LAYER_GLOBAL_AVGPOOL, (const value *const *)&x, 1, "", &L)))
            return st;
        return def_act(im, im->nl - 1, 4, x->c, 1, 1);
    }
    if (!strcmp(op, "Concat")) return map_concat(im, n);
    if (!strcmp(op, "Pad")) return map_pad(im, n);
    if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) return map_gemm(im, n, op[0] == 'M');
    if (!strcmp(op, "Flatten")) return map_flatten(im, n);
    if (!strcmp(op, "Reshape")) return map_reshape(im, n);
    if (!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze")) return map_squeeze(im, n, op[0] == 'U');
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        if ((st = need_act(im, x, 0, 0)) || (st = extra_outputs_unused(im, g))) return st;
        return alias(im, x);
    }
    if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
        if ((st = need_act(im, x, 0, 0))) return st;
        if (!is_graph_output(g, n->output[0]) || x->h != 1 || x->w != 1)
            return nerr(im, "%s is supported only as the last node, on the class scores (it is dropped: distill "
                            "works with logits)", op);
        im->info.softmax_dropped = 1;
        return alias(im, x);
    }
    return nerr(im, "operator %.64s is not supported (supported: %s)", op, SUPPORTED);
}

/* ------------------------------------------------------------ the wire format */

/* protobuf-c's unpack recurses once per nested message, without a limit, and onnx.proto is recursive
 * (AttributeProto.g -> GraphProto -> NodeProto -> AttributeProto; TypeProto -> TypeProto): a small
 * file nesting thousands deep would overflow the stack. So the bytes are walked first, guided by the
 * generated descriptors, and a nesting deeper than ONNX_MAX_DEPTH messages (or a malformed varint or
 * length) is refused. */
#define ONNX_MAX_DEPTH 64

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p == end) return 0;
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* 0, or a description of what is wrong in the message [p, end) of type d at depth `depth`. */
static const char *wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > ONNX_MAX_DEPTH) return "messages nested deeper than 64";
    while (p < end) {
        uint64_t tag, v;
        if (!wire_varint(&p, end, &tag)) return "a malformed field tag";
        switch (tag & 7) {
        case 0:
            if (!wire_varint(&p, end, &v)) return "a malformed varint";
            break;
        case 1:
        case 5: {
            size_t w = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < w) return "a truncated fixed-size field";
            p += w;
            break;
        }
        case 2: {
            if (!wire_varint(&p, end, &v) || v > (uint64_t)(end - p)) return "a length past the end of its message";
            const ProtobufCFieldDescriptor *f =
                d && tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                const char *why = wire_check(f->descriptor, p, p + v, depth + 1);
                if (why) return why;
            }
            p += v;
            break;
        }
        default: return "an unsupported wire type (groups, or not a protobuf)";
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ the model */

int kd_onnx_is_path(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n > 5 && !strcmp(path + n - 5, ".onnx");
}

/* The single image input: its name, (C, H, W) and batch. */
static kd_status graph_input(imp *im, const Onnx__GraphProto *g, const Onnx__ValueInfoProto **out, int dims[3]) {
    const Onnx__ValueInfoProto *in = NULL;
    int n_in = 0;
    char names[200] = "";
    for (size_t k = 0; k < g->n_input; k++) {
        const Onnx__ValueInfoProto *v = g->input[k];
        if (!v || !v->name) return ferr(im, KD_STATUS_BAD_MODEL, "graph input %zu has no name", k);
        value *c = find_value(im, v->name);
        if (c && c->kind == V_CONST) continue; /* an initializer listed as an input (older exporters) */
        if (n_in++ < 4) snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%.32s'", n_in > 1 ? ", " : "", v->name);
        in = v;
    }
    if (n_in != 1)
        return ferr(im, KD_STATUS_BAD_MODEL, "the graph has %d inputs%s%s; distill models take one image tensor "
                                             "(N, C, H, W)", n_in, n_in ? ": " : "", names);
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return ferr(im, KD_STATUS_BAD_MODEL, "input '%.128s' is not a tensor", in->name);
    if (t->tensor_type->elem_type != DT_FLOAT)
        return ferr(im, KD_STATUS_BAD_MODEL, "input '%.128s' has element type %d (supported: float32)", in->name,
                    t->tensor_type->elem_type);
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    if (!s || s->n_dim != 4)
        return ferr(im, KD_STATUS_BAD_MODEL, "input '%.128s' has %s dimensions (supported: 4, (N, C, H, W))", in->name,
                    s ? (s->n_dim == 2 ? "2" : s->n_dim == 3 ? "3" : "not 4") : "unknown");
    static const char *const what[4] = {"batch", "channels", "height", "width"};
    for (int k = 0; k < 4; k++) {
        const Onnx__TensorShapeProto__Dimension *d = s->dim[k];
        int known = d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (k == 0) {
            im->batch = known && d->dim_value >= 1 ? d->dim_value : 1;
            continue;
        }
        if (!known)
            return ferr(im, KD_STATUS_BAD_MODEL, "input '%.128s': the %s is '%.32s', not a number; distill needs a "
                                                 "fixed (C, H, W) (only the batch may vary; re-export with a fixed size)",
                        in->name, what[k], d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                                                   d->dim_param ? d->dim_param : "?");
        if (d->dim_value < 1 || d->dim_value > 65536)
            return ferr(im, KD_STATUS_BAD_MODEL, "input '%.128s': %s %lld out of range (1..65536)", in->name, what[k],
                        (long long)d->dim_value);
        dims[k - 1] = (int)d->dim_value;
    }
    *out = in;
    return KD_STATUS_OK;
}

/* The YAML of the layers, with the normalisation (`normalize:`) when given. */
static kd_status model_yaml(imp *im, const char *name, const int dims[3], const kd_onnx_import_opts *o, char **yaml) {
    kd_model like = {.in_c = dims[0], .in_h = dims[1], .in_w = dims[2]};
    snprintf(like.name, sizeof like.name, "%s", name);
    float *norm = NULL;
    if (o && o->n_norm > 0) {
        if (!(norm = malloc(2 * (size_t)dims[0] * sizeof *norm))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        for (int c = 0; c < dims[0]; c++) {
            norm[c] = o->mean[o->n_norm == 1 ? 0 : c];
            norm[dims[0] + c] = o->std[o->n_norm == 1 ? 0 : c];
        }
        like.norm_mean = norm;
        like.norm_std = norm + dims[0];
    }
    kd_status st = kd_model_yaml_from_layers(&like, im->L, im->nl, yaml, im->err);
    free(norm);
    return st;
}

/* The normalisation a file written by `distill export` carries in its metadata (distill.normalize.mean
 * and .std: C comma-separated numbers each), into norm[0..2C); *found 0 when it has none. */
static kd_status meta_norm(imp *im, const Onnx__ModelProto *mp, int c, float *norm, int *found) {
    static const char *const keys[2] = {"distill.normalize.mean", "distill.normalize.std"};
    *found = 0;
    for (int k = 0; k < 2; k++) {
        const char *text = NULL;
        for (size_t j = 0; j < mp->n_metadata_props; j++)
            if (mp->metadata_props[j] && mp->metadata_props[j]->key && !strcmp(mp->metadata_props[j]->key, keys[k]))
                text = mp->metadata_props[j]->value;
        if (!text) {
            if (k == 1 && *found) return ferr(im, KD_STATUS_BAD_MODEL, "metadata %s without %s", keys[0], keys[1]);
            if (k == 1) return KD_STATUS_OK;
            continue;
        }
        if (k == 1 && !*found) return ferr(im, KD_STATUS_BAD_MODEL, "metadata %s without %s", keys[1], keys[0]);
        *found = 1;
        const char *p = text;
        for (int i = 0; i < c; i++) {
            char *end = NULL;
            float v = strtof(p, &end);
            if (end == p || !isfinite(v) || (k == 1 && !(v > 0.f)) || (i < c - 1 ? *end != ',' : *end != 0))
                return ferr(im, KD_STATUS_BAD_MODEL, "metadata %s is '%.64s': expected %d comma-separated %s numbers",
                            keys[k], text, c, k ? "positive" : "finite");
            norm[k * c + i] = v;
            p = end + 1;
        }
    }
    return KD_STATUS_OK;
}

/* Copy the imported weights into the built model (same layer order). */
static kd_status copy_weights(imp *im, kd_model *m) {
    for (int i = 0; i < im->nl; i++) {
        const kd_layer *L = &m->layers[i];
        const lweights *W = &im->W[i];
        if ((W->w && L->w_size != W->nw) || (W->b && L->b_size != W->nb) || (!W->w && L->w_size) || (!W->b && L->b_size))
            return ferr(im, KD_STATUS_BAD_MODEL, "layer %s: the built model's parameters (%zu, %zu) do not match the "
                                                 "file's (%zu, %zu)", L->name, L->w_size, L->b_size, W->nw, W->nb);
        if (W->w) memcpy(m->params + L->w_off, W->w, W->nw * sizeof(float));
        if (W->b) memcpy(m->params + L->b_off, W->b, W->nb * sizeof(float));
        if (W->mean) {
            memcpy(m->buffers + L->buf_off, W->mean, W->nw * sizeof(float));
            memcpy(m->buffers + L->buf_off + W->nw, W->var, W->nw * sizeof(float));
        }
    }
    return KD_STATUS_OK;
}

/* The weights of the layers from `first` on (the current node's), after folding: all finite (a Div by
 * a constant holding 0, say, would give inf). */
static kd_status weights_finite(imp *im, int first) {
    for (int i = first; i < im->nl; i++) {
        const lweights *W = &im->W[i];
        const float *arr[4] = {W->w, W->b, W->mean, W->var};
        const size_t len[4] = {W->nw, W->nb, W->nw, W->nw};
        for (int a = 0; a < 4; a++)
            for (size_t k = 0; arr[a] && k < len[a]; k++)
                if (!isfinite(arr[a][k]))
                    return nerr(im, "layer %s gets a non-finite weight (%g) from its constants (a division by zero?)",
                                im->L[i].name, (double)arr[a][k]);
    }
    return KD_STATUS_OK;
}

static kd_status import_graph(imp *im, const Onnx__ModelProto *mp, const kd_onnx_import_opts *o, kd_model **out) {
    kd_status st;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[k];
        if (os && (!os->domain || !*os->domain || !strcmp(os->domain, "ai.onnx")))
            im->opset = os->has_version && os->version >= 0 && os->version < 1000 ? (int)os->version : -1;
    }
    if (!im->opset) return ferr(im, KD_STATUS_BAD_MODEL, "no opset of the default ONNX domain is imported");
    if (im->opset < 11 || im->opset > 17)
        return ferr(im, KD_STATUS_BAD_MODEL, "opset %d is not supported (supported: 11 to 17; re-export with "
                                             "opset_version=13, say)", im->opset);
    im->info.opset = im->opset;
    const Onnx__GraphProto *g = mp->graph;
    if (!g) return ferr(im, KD_STATUS_BAD_FILE, "not an ONNX model: it has no graph");
    if (g->n_node > ONNX_MAX_NODES || g->n_initializer > ONNX_MAX_NODES)
        return ferr(im, KD_STATUS_BAD_MODEL, "the graph has %zu nodes and %zu initializers (at most %d of each)",
                    g->n_node, g->n_initializer, ONNX_MAX_NODES);
    im->info.n_nodes = (int)g->n_node;
    if (g->n_sparse_initializer) return ferr(im, KD_STATUS_BAD_MODEL, "sparse initializers are not supported");
    for (size_t k = 0; k < g->n_initializer; k++) {
        const Onnx__TensorProto *tp = g->initializer[k];
        if (!tp || !tp->name || !*tp->name) return ferr(im, KD_STATUS_BAD_MODEL, "initializer %zu has no name", k);
        cten t;
        if ((st = tensor_to_cten(im, tp, &t))) return st;
        value *v = new_value(im, tp->name);
        if (!v) {
            cten_free(&t);
            return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        }
        v->kind = V_CONST;
        v->t = t;
    }
    const Onnx__ValueInfoProto *in = NULL;
    int dims[3];
    if ((st = graph_input(im, g, &in, dims))) return st;
    value *x = new_value(im, in->name);
    if (!x) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
    x->kind = V_ACT;
    x->layer = KD_MODEL_INPUT;
    x->rank = 4;
    x->c = dims[0]; x->h = dims[1]; x->w = dims[2];
    for (size_t k = 0; k < g->n_node; k++) {
        if (!g->node[k]) return ferr(im, KD_STATUS_BAD_FILE, "node %zu is empty", k);
        int first = im->nl;
        if ((st = map_node(im, g->node[k], g)) || (st = weights_finite(im, first))) return st;
    }
    if (g->n_output != 1 || !g->output[0] || !g->output[0]->name)
        return ferr(im, KD_STATUS_BAD_MODEL, "the graph has %zu outputs; distill models have one (the class scores)",
                    g->n_output);
    const value *y = find_value(im, g->output[0]->name);
    if (!y || y->kind != V_ACT || y->layer < 0)
        return ferr(im, KD_STATUS_BAD_MODEL, "the graph output '%.128s' is not computed from the input by a layer",
                    g->output[0]->name);
    if (y->layer != im->nl - 1)
        return ferr(im, KD_STATUS_BAD_MODEL, "the graph output '%.128s' is not the last layer computed (layer %s "
                                             "comes after it); distill takes the last layer as the class scores",
                    g->output[0]->name, im->L[im->nl - 1].name);
    if (o && o->n_norm && o->n_norm != 1 && o->n_norm != dims[0])
        return kd_error_set(im->err, KD_STATUS_BAD_ARG, "%s: the normalisation has %d values per statistic, the model "
                                                        "takes %d channels", im->path, o->n_norm, dims[0]);
    /* the model's name: given, or the file's without directory and extension */
    char name[KD_NAME_MAX];
    const char *base = strrchr(im->path, '/');
    base = base ? base + 1 : im->path;
    if (o && o->name) snprintf(name, sizeof name, "%s", o->name);
    else snprintf(name, sizeof name, "%.*s", (int)(kd_onnx_is_path(base) ? strlen(base) - 5 : strlen(base)), base);
    /* no normalisation given: the one a distill export stored, if any */
    kd_onnx_import_opts from_meta = {0};
    float *norm = NULL;
    if (!o || !o->n_norm) {
        int found;
        if (!(norm = malloc(2 * (size_t)dims[0] * sizeof *norm))) return ferr(im, KD_STATUS_NO_MEMORY, "out of memory");
        if ((st = meta_norm(im, mp, dims[0], norm, &found))) {
            free(norm);
            return st;
        }
        if (found) {
            from_meta = (kd_onnx_import_opts){.mean = norm, .std = norm + dims[0], .n_norm = dims[0]};
            o = &from_meta;
        }
    }
    char *yaml = NULL;
    st = model_yaml(im, name, dims, o, &yaml);
    free(norm);
    if (st) return st;
    char source[600];
    snprintf(source, sizeof source, "%s (as a distill model)", im->path);
    kd_model *m = NULL;
    st = kd_model_from_yaml(&m, yaml, source, 1, im->err);
    free(yaml);
    if (st) return st;
    if ((st = copy_weights(im, m))) {
        kd_model_free(m);
        return st;
    }
    *out = m;
    return KD_STATUS_OK;
}

kd_status kd_onnx_import(const char *path, const kd_onnx_import_opts *o, kd_model **out, kd_onnx_import_info *info,
                         kd_error *err) {
    *out = NULL;
    if (o && o->n_norm)
        for (int c = 0; c < o->n_norm; c++)
            if (!(o->std[c] > 0.f) || !isfinite(o->mean[c]) || !isfinite(o->std[c]))
                return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: the normalisation's std must be positive and finite",
                                    path);
    char *buf = NULL;
    size_t len = 0;
    kd_status st = kd_read_file_max(path, ONNX_MAX_BYTES, "an ONNX model", &buf, &len, err);
    if (st) return st;
    const char *why = wire_check(&onnx__model_proto__descriptor, (const uint8_t *)buf, (const uint8_t *)buf + len, 0);
    if (why) {
        free(buf);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a valid ONNX model (the protobuf holds %s)", path, why);
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    free(buf);
    if (!mp)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a valid ONNX model (the protobuf does not parse: "
                                                     "truncated, or not an ONNX file)", path);
    imp im = {.path = path, .err = err, .budget = ONNX_BUDGET(len)};
    st = import_graph(&im, mp, o, out);
    if (info) *info = im.info;
    for (int k = 0; k < im.nv; k++) cten_free(&im.v[k].t);
    for (int k = 0; k < im.nl; k++) {
        free(im.W[k].w);
        free(im.W[k].b);
        free(im.W[k].mean);
        free(im.W[k].var);
    }
    free(im.v);
    free(im.hash);
    free(im.L);
    free(im.W);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}
