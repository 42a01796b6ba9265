/* distill -> ONNX (include/distill/onnx.h, docs/ONNX.md "Export"): an fp32 kd_model, or an int8
 * model in QLinear* operators whose integer accumulation is kdrt's, as an ONNX ModelProto built in
 * protobuf-c's generated structs, packed by protobuf-c and written atomically. Every part of the
 * message tree is malloc'd on its own, so protobuf-c's free_unpacked frees it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/onnx.h"
#include "distill/version.h"
#include "onnx.pb-c.h"

#define IR_VERSION 7 /* ONNX 1.7+: the IR of opsets 12-14 */
#define MS_DOMAIN "com.microsoft"
enum { T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, T_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
       T_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32, T_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64 };

/* ---- Building the message tree ----------------------------------------------------------------- */

typedef struct gb {  /* a graph being built; after a failed allocation every call is a no-op */
    Onnx__GraphProto *g;
    size_t cap_node, cap_init;
    int oom, ms_domain;  /* ms_domain: a com.microsoft operator was used */
} gb;

static void *gb_alloc(gb *b, size_t n) { /* zeroed */
    void *p = b->oom ? NULL : calloc(1, n ? n : 1);
    if (!p) b->oom = 1;
    return p;
}

static char *gb_str(gb *b, const char *fmt, ...) {
    char buf[2 * KD_NAME_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t n = strlen(buf) + 1;
    char *s = gb_alloc(b, n);
    if (s) memcpy(s, buf, n);
    return s;
}

/* The array arr of n pointers (capacity *cap) with room for one more: arr itself, or a larger copy
 * (the old one freed); NULL when it cannot grow (arr is then left as it was). */
static void *gb_grow(gb *b, void *arr, size_t n, size_t *cap) {
    if (b->oom) return NULL;
    if (n < *cap) return arr;
    size_t nc = *cap ? 2 * *cap : 16;
    void *na = realloc(arr, nc * sizeof(void *));
    if (!na) b->oom = 1;
    else *cap = nc;
    return na;
}

/* A node computing op(in[0..n_in)) -> out, named `name`, appended to the graph (NULL after a failed
 * allocation). The strings are copied. */
static Onnx__NodeProto *gb_node(gb *b, const char *op, const char *name, int n_in, const char *const *in,
                                const char *out) {
    Onnx__NodeProto *nd = gb_alloc(b, sizeof *nd);
    if (!nd) return NULL;
    onnx__node_proto__init(nd);
    Onnx__NodeProto **arr = gb_grow(b, b->g->node, b->g->n_node, &b->cap_node);
    if (!arr) {
        free(nd);
        return NULL;
    }
    b->g->node = arr;
    b->g->node[b->g->n_node++] = nd;
    nd->op_type = gb_str(b, "%s", op);
    nd->name = gb_str(b, "%s", name);
    if ((nd->input = gb_alloc(b, (size_t)n_in * sizeof(char *)))) {
        nd->n_input = (size_t)n_in;
        for (int i = 0; i < n_in; i++) nd->input[i] = gb_str(b, "%s", in[i]);
    }
    if ((nd->output = gb_alloc(b, sizeof(char *)))) {
        nd->n_output = 1;
        nd->output[0] = gb_str(b, "%s", out);
    }
    return b->oom ? NULL : nd;
}

static Onnx__NodeProto *gb_node_ms(gb *b, const char *op, const char *name, int n_in, const char *const *in,
                                   const char *out) {
    Onnx__NodeProto *nd = gb_node(b, op, name, n_in, in, out);
    if (nd) nd->domain = gb_str(b, MS_DOMAIN);
    b->ms_domain = 1;
    return nd;
}

static Onnx__AttributeProto *gb_attr(gb *b, Onnx__NodeProto *nd, const char *name, Onnx__AttributeProto__AttributeType t) {
    if (!nd || b->oom) return NULL;
    Onnx__AttributeProto **na = realloc(nd->attribute, (nd->n_attribute + 1) * sizeof *na);
    Onnx__AttributeProto *a = na ? gb_alloc(b, sizeof *a) : NULL;
    if (na) nd->attribute = na;
    if (!a) {
        b->oom = 1;
        return NULL;
    }
    onnx__attribute_proto__init(a);
    nd->attribute[nd->n_attribute++] = a;
    a->name = gb_str(b, "%s", name);
    a->has_type = 1;
    a->type = t;
    return a;
}

static void gb_attr_int(gb *b, Onnx__NodeProto *nd, const char *name, int64_t v) {
    Onnx__AttributeProto *a = gb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void gb_attr_float(gb *b, Onnx__NodeProto *nd, const char *name, float v) {
    Onnx__AttributeProto *a = gb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

static void gb_attr_ints(gb *b, Onnx__NodeProto *nd, const char *name, int n, const int64_t *v) {
    Onnx__AttributeProto *a = gb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (a && (a->ints = gb_alloc(b, (size_t)n * sizeof *a->ints))) {
        a->n_ints = (size_t)n;
        memcpy(a->ints, v, (size_t)n * sizeof *v);
    }
}

/* The window attributes of a conv or pool: kernel_shape, strides, pads (top, left, bottom, right). */
static void gb_window(gb *b, Onnx__NodeProto *nd, int kh, int kw, int sh, int sw, const int pads[4]) {
    int64_t k[2] = {kh, kw}, s[2] = {sh, sw}, p[4] = {pads[0], pads[1], pads[2], pads[3]};
    gb_attr_ints(b, nd, "kernel_shape", 2, k);
    gb_attr_ints(b, nd, "strides", 2, s);
    gb_attr_ints(b, nd, "pads", 4, p);
}

/* An initializer: count elements of elem bytes each (little-endian in the file, as raw_data
 * holds them on every host), dims[0..nd). Returns its name (owned by the graph), NULL on failure. */
static const char *gb_tensor(gb *b, const char *name, int dtype, int nd, const int64_t *dims, const void *data,
                             size_t elem, size_t count) {
    Onnx__TensorProto *t = gb_alloc(b, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    Onnx__TensorProto **arr = gb_grow(b, b->g->initializer, b->g->n_initializer, &b->cap_init);
    if (!arr) {
        free(t);
        return NULL;
    }
    b->g->initializer = arr;
    b->g->initializer[b->g->n_initializer++] = t;
    t->name = gb_str(b, "%s", name);
    t->has_data_type = 1;
    t->data_type = dtype;
    if (nd > 0 && (t->dims = gb_alloc(b, (size_t)nd * sizeof *t->dims))) {
        t->n_dims = (size_t)nd;
        memcpy(t->dims, dims, (size_t)nd * sizeof *dims);
    }
    unsigned char *raw = gb_alloc(b, elem * count);
    if (!raw) return NULL;
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = elem * count;
    const uint16_t one = 1;
    int little = *(const unsigned char *)&one == 1;
    const unsigned char *src = data;
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < elem; k++) raw[i * elem + k] = src[i * elem + (little ? k : elem - 1 - k)];
    return b->oom ? NULL : t->name;
}

static const char *gb_scalar_f(gb *b, const char *name, float v) { return gb_tensor(b, name, T_FLOAT, 0, NULL, &v, 4, 1); }
static const char *gb_scalar_i8(gb *b, const char *name, int v) {
    int8_t x = (int8_t)v;
    return gb_tensor(b, name, T_INT8, 0, NULL, &x, 1, 1);
}

/* A graph input or output of type dtype, shape (N, dims[1..nd)) with the batch "N" symbolic. */
static Onnx__ValueInfoProto *gb_io(gb *b, const char *name, int dtype, int nd, const int64_t *dims) {
    Onnx__ValueInfoProto *v = gb_alloc(b, sizeof *v);
    Onnx__TypeProto *tp = gb_alloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = gb_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = gb_alloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dim = gb_alloc(b, (size_t)nd * sizeof *dim);
    if (b->oom) {
        free(v); free(tp); free(tt); free(sh); free(dim);
        return NULL;
    }
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    v->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sh;
    sh->dim = dim;
    v->name = gb_str(b, "%s", name);
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = gb_alloc(b, sizeof *d);
        if (!d) break;
        onnx__tensor_shape_proto__dimension__init(d);
        sh->dim[sh->n_dim++] = d;
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = gb_str(b, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
    }
    return v;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Every value a node writes and every initializer has a name of its own (the graph input's too). */
static kd_status check_names(const Onnx__GraphProto *g, kd_error *err) {
    size_t n = 1 + g->n_node + g->n_initializer, k = 0;
    const char **names = malloc(n * sizeof *names);
    if (!names) return kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export: out of memory");
    names[k++] = KD_ONNX_INPUT_NAME;
    for (size_t i = 0; i < g->n_node; i++) names[k++] = g->node[i]->output[0];
    for (size_t i = 0; i < g->n_initializer; i++) names[k++] = g->initializer[i]->name;
    qsort(names, n, sizeof *names, cmp_str);
    kd_status st = KD_STATUS_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (!strcmp(names[i - 1], names[i]))
            st = kd_error_set(err, KD_STATUS_BAD_MODEL,
                              "ONNX export: two values would be named '%s' (a layer named so collides with "
                              "another layer's weights or helper value, or with the graph input or output: "
                              "rename it)", names[i]);
    free(names);
    return st;
}

/* Wrap the graph into a model, pack it into *bytes and free the tree. meta: n_meta key/value pairs. */
static kd_status gb_finish(gb *b, const char *model_name, int in_c, int in_h, int in_w, int n_classes,
                           int n_meta, const char *const *meta, unsigned char **bytes, size_t *len, kd_error *err) {
    Onnx__ModelProto *mp = gb_alloc(b, sizeof *mp);
    kd_status st = KD_STATUS_OK;
    if (mp) {
        onnx__model_proto__init(mp);
        mp->graph = b->g;
        mp->has_ir_version = 1;
        mp->ir_version = IR_VERSION;
        mp->producer_name = gb_str(b, "distill");
        mp->producer_version = gb_str(b, "%s", KD_VERSION_STRING);
        mp->doc_string = gb_str(b, "model %s exported by distill %s", model_name, KD_VERSION_STRING);
        b->g->name = gb_str(b, "%s", model_name);
        int n_ops = b->ms_domain ? 2 : 1;
        if ((mp->opset_import = gb_alloc(b, (size_t)n_ops * sizeof *mp->opset_import)))
            for (int i = 0; i < n_ops; i++) {
                Onnx__OperatorSetIdProto *o = gb_alloc(b, sizeof *o);
                if (!o) break;
                onnx__operator_set_id_proto__init(o);
                mp->opset_import[mp->n_opset_import++] = o;
                o->domain = gb_str(b, "%s", i ? MS_DOMAIN : "");
                o->has_version = 1;
                o->version = i ? 1 : KD_ONNX_EXPORT_OPSET;
            }
        if ((mp->metadata_props = gb_alloc(b, (size_t)n_meta * sizeof *mp->metadata_props)))
            for (int i = 0; i < n_meta; i++) {
                Onnx__StringStringEntryProto *e = gb_alloc(b, sizeof *e);
                if (!e) break;
                onnx__string_string_entry_proto__init(e);
                mp->metadata_props[mp->n_metadata_props++] = e;
                e->key = gb_str(b, "%s", meta[2 * i]);
                e->value = gb_str(b, "%s", meta[2 * i + 1]);
            }
        int64_t din[4] = {-1, in_c, in_h, in_w}, dout[2] = {-1, n_classes};
        if ((b->g->input = gb_alloc(b, sizeof *b->g->input)) &&
            (b->g->input[0] = gb_io(b, KD_ONNX_INPUT_NAME, T_FLOAT, 4, din)))
            b->g->n_input = 1;
        if ((b->g->output = gb_alloc(b, sizeof *b->g->output)) &&
            (b->g->output[0] = gb_io(b, KD_ONNX_OUTPUT_NAME, T_FLOAT, 2, dout)))
            b->g->n_output = 1;
    }
    if (b->oom) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export of %s: out of memory", model_name);
    if (!st) st = check_names(b->g, err);
    if (!st) {
        *len = onnx__model_proto__get_packed_size(mp);
        if (!(*bytes = malloc(*len ? *len : 1)))
            st = kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export of %s: cannot allocate %zu bytes", model_name, *len);
        else
            onnx__model_proto__pack(mp, *bytes);
    }
    if (mp) onnx__model_proto__free_unpacked(mp, NULL);
    else if (b->g) onnx__graph_proto__free_unpacked(b->g, NULL);
    b->g = NULL;
    return st;
}

static kd_status gb_start(gb *b, kd_error *err) {
    memset(b, 0, sizeof *b);
    if (!(b->g = calloc(1, sizeof *b->g))) return kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export: out of memory");
    onnx__graph_proto__init(b->g);
    return KD_STATUS_OK;
}

/* "%.9g,%.9g,..." of n floats (the metadata's normalisation), malloc'd or NULL. */
static char *floats_text(const float *v, int n) {
    char *s = malloc((size_t)n * 20 + 1);
    if (!s) return NULL;
    size_t k = 0;
    s[0] = '\0';
    for (int i = 0; i < n; i++) k += (size_t)sprintf(s + k, "%s%.9g", i ? "," : "", (double)v[i]);
    return s;
}

/* ---- fp32 -------------------------------------------------------------------------------------- */

typedef struct fval { /* an fp32 value: its name (owned by the graph), rank 2 (N, F) or 4, (c, h, w) */
    const char *name;
    int rank, c, h, w;
} fval;

/* v as a rank-4 tensor: a (N, F) value is reshaped to (N, F, 1, 1). */
static void as_rank4(gb *b, fval *v, const char *layer) {
    if (v->rank == 4) return;
    int64_t shape[4] = {0, (int64_t)v->c * v->h * v->w, 1, 1}, d = 4; /* 0: keep the batch */
    char *sname = gb_str(b, "%s/%s/shape4d", layer, v->name), *out = gb_str(b, "%s/%s/4d", layer, v->name);
    const char *in[2] = {v->name, sname ? gb_tensor(b, sname, T_INT64, 1, &d, shape, 8, 4) : NULL};
    Onnx__NodeProto *nd = out && in[1] ? gb_node(b, "Reshape", out, 2, in, out) : NULL;
    free(sname);
    free(out);
    if (nd) *v = (fval){nd->output[0], 4, (int)shape[1], 1, 1};
}

/* v as (N, F): Flatten. */
static void as_rank2(gb *b, fval *v, const char *layer) {
    if (v->rank == 2) return;
    char *out = gb_str(b, "%s/flatten", layer);
    Onnx__NodeProto *nd = out ? gb_node(b, "Flatten", out, 1, &v->name, out) : NULL;
    free(out);
    if (nd) *v = (fval){nd->output[0], 2, v->c * v->h * v->w, 1, 1};
}

/* An initializer "<layer>.<what>" of n floats from the model's parameters or buffers. */
static const char *param(gb *b, const kd_layer *L, const char *what, const float *data, int nd, const int64_t *dims) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    char *name = gb_str(b, "%s.%s", L->name, what);
    const char *t = name ? gb_tensor(b, name, T_FLOAT, nd, dims, data, 4, n) : NULL;
    free(name);
    return t;
}

/* The n values of a scale layer (one per channel, or one for all), shaped (n, 1, 1) for a rank-4
 * input, (n) for (N, C). */
static const char *channel_param(gb *b, const kd_layer *L, const char *what, const float *data, size_t n, int rank) {
    int64_t dims[3] = {(int64_t)n, 1, 1};
    return param(b, L, what, data, rank == 4 ? 3 : 1, dims);
}

/* A scalar float initializer "<layer>.<what>". */
static const char *scalar_param(gb *b, const kd_layer *L, const char *what, float v) {
    char *name = gb_str(b, "%s.%s", L->name, what);
    const char *t = name ? gb_scalar_f(b, name, v) : NULL;
    free(name);
    return t;
}

/* The nodes of one fp32 layer, inputs x[0..n_inputs), output named out; *y is the result. */
static kd_status fp32_layer(gb *b, const kd_model *m, const kd_layer *L, fval *x, const char *out, fval *y,
                            kd_error *err) {
    const float *P = m->params;
    Onnx__NodeProto *nd = NULL;
    const char *in[KD_LAYER_MAX_INPUTS];
    *y = (fval){NULL, x[0].rank, L->c, L->h, L->w};
    switch (L->type) {
    case KD_LAYER_CONV2D: {
        as_rank4(b, &x[0], L->name);
        int64_t wd[4] = {L->out, L->in_c / L->groups, L->kernel, L->kernel}, bd = L->out;
        int pads[4] = {L->pad, L->pad, L->pad, L->pad}, d = L->dilation > 1 ? L->dilation : 1;
        in[0] = x[0].name;
        in[1] = param(b, L, "weight", P + L->w_off, 4, wd);
        in[2] = L->b_size ? param(b, L, "bias", P + L->b_off, 1, &bd) : NULL;
        if (b->oom) break;
        nd = gb_node(b, "Conv", L->name, L->b_size ? 3 : 2, in, out);
        gb_window(b, nd, L->kernel, L->kernel, L->stride, L->stride, pads);
        int64_t dil[2] = {d, d};
        gb_attr_ints(b, nd, "dilations", 2, dil);
        gb_attr_int(b, nd, "group", L->groups);
        y->rank = 4;
        break;
    }
    case KD_LAYER_LINEAR: {
        as_rank2(b, &x[0], L->name);
        int64_t wd[2] = {L->out, L->in_c}, bd = L->out;
        in[0] = x[0].name;
        in[1] = param(b, L, "weight", P + L->w_off, 2, wd);
        in[2] = L->b_size ? param(b, L, "bias", P + L->b_off, 1, &bd) : NULL;
        if (b->oom) break;
        nd = gb_node(b, "Gemm", L->name, L->b_size ? 3 : 2, in, out);
        gb_attr_int(b, nd, "transB", 1);
        y->rank = 2;
        break;
    }
    case KD_LAYER_MAXPOOL:
    case KD_LAYER_AVGPOOL: {
        as_rank4(b, &x[0], L->name);
        int pads[4] = {L->pad, L->pad, L->pad, L->pad};
        nd = gb_node(b, L->type == KD_LAYER_MAXPOOL ? "MaxPool" : "AveragePool", L->name, 1, &x[0].name, out);
        gb_window(b, nd, L->kernel, L->kernel, L->stride, L->stride, pads);
        gb_attr_int(b, nd, "ceil_mode", L->ceil_mode != 0);
        if (L->type == KD_LAYER_AVGPOOL) gb_attr_int(b, nd, "count_include_pad", L->count_pad != 0);
        y->rank = 4;
        break;
    }
    case KD_LAYER_GLOBAL_AVGPOOL:
        as_rank4(b, &x[0], L->name);
        nd = gb_node(b, "GlobalAveragePool", L->name, 1, &x[0].name, out);
        y->rank = 4;
        break;
    case KD_LAYER_BATCHNORM: {
        int64_t c = L->c;
        const float *buf = m->buffers + L->buf_off;
        in[0] = x[0].name;
        in[1] = param(b, L, "weight", P + L->w_off, 1, &c);
        in[2] = param(b, L, "bias", P + L->b_off, 1, &c);
        in[3] = param(b, L, "running_mean", buf, 1, &c);
        in[4] = param(b, L, "running_var", buf + L->c, 1, &c);
        if (b->oom) break;
        nd = gb_node(b, "BatchNormalization", L->name, 5, in, out);
        gb_attr_float(b, nd, "epsilon", L->eps);
        gb_attr_float(b, nd, "momentum", 1.f - L->momentum); /* ONNX's momentum weighs the old statistics */
        break;
    }
    case KD_LAYER_RELU: nd = gb_node(b, "Relu", L->name, 1, &x[0].name, out); break;
    case KD_LAYER_SIGMOID: nd = gb_node(b, "Sigmoid", L->name, 1, &x[0].name, out); break;
    case KD_LAYER_HARD_SWISH: nd = gb_node(b, "HardSwish", L->name, 1, &x[0].name, out); break;
    case KD_LAYER_GELU: { /* opset 14 has no Gelu: 0.5 x (1 + erf(x / sqrt 2)), in kd_gelu_forward's order */
        char *h = gb_str(b, "%s/half_x", L->name), *s = gb_str(b, "%s/x_sqrt1_2", L->name);
        char *e = gb_str(b, "%s/erf", L->name), *e1 = gb_str(b, "%s/erf_plus_1", L->name);
        const char *c_half = scalar_param(b, L, "half", 0.5f), *c_rs2 = scalar_param(b, L, "sqrt1_2", 0.70710678118654752f);
        const char *c_one = scalar_param(b, L, "one", 1.f);
        if (!b->oom) {
            const char *a1[2] = {x[0].name, c_half}, *a2[2] = {x[0].name, c_rs2}, *a3[2] = {e, c_one}, *a4[2] = {h, e1};
            gb_node(b, "Mul", h, 2, a1, h);
            gb_node(b, "Mul", s, 2, a2, s);
            gb_node(b, "Erf", e, 1, (const char *const *)&s, e);
            gb_node(b, "Add", e1, 2, a3, e1);
            nd = gb_node(b, "Mul", L->name, 2, a4, out);
        }
        free(h); free(s); free(e); free(e1);
        break;
    }
    case KD_LAYER_FLATTEN:
        nd = gb_node(b, "Flatten", L->name, 1, &x[0].name, out);
        gb_attr_int(b, nd, "axis", 1);
        y->rank = 2;
        break;
    case KD_LAYER_ADD:
    case KD_LAYER_MUL:
    case KD_LAYER_CONCAT: { /* a (N, F) value beside a rank-4 one is (N, F, 1, 1) there, as in distill */
        int any4 = 0;
        for (int k = 0; k < L->n_inputs; k++) any4 |= x[k].rank == 4;
        for (int k = 0; k < L->n_inputs; k++) {
            if (any4) as_rank4(b, &x[k], L->name);
            in[k] = x[k].name;
        }
        if (b->oom) break;
        const char *op = L->type == KD_LAYER_ADD ? "Add" : L->type == KD_LAYER_MUL ? "Mul" : "Concat";
        nd = gb_node(b, op, L->name, L->n_inputs, in, out);
        if (L->type == KD_LAYER_CONCAT) gb_attr_int(b, nd, "axis", 1);
        y->rank = any4 ? 4 : 2;
        break;
    }
    case KD_LAYER_CLIP:
        in[0] = x[0].name;
        in[1] = scalar_param(b, L, "min", L->lo);
        in[2] = scalar_param(b, L, "max", L->hi);
        if (!b->oom) nd = gb_node(b, "Clip", L->name, 3, in, out);
        break;
    case KD_LAYER_LEAKY_RELU:
        nd = gb_node(b, "LeakyRelu", L->name, 1, &x[0].name, out);
        gb_attr_float(b, nd, "alpha", L->alpha);
        break;
    case KD_LAYER_HARD_SIGMOID:
        nd = gb_node(b, "HardSigmoid", L->name, 1, &x[0].name, out);
        gb_attr_float(b, nd, "alpha", L->alpha);
        gb_attr_float(b, nd, "beta", L->beta);
        break;
    case KD_LAYER_PAD: {
        as_rank4(b, &x[0], L->name);
        int64_t p[8] = {0, 0, L->pads[0], L->pads[1], 0, 0, L->pads[2], L->pads[3]}, d = 8;
        char *pn = gb_str(b, "%s.pads", L->name);
        in[0] = x[0].name;
        in[1] = pn ? gb_tensor(b, pn, T_INT64, 1, &d, p, 8, 8) : NULL;
        in[2] = scalar_param(b, L, "value", L->value);
        free(pn);
        if (!b->oom) nd = gb_node(b, "Pad", L->name, 3, in, out);
        y->rank = 4;
        break;
    }
    case KD_LAYER_SCALE: { /* x * w[c] + b[c], or one w and b for all channels */
        char *mo = L->b_size ? gb_str(b, "%s/mul", L->name) : NULL;
        const char *a1[2] = {x[0].name, channel_param(b, L, "weight", P + L->w_off, L->w_size, x[0].rank)};
        if (!b->oom) nd = gb_node(b, "Mul", L->b_size ? mo : L->name, 2, a1, L->b_size ? mo : out);
        if (nd && L->b_size) {
            const char *a2[2] = {mo, channel_param(b, L, "bias", P + L->b_off, L->b_size, x[0].rank)};
            nd = b->oom ? NULL : gb_node(b, "Add", L->name, 2, a2, out);
        }
        free(mo);
        break;
    }
    default:
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: type %s cannot be exported to ONNX", L->name,
                            kd_layer_type_name(L->type));
    }
    if (b->oom || !nd) return kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export of layer %s: out of memory", L->name);
    y->name = nd->output[0];
    return KD_STATUS_OK;
}

kd_status kd_onnx_export_fp32(const kd_model *m, unsigned char **bytes, size_t *len, kd_error *err) {
    *bytes = NULL;
    *len = 0;
    if (!m || m->n_layers < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "ONNX export: no model");
    gb b;
    kd_status st = gb_start(&b, err);
    fval *v = st ? NULL : malloc((size_t)m->n_layers * sizeof *v);
    if (!st && !v) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export: out of memory");
    const fval vin = {KD_ONNX_INPUT_NAME, 4, m->in_c, m->in_h, m->in_w};
    int last = m->n_layers - 1;
    for (int i = 0; i <= last && !st; i++) {
        const kd_layer *L = &m->layers[i];
        fval x[KD_LAYER_MAX_INPUTS];
        for (int k = 0; k < L->n_inputs && k < KD_LAYER_MAX_INPUTS; k++)
            x[k] = L->inputs[k] < 0 ? vin : v[L->inputs[k]];
        if (L->type == KD_LAYER_DROPOUT) { /* eval mode: the identity */
            v[i] = x[0];
            continue;
        }
        st = fp32_layer(&b, m, L, x, L->name, &v[i], err);
    }
    /* The output: the last node's value renamed when it is already (N, n_classes) (nothing after it
     * reads it); else a Flatten of (N, C, H, W), or an Identity of a dropout's input. */
    Onnx__NodeProto *tail = !st && b.g->n_node ? b.g->node[b.g->n_node - 1] : NULL;
    if (tail && v[last].rank == 2 && tail->output[0] == v[last].name) {
        free(tail->output[0]);
        tail->output[0] = gb_str(&b, KD_ONNX_OUTPUT_NAME);
    } else if (!st) {
        const char *op = v[last].rank == 4 ? "Flatten" : "Identity";
        Onnx__NodeProto *nd = gb_node(&b, op, KD_ONNX_OUTPUT_NAME, 1, &v[last].name, KD_ONNX_OUTPUT_NAME);
        if (v[last].rank == 4) gb_attr_int(&b, nd, "axis", 1);
    }
    char *mean = NULL, *std = NULL; /* the normalisation, when the model has its own */
    if (!st && m->norm_mean && m->norm_std && !((mean = floats_text(m->norm_mean, m->in_c)) &&
                                                (std = floats_text(m->norm_std, m->in_c))))
        b.oom = 1;
    const char *meta[6] = {"distill.model", m->name, "distill.normalize.mean", mean, "distill.normalize.std", std};
    if (!st) st = gb_finish(&b, m->name, m->in_c, m->in_h, m->in_w, m->n_classes, mean ? 3 : 1, meta, bytes, len, err);
    else if (b.g) onnx__graph_proto__free_unpacked(b.g, NULL);
    free(mean);
    free(std);
    free(v);
    return st;
}

/* ---- int8 -------------------------------------------------------------------------------------- */

typedef struct qval { /* an int8 value: name, its quantization's initializers and values, (c, h, w) */
    const char *name, *scale, *zp;
    kdrt_quant q;
    int c, h, w;
} qval;

/* The scale and zero-point initializers "<name>.scale", "<name>.zero_point" of a value. */
static void qparams(gb *b, qval *v, const char *name, kdrt_quant q) {
    char *s = gb_str(b, "%s.scale", name), *z = gb_str(b, "%s.zero_point", name);
    v->scale = s ? gb_scalar_f(b, s, q.scale) : NULL;
    v->zp = z ? gb_scalar_i8(b, z, q.zero_point) : NULL;
    v->q = q;
    free(s);
    free(z);
}

/* The bottom (right) padding that makes ONNX's floor((in + begin + end - k) / s) + 1 equal `out`
 * (kdrt implies it from the output size); -1 when none does. */
static int pad_end(int in, int out, int k, int s, int begin) {
    int e = (out - 1) * s + k - in - begin;
    if (e < 0) e = 0;
    return (in + begin + e - k) / s + 1 == out && e < k ? e : -1;
}

static int dims_are(const kdrt_dims *d, const qval *v) { return d->h == v->h && d->w == v->w && d->c == v->c; }

/* The initializers of a conv/depthwise/fc layer: weights reordered to ONNX's (OC, C/group, KH, KW),
 * per-channel scales, zero points 0, int32 bias. in[3..5] and in[8] get their names. exact: the
 * weights as float instead (in[3]; the integer requantization after them, int8_exact, has the rest). */
static void qweights(gb *b, const kd_int8_layer *L, const qval *x, int kh, int kw, int exact, const char **in) {
    int oc = L->out_dims.c, C = x->c, dw = L->op == KD_INT8_DEPTHWISE, cg = dw ? 1 : C;
    size_t taps = (size_t)cg * kh * kw;
    int8_t *w = gb_alloc(b, (size_t)oc * taps), *zp = gb_alloc(b, (size_t)oc);
    float *wf = exact ? gb_alloc(b, (size_t)oc * taps * sizeof *wf) : NULL;
    char *nw = gb_str(b, "%s.weight", L->name), *ns = gb_str(b, "%s.weight_scale", L->name);
    char *nz = gb_str(b, "%s.weight_zero_point", L->name), *nb = gb_str(b, "%s.bias", L->name);
    if (!b->oom) {
        for (int o = 0; o < oc; o++)
            for (int c = 0; c < cg; c++)
                for (int y = 0; y < kh; y++)
                    for (int xx = 0; xx < kw; xx++) {
                        size_t src; /* runtime layouts: conv OHWI, depthwise (1, KH, KW, C), fc (O, H*W*C) */
                        if (dw) src = ((size_t)y * kw + xx) * C + o;
                        else src = (((size_t)o * kh + y) * kw + xx) * C + c;
                        w[(size_t)o * taps + ((size_t)c * kh + y) * kw + xx] = L->weight[src];
                    }
        int64_t wd[4] = {oc, cg, kh, kw}, cd = oc;
        if (exact) {
            for (size_t i = 0; i < (size_t)oc * taps; i++) wf[i] = w[i];
            in[3] = gb_tensor(b, nw, T_FLOAT, 4, wd, wf, 4, (size_t)oc * taps);
        } else {
            in[3] = gb_tensor(b, nw, T_INT8, 4, wd, w, 1, (size_t)oc * taps);
            in[4] = gb_tensor(b, ns, T_FLOAT, 1, &cd, L->w_scale, 4, (size_t)oc);
            in[5] = gb_tensor(b, nz, T_INT8, 1, &cd, zp, 1, (size_t)oc);
            in[8] = gb_tensor(b, nb, T_INT32, 1, &cd, L->bias, 4, (size_t)oc);
        }
    }
    free(w); free(zp); free(wf); free(nw); free(ns); free(nz); free(nb);
}

/* Whether a conv/depthwise/fc layer's kdrt arithmetic can be exported exactly (int8_exact): every
 * shift <= 0 (a multiplier below 1), |bias| < 2^30, and sum |w| * 255 < 2^24 for every output, so
 * that a float Conv of (x - zp) by the weights adds integers exactly in any order. */
static int exact_ok(const kd_int8_layer *L, int taps) {
    for (int o = 0; o < L->out_dims.c; o++) {
        int64_t sum = 0;
        for (int t = 0; t < taps; t++) {
            size_t i = L->op == KD_INT8_DEPTHWISE ? (size_t)t * L->out_dims.c + (size_t)o : (size_t)o * taps + t;
            sum += abs(L->weight[i]);
        }
        if (!L->mult || !L->shift || L->shift[o] > 0 || L->shift[o] < -31 || L->mult[o] < 0 ||
            L->bias[o] >= (1 << 30) || L->bias[o] <= -(1 << 30) || sum * 255 >= ((int64_t)1 << 24))
            return 0;
    }
    return 1;
}

/* kdrt's requantization in integer operators (docs/ONNX.md): the float Conv's exact sum acc ->
 * int64, a = acc + bias, h = floor((a * M + 2^30) / 2^31) (SRDHM; the 2^62 offset keeps the
 * truncating Div a floor), r = sign(h) * floor((|h| + 2^(e-1)) / 2^e) for e = -shift (the rounding
 * shift, ties away from zero), clip(r + zp, lo, hi) -> int8 `out`, whose node it returns (NULL on
 * failure). `conv` names the Conv's output. */
static Onnx__NodeProto *int8_exact(gb *b, const kd_int8_layer *L, const char *conv, int zp, kdrt_activation act,
                                   const char *out) {
    int oc = L->out_dims.c;
    int64_t *t = gb_alloc(b, 4 * (size_t)oc * sizeof *t), cd[3] = {oc, 1, 1};
    if (!t) return NULL;
    for (int o = 0; o < oc; o++) {
        int e = -L->shift[o];
        t[o] = L->bias[o];
        t[oc + o] = L->mult[o];
        t[2 * oc + o] = e ? (int64_t)1 << (e - 1) : 0;
        t[3 * oc + o] = (int64_t)1 << e;
    }
    static const char *const tn[4] = {"bias", "multiplier", "half", "divisor"};
    const char *c[8];
    for (int k = 0; k < 4; k++) {
        char *n = gb_str(b, "%s.%s", L->name, tn[k]);
        c[k] = n ? gb_tensor(b, n, T_INT64, 3, cd, t + (size_t)k * oc, 8, (size_t)oc) : NULL;
        free(n);
    }
    int64_t k4[4] = {((int64_t)1 << 62) + ((int64_t)1 << 30), (int64_t)1 << 31, (int64_t)1 << 31, zp};
    static const char *const kn[4] = {"nudge", "q31", "offset", "zero_point64"};
    for (int k = 0; k < 4; k++) {
        char *n = gb_str(b, "%s.%s", L->name, kn[k]);
        c[4 + k] = n ? gb_tensor(b, n, T_INT64, 0, NULL, &k4[k], 8, 1) : NULL;
        free(n);
    }
    free(t);
    /* op, first input (a step's output, or the Conv's), second input (a constant or a step) */
    static const struct { const char *op; int a, c; } steps[] = {
        {"Cast", -1, -1}, {"Add", 0, 0},  {"Mul", 1, 1},  {"Add", 2, 4},  {"Div", 3, 5},  {"Sub", 4, 6},
        {"Sign", 5, -1},  {"Abs", 5, -1}, {"Add", 7, 2},  {"Div", 8, 3},  {"Mul", 9, -7}, {"Add", 10, 7},
    };
    enum { N_STEPS = sizeof steps / sizeof *steps };
    const char *v[N_STEPS];
    for (int i = 0; i < N_STEPS && !b->oom; i++) {
        char *n = gb_str(b, "%s/requant%d", L->name, i);
        const char *in[2] = {steps[i].a < 0 ? conv : v[steps[i].a], NULL};
        if (steps[i].c >= 0) in[1] = c[steps[i].c];
        else if (steps[i].c < -1) in[1] = v[-steps[i].c - 1];
        Onnx__NodeProto *nd = n ? gb_node(b, steps[i].op, n, in[1] ? 2 : 1, in, n) : NULL;
        if (nd && i == 0) gb_attr_int(b, nd, "to", T_INT64);
        v[i] = nd ? nd->output[0] : NULL;
        free(n);
    }
    if (b->oom) return NULL;
    char *lo = gb_str(b, "%s.clamp_min64", L->name), *hi = gb_str(b, "%s.clamp_max64", L->name);
    char *cn = gb_str(b, "%s/requant_clip", L->name);
    int64_t l = act.min, h = act.max;
    const char *a[3] = {v[N_STEPS - 1], lo ? gb_tensor(b, lo, T_INT64, 0, NULL, &l, 8, 1) : NULL,
                        hi ? gb_tensor(b, hi, T_INT64, 0, NULL, &h, 8, 1) : NULL};
    Onnx__NodeProto *nd = cn && !b->oom ? gb_node(b, "Clip", cn, 3, a, cn) : NULL;
    const char *clipped = nd ? nd->output[0] : NULL;
    nd = clipped ? gb_node(b, "Cast", out, 1, &clipped, out) : NULL;
    if (nd) gb_attr_int(b, nd, "to", T_INT8);
    free(lo); free(hi); free(cn);
    return nd;
}

/* The nodes of one int8 layer; *y is its output. */
static kd_status int8_layer(gb *b, const kd_int8_layer *L, kd_onnx_int8_ops ops, const qval *x0, const qval *x1, qval *y,
                            kd_error *err) {
    const char *in[9];
    kdrt_activation act = {-128, 127};
    int pads[4], kh = 0, kw = 0, sh = 1, sw = 1, exact = 0;
    const kdrt_dims *od = &L->out_dims;
    *y = (qval){NULL, NULL, NULL, L->out_q, od->c, od->h, od->w};
    if (!dims_are(&L->in_dims, x0))
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s: input dims %dx%dx%d but its input is %dx%dx%d",
                            L->name, L->in_dims.h, L->in_dims.w, L->in_dims.c, x0->h, x0->w, x0->c);
    int zp_in = L->op == KD_INT8_FC ? L->fc.input_zero_point : L->conv.input_zero_point;
    int zp_out = L->op == KD_INT8_FC ? L->fc.output_zero_point : L->conv.output_zero_point;
    switch (L->op) {
    case KD_INT8_CONV:
    case KD_INT8_DEPTHWISE:
    case KD_INT8_FC: {
        const kdrt_dims *f = &L->filter_dims;
        int fc = L->op == KD_INT8_FC, dw = L->op == KD_INT8_DEPTHWISE;
        kh = fc ? x0->h : f->h;
        kw = fc ? x0->w : f->w;
        if (fc) memset(pads, 0, sizeof pads);
        else {
            sh = L->conv.stride.h;
            sw = L->conv.stride.w;
            pads[0] = L->conv.padding.h;
            pads[1] = L->conv.padding.w;
            pads[2] = pad_end(x0->h, od->h, kh, sh, pads[0]);
            pads[3] = pad_end(x0->w, od->w, kw, sw, pads[1]);
        }
        int ok = fc ? f->n == od->c && (long)f->c == (long)x0->c * x0->h * x0->w && od->h == 1 && od->w == 1
                 : dw ? f->n == 1 && f->c == x0->c && od->c == x0->c
                      : f->n == od->c && f->c == x0->c;
        if (!ok || !L->weight || !L->bias || !L->w_scale || zp_in != x0->q.zero_point || zp_out != L->out_q.zero_point)
            return kd_error_set(err, KD_STATUS_BAD_MODEL,
                                "int8 layer %s (%s): weights, shapes or zero points do not match its input and output",
                                L->name, kd_int8_op_name(L->op));
        if (pads[2] < 0 || pads[3] < 0)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s: its %dx%d output cannot be expressed with "
                                "ONNX padding", L->name, od->h, od->w);
        act = fc ? L->fc.activation : L->conv.activation;
        in[0] = x0->name; in[1] = x0->scale; in[2] = x0->zp;
        exact = ops == KD_ONNX_INT8_EXACT && exact_ok(L, (dw ? 1 : x0->c) * kh * kw);
        qweights(b, L, x0, kh, kw, exact, in);
        break;
    }
    case KD_INT8_MAXPOOL:
    case KD_INT8_AVGPOOL:
        kh = L->pool.filter.h; kw = L->pool.filter.w;
        sh = L->pool.stride.h; sw = L->pool.stride.w;
        pads[0] = L->pool.padding.h;
        pads[1] = L->pool.padding.w;
        pads[2] = pad_end(x0->h, od->h, kh, sh, pads[0]);
        pads[3] = pad_end(x0->w, od->w, kw, sw, pads[1]);
        if (od->c != x0->c || L->out_q.scale != x0->q.scale || L->out_q.zero_point != x0->q.zero_point)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s (%s): a pool must keep its input's channels "
                                "and quantization", L->name, kd_int8_op_name(L->op));
        if (pads[2] < 0 || pads[3] < 0)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s: its %dx%d output cannot be expressed with "
                                "ONNX padding", L->name, od->h, od->w);
        act = L->pool.activation;
        y->scale = x0->scale; /* pools do not requantize: the input's parameters */
        y->zp = x0->zp;
        break;
    case KD_INT8_ADD:
        if (!x1 || !dims_are(od, x0) || !dims_are(od, x1) || L->add.input1_zero_point != x0->q.zero_point ||
            L->add.input2_zero_point != x1->q.zero_point || L->add.output_zero_point != L->out_q.zero_point)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s (add): shapes or zero points do not match its "
                                "inputs and output", L->name);
        act = L->add.activation;
        break;
    default:
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s: operation %d cannot be exported to ONNX", L->name,
                            (int)L->op);
    }
    int clamp = !exact && (act.min > -128 || act.max < 127); /* a fused ReLU: Clip on int8 after the operator */
    char *pre = clamp ? gb_str(b, "%s/unclamped", L->name) : NULL;
    const char *out = clamp ? pre : L->name;
    if (!y->scale) qparams(b, y, L->name, L->out_q);
    Onnx__NodeProto *nd = NULL;
    if (!b->oom && out) switch (L->op) {
    case KD_INT8_CONV:
    case KD_INT8_DEPTHWISE:
    case KD_INT8_FC: {
        in[6] = y->scale;
        in[7] = y->zp;
        if (exact) { /* float(x) - zp, a float Conv (exact), then kdrt's requantization in integers */
            char *nf = gb_str(b, "%s/x_float", L->name), *nc = gb_str(b, "%s/x_centred", L->name);
            char *nz = gb_str(b, "%s.input_zero_point_float", L->name), *nv = gb_str(b, "%s/conv", L->name);
            const char *a[2] = {x0->name, NULL};
            Onnx__NodeProto *c = nf && nc && nz && nv ? gb_node(b, "Cast", nf, 1, a, nf) : NULL;
            if (c) gb_attr_int(b, c, "to", T_FLOAT);
            a[0] = c ? c->output[0] : NULL;
            a[1] = a[0] ? gb_scalar_f(b, nz, (float)zp_in) : NULL;
            c = a[1] ? gb_node(b, "Sub", nc, 2, a, nc) : NULL;
            a[0] = c ? c->output[0] : NULL;
            a[1] = in[3];
            c = a[0] ? gb_node(b, "Conv", nv, 2, a, nv) : NULL;
            if (c) {
                gb_window(b, c, kh, kw, sh, sw, pads);
                if (L->op == KD_INT8_DEPTHWISE) gb_attr_int(b, c, "group", x0->c);
            }
            nd = c ? int8_exact(b, L, c->output[0], zp_out, act, out) : NULL;
            free(nf); free(nc); free(nz); free(nv);
            break;
        }
        nd = gb_node(b, "QLinearConv", L->name, 9, in, out);
        gb_window(b, nd, kh, kw, sh, sw, pads);
        if (L->op == KD_INT8_DEPTHWISE) gb_attr_int(b, nd, "group", x0->c);
        break;
    }
    case KD_INT8_MAXPOOL:
        nd = gb_node(b, "MaxPool", L->name, 1, &x0->name, out);
        gb_window(b, nd, kh, kw, sh, sw, pads);
        break;
    case KD_INT8_AVGPOOL: { /* the kernel: padding never counted */
        const char *a[5] = {x0->name, x0->scale, x0->zp, y->scale, y->zp};
        nd = gb_node_ms(b, "QLinearAveragePool", L->name, 5, a, out);
        gb_window(b, nd, kh, kw, sh, sw, pads);
        gb_attr_int(b, nd, "count_include_pad", 0);
        break;
    }
    case KD_INT8_ADD: {
        const char *a[8] = {x0->name, x0->scale, x0->zp, x1->name, x1->scale, x1->zp, y->scale, y->zp};
        nd = gb_node_ms(b, "QLinearAdd", L->name, 8, a, out);
        break;
    }
    }
    if (nd && clamp) {
        char *lo = gb_str(b, "%s.clamp_min", L->name), *hi = gb_str(b, "%s.clamp_max", L->name);
        const char *a[3] = {pre, lo ? gb_scalar_i8(b, lo, act.min) : NULL, hi ? gb_scalar_i8(b, hi, act.max) : NULL};
        char *cn = gb_str(b, "%s/clamp", L->name);
        nd = b->oom ? NULL : gb_node(b, "Clip", cn, 3, a, L->name);
        free(lo); free(hi); free(cn);
    }
    free(pre);
    if (b->oom || !nd) return kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export of int8 layer %s: out of memory", L->name);
    y->name = nd->output[0];
    return KD_STATUS_OK;
}

kd_status kd_onnx_export_int8(const kd_int8_model *q, kd_onnx_int8_ops ops, unsigned char **bytes, size_t *len,
                              kd_error *err) {
    *bytes = NULL;
    *len = 0;
    if (!q || q->n_layers < 1 || !q->layers) return kd_error_set(err, KD_STATUS_BAD_ARG, "ONNX export: no int8 model");
    if (q->in_c < 1 || q->in_h < 1 || q->in_w < 1)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 model %s: its input is %dx%dx%d", q->name, q->in_c, q->in_h,
                            q->in_w);
    gb b;
    kd_status st = gb_start(&b, err);
    qval *v = st ? NULL : calloc((size_t)q->n_layers, sizeof *v), vin = {0};
    if (!st && !v) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export: out of memory");
    if (!st) { /* the float input, quantized as the integer evaluation does */
        vin = (qval){"input/quantized", NULL, NULL, q->in_q, q->in_c, q->in_h, q->in_w};
        qparams(&b, &vin, KD_ONNX_INPUT_NAME, q->in_q);
        const char *a[3] = {KD_ONNX_INPUT_NAME, vin.scale, vin.zp};
        if (!b.oom) gb_node(&b, "QuantizeLinear", vin.name, 3, a, vin.name);
    }
    for (int i = 0; i < q->n_layers && !st; i++) {
        const kd_int8_layer *L = &q->layers[i];
        int n_in = L->op == KD_INT8_ADD ? 2 : 1;
        for (int k = 0; k < n_in && !st; k++)
            if (L->inputs[k] != KD_MODEL_INPUT && (L->inputs[k] < 0 || L->inputs[k] >= i))
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s: input %d is not an earlier layer", L->name,
                                  L->inputs[k]);
        if (st) break;
        const qval *x0 = L->inputs[0] < 0 ? &vin : &v[L->inputs[0]];
        const qval *x1 = n_in < 2 ? NULL : L->inputs[1] < 0 ? &vin : &v[L->inputs[1]];
        st = int8_layer(&b, L, ops, x0, x1, &v[i], err);
    }
    if (!st) { /* the last layer's int8 output -> float -> (N, n_classes) */
        const qval *o = &v[q->n_layers - 1];
        if ((long)o->c * o->h * o->w != q->n_classes)
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 model %s: the last layer gives %d values, not the %d classes",
                              q->name, o->c * o->h * o->w, q->n_classes);
        char *deq = gb_str(&b, "%s/dequantized", q->layers[q->n_layers - 1].name);
        const char *a[3] = {o->name, o->scale, o->zp};
        if (!st && deq && gb_node(&b, "DequantizeLinear", deq, 3, a, deq)) {
            Onnx__NodeProto *nd = gb_node(&b, "Flatten", KD_ONNX_OUTPUT_NAME, 1, (const char *const *)&deq,
                                          KD_ONNX_OUTPUT_NAME);
            gb_attr_int(&b, nd, "axis", 1);
        }
        free(deq);
    }
    /* the normalisation per channel, as the fp32 export writes it */
    char qtext[64], *mean = NULL, *std = NULL;
    float *norm = st ? NULL : malloc(2 * (size_t)q->in_c * sizeof *norm);
    if (norm) {
        for (int c = 0; c < q->in_c; c++) {
            norm[c] = q->norm_mean ? q->norm_mean[c] : q->in_mean;
            norm[q->in_c + c] = q->norm_mean ? q->norm_std[c] : q->in_std;
        }
        mean = floats_text(norm, q->in_c);
        std = floats_text(norm + q->in_c, q->in_c);
    }
    if (!st && !(mean && std)) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "ONNX export: out of memory");
    snprintf(qtext, sizeof qtext, "%.9g,%d", (double)q->in_q.scale, (int)q->in_q.zero_point);
    const char *meta[8] = {"distill.model", q->name, "distill.normalize.mean", mean, "distill.normalize.std", std,
                     "distill.input_quantization", qtext};
    if (!st) st = gb_finish(&b, q->name, q->in_c, q->in_h, q->in_w, q->n_classes, 4, meta, bytes, len, err);
    else if (b.g) onnx__graph_proto__free_unpacked(b.g, NULL);
    free(norm);
    free(mean);
    free(std);
    free(v);
    return st;
}
