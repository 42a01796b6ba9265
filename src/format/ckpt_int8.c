/* The int8 checkpoint (kd_int8_save / kd_int8_load), a client of the safetensors layer
 * (safetensors.h): the int8 model's tensors (I8 weights in the runtime's layout, I32 biases,
 * multipliers and shifts, F32 weight scales) and its description as JSON in the metadata. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "distill/int8.h"
#include "format/safetensors.h"

/* ---------------------------------------------------------------- writing */

static void add_dims(cJSON *o, const char *k, kdrt_dims d) {
    cJSON *a = cJSON_AddArrayToObject(o, k);
    cJSON_AddItemToArray(a, cJSON_CreateNumber(d.n));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(d.h));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(d.w));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(d.c));
}

static void add_pair(cJSON *o, const char *k, int a, int b) {
    cJSON *x = cJSON_AddArrayToObject(o, k);
    cJSON_AddItemToArray(x, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(x, cJSON_CreateNumber(b));
}

static void add_quant(cJSON *o, const char *k, kdrt_quant q) {
    cJSON *x = cJSON_AddObjectToObject(o, k);
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)q.scale);
    cJSON_AddItemToObject(x, "scale", cJSON_CreateRaw(buf));
    cJSON_AddNumberToObject(x, "zero_point", q.zero_point);
}

static char *model_json(const kd_int8_model *q) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "name", q->name);
    cJSON *in = cJSON_AddArrayToObject(root, "input_chw");
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_c));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_h));
    cJSON_AddItemToArray(in, cJSON_CreateNumber(q->in_w));
    cJSON_AddNumberToObject(root, "n_classes", q->n_classes);
    cJSON_AddNumberToObject(root, "weight_bits", q->weight_bits);
    cJSON_AddNumberToObject(root, "weight_group", q->weight_group);
    add_quant(root, "input_quant", q->in_q);
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)q->in_mean);
    cJSON_AddItemToObject(root, "input_mean", cJSON_CreateRaw(buf));
    snprintf(buf, sizeof buf, "%.9g", (double)q->in_std);
    cJSON_AddItemToObject(root, "input_std", cJSON_CreateRaw(buf));
    if (q->norm_mean) { /* per channel (only when the channels differ: older files have none) */
        cJSON *nm = cJSON_AddObjectToObject(root, "input_norm");
        cJSON *mean = cJSON_AddArrayToObject(nm, "mean"), *std = cJSON_AddArrayToObject(nm, "std");
        for (int c = 0; c < q->in_c; c++) {
            snprintf(buf, sizeof buf, "%.9g", (double)q->norm_mean[c]);
            cJSON_AddItemToArray(mean, cJSON_CreateRaw(buf));
            snprintf(buf, sizeof buf, "%.9g", (double)q->norm_std[c]);
            cJSON_AddItemToArray(std, cJSON_CreateRaw(buf));
        }
    }
    if (q->input_values) cJSON_AddNumberToObject(root, "input_values", 1);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < q->n_layers; i++) {
        const kd_int8_layer *L = &q->layers[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(layers, o);
        cJSON_AddStringToObject(o, "name", L->name);
        cJSON_AddStringToObject(o, "op", kd_int8_op_name(L->op));
        cJSON *ins = cJSON_AddArrayToObject(o, "inputs");
        for (int k = 0; k < L->n_inputs; k++) cJSON_AddItemToArray(ins, cJSON_CreateNumber(L->inputs[k]));
        cJSON_AddBoolToObject(o, "relu", L->relu);
        add_dims(o, "in_dims", L->in_dims);
        add_dims(o, "out_dims", L->out_dims);
        add_quant(o, "out_quant", L->out_q);
        switch (L->op) {
        case KD_INT8_CONV:
        case KD_INT8_DEPTHWISE:
            add_dims(o, "filter_dims", L->filter_dims);
            cJSON_AddNumberToObject(o, "input_zero_point", L->conv.input_zero_point);
            cJSON_AddNumberToObject(o, "output_zero_point", L->conv.output_zero_point);
            add_pair(o, "stride", L->conv.stride.h, L->conv.stride.w);
            add_pair(o, "padding", L->conv.padding.h, L->conv.padding.w);
            add_pair(o, "activation", L->conv.activation.min, L->conv.activation.max);
            break;
        case KD_INT8_FC:
            add_dims(o, "filter_dims", L->filter_dims);
            cJSON_AddNumberToObject(o, "input_zero_point", L->fc.input_zero_point);
            cJSON_AddNumberToObject(o, "output_zero_point", L->fc.output_zero_point);
            add_pair(o, "activation", L->fc.activation.min, L->fc.activation.max);
            break;
        case KD_INT8_MAXPOOL:
        case KD_INT8_AVGPOOL:
            add_pair(o, "filter", L->pool.filter.h, L->pool.filter.w);
            add_pair(o, "stride", L->pool.stride.h, L->pool.stride.w);
            add_pair(o, "padding", L->pool.padding.h, L->pool.padding.w);
            add_pair(o, "activation", L->pool.activation.min, L->pool.activation.max);
            break;
        case KD_INT8_ADD: {
            const kdrt_add_params *a = &L->add;
            cJSON *x = cJSON_AddObjectToObject(o, "add");
            cJSON_AddNumberToObject(x, "input1_zero_point", a->input1_zero_point);
            cJSON_AddNumberToObject(x, "input1_multiplier", a->input1_multiplier);
            cJSON_AddNumberToObject(x, "input1_shift", a->input1_shift);
            cJSON_AddNumberToObject(x, "input2_zero_point", a->input2_zero_point);
            cJSON_AddNumberToObject(x, "input2_multiplier", a->input2_multiplier);
            cJSON_AddNumberToObject(x, "input2_shift", a->input2_shift);
            cJSON_AddNumberToObject(x, "output_zero_point", a->output_zero_point);
            cJSON_AddNumberToObject(x, "output_multiplier", a->output_multiplier);
            cJSON_AddNumberToObject(x, "output_shift", a->output_shift);
            cJSON_AddNumberToObject(x, "left_shift", a->left_shift);
            add_pair(x, "activation", a->activation.min, a->activation.max);
            break;
        }
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

kd_status kd_int8_save(const char *path, const kd_int8_model *q, kd_error *err) {
    if (!path || !q) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_int8_save: no path or no model");
    char *mj = model_json(q);
    kd_st_writer *w = mj ? kd_st_writer_create() : NULL;
    if (!w) {
        free(mj);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    }
    kd_st_meta(w, "format", "distill-int8");
    kd_st_meta(w, "version", "1");
    kd_st_meta(w, "int8_model", mj);
    free(mj);
    char name[KD_NAME_MAX + 16];
    for (int i = 0; i < q->n_layers; i++) {
        const kd_int8_layer *L = &q->layers[i];
        if (!L->weight) continue;
        const kdrt_dims *f = &L->filter_dims;
        int64_t ws[4] = {f->n, f->h, f->w, f->c}, oc[1] = {L->out_dims.c};
        if (L->op == KD_INT8_FC) ws[1] = f->c;
        snprintf(name, sizeof name, "%s.weight", L->name);
        kd_st_add(w, name, "I8", L->op == KD_INT8_FC ? 2 : 4, ws, L->weight);
        snprintf(name, sizeof name, "%s.bias", L->name);
        kd_st_add(w, name, "I32", 1, oc, L->bias);
        snprintf(name, sizeof name, "%s.w_scale", L->name);
        kd_st_add(w, name, "F32", 1, oc, L->w_scale);
        snprintf(name, sizeof name, "%s.multiplier", L->name);
        kd_st_add(w, name, "I32", 1, oc, L->mult);
        snprintf(name, sizeof name, "%s.shift", L->name);
        kd_st_add(w, name, "I32", 1, oc, L->shift);
    }
    kd_status st = kd_st_write(w, path, err);
    kd_st_writer_free(w);
    return st;
}

/* ---------------------------------------------------------------- reading */

/* An integer JSON value in [lo, hi] into *v: 0, or -1 (the readers below return -1 on error). */
static int j_int_value(const cJSON *x, double lo, double hi, int32_t *v) {
    double d;
    if (!kd_st_json_int(x, lo, hi, &d)) return -1;
    *v = (int32_t)d;
    return 0;
}

static int j_int(const cJSON *o, const char *k, long lo, long hi, int32_t *v) {
    return j_int_value(cJSON_GetObjectItemCaseSensitive(o, k), (double)lo, (double)hi, v);
}

static int j_pair(const cJSON *o, const char *k, long lo, long hi, int32_t *a, int32_t *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2) return -1;
    return j_int_value(cJSON_GetArrayItem(x, 0), (double)lo, (double)hi, a) ||
                   j_int_value(cJSON_GetArrayItem(x, 1), (double)lo, (double)hi, b)
               ? -1
               : 0;
}

static int j_dims(const cJSON *o, const char *k, kdrt_dims *d) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 4) return -1;
    int32_t v[4];
    for (int i = 0; i < 4; i++)
        if (j_int_value(cJSON_GetArrayItem(x, i), 1, 1e7, &v[i])) return -1;
    d->n = v[0]; d->h = v[1]; d->w = v[2]; d->c = v[3];
    return (double)d->n * d->h * d->w * d->c > 1e8 ? -1 : 0;
}

static int j_quant(const cJSON *o, const char *k, kdrt_quant *q) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k), *s;
    if (!cJSON_IsObject(x)) return -1;
    s = cJSON_GetObjectItemCaseSensitive(x, "scale");
    if (!cJSON_IsNumber(s) || !(s->valuedouble > 0) || !isfinite((float)s->valuedouble)) return -1;
    q->scale = (float)s->valuedouble;
    return j_int(x, "zero_point", -128, 127, &q->zero_point);
}

static int j_float(const cJSON *o, const char *k, float *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || !isfinite((float)x->valuedouble)) return -1;
    *v = (float)x->valuedouble;
    return 0;
}

/* The optional per-channel normalisation {"mean": [in_c], "std": [in_c]} into q: 0, or -1. */
static int j_norm(const cJSON *o, kd_int8_model *q) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "input_norm");
    if (!x) return 0;
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(x, "mean"), *std = cJSON_GetObjectItemCaseSensitive(x, "std");
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(std) || cJSON_GetArraySize(mean) != q->in_c ||
        cJSON_GetArraySize(std) != q->in_c)
        return -1;
    float *v = malloc(2 * (size_t)q->in_c * sizeof *v);
    int bad = !v;
    for (int c = 0; c < q->in_c && !bad; c++) {
        const cJSON *a = cJSON_GetArrayItem(mean, c), *b = cJSON_GetArrayItem(std, c);
        bad = !cJSON_IsNumber(a) || !cJSON_IsNumber(b);
        if (!bad) {
            v[c] = (float)a->valuedouble;
            v[q->in_c + c] = (float)b->valuedouble;
        }
    }
    if (!bad) bad = kd_int8_set_norm(q, v, v + q->in_c, NULL) != KD_STATUS_OK;
    free(v);
    return bad ? -1 : 0;
}

/* Copy tensor "<layer>.<what>" of dtype and exactly n elements into a new array (NULL if it is
 * missing or another tensor); marks it used. */
static void *get_tensor(const kd_st_file *f, const char *layer, const char *what, const char *dtype, size_t n) {
    char name[KD_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.%s", layer, what);
    kd_st_tensor *t = kd_st_find(f, name);
    if (!t || strcmp(t->dtype, dtype) != 0 || t->count != n) return NULL;
    t->used = 1;
    void *out = malloc(n * t->elem > 0 ? n * t->elem : 1);
    if (out) kd_st_copy(f, t, out);
    return out;
}

kd_status kd_int8_load(const char *path, kd_int8_model **out, kd_error *err) {
    *out = NULL;
    kd_st_file sf;
    kd_status st = kd_st_read(&sf, path, err);
    if (st) return st;
    cJSON *mj = NULL;
    kd_int8_model *q = NULL;
    const char *fmt = kd_st_meta_get(&sf, "format"), *ver = kd_st_meta_get(&sf, "version");
    const char *ms = kd_st_meta_get(&sf, "int8_model");
    if (!fmt || strcmp(fmt, "distill-int8") != 0 || !ms) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a distill int8 model (no distill-int8 metadata)", path);
        goto done;
    }
    if (!ver || strcmp(ver, "1") != 0) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: distill int8 format version %s; this build reads version 1",
                          path, ver ? ver : "(missing)");
        goto done;
    }
    mj = cJSON_Parse(ms);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(mj, "layers"), *nm = cJSON_GetObjectItemCaseSensitive(mj, "name");
    const cJSON *chw = cJSON_GetObjectItemCaseSensitive(mj, "input_chw");
    int nl = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0;
    q = calloc(1, sizeof *q);
    if (!q || (nl && !(q->layers = calloc((size_t)nl, sizeof(kd_int8_layer))))) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
        goto done;
    }
    int32_t in3[3] = {0, 0, 0}, ncls = 0;
    for (int i = 0; cJSON_IsArray(chw) && cJSON_GetArraySize(chw) == 3 && i < 3; i++) {
        (void)j_int_value(cJSON_GetArrayItem(chw, i), 1, 65536, &in3[i]); /* stays 0 when invalid */
    }
    if (nl < 1 || !cJSON_IsString(nm) || !in3[0] || !in3[1] || !in3[2] || j_int(mj, "n_classes", 1, 1 << 20, &ncls) ||
        j_quant(mj, "input_quant", &q->in_q) || j_float(mj, "input_mean", &q->in_mean) ||
        j_float(mj, "input_std", &q->in_std)) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: int8 model description is incomplete or out of range", path);
        goto done;
    }
    /* files written before int4 existed have no weight format: int8 */
    q->weight_bits = 8;
    if (cJSON_GetObjectItemCaseSensitive(mj, "weight_bits") &&
        (j_int(mj, "weight_bits", 4, 8, &q->weight_bits) || (q->weight_bits != 4 && q->weight_bits != 8) ||
         j_int(mj, "weight_group", 0, 1 << 20, &q->weight_group))) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: weight format out of range (weight_bits 4 or 8)", path);
        goto done;
    }
    snprintf(q->name, sizeof q->name, "%s", nm->valuestring);
    q->in_c = in3[0]; q->in_h = in3[1]; q->in_w = in3[2]; q->n_classes = ncls;
    if (j_norm(mj, q) ||
        (cJSON_GetObjectItemCaseSensitive(mj, "input_values") && j_int(mj, "input_values", 0, 1, &q->input_values))) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: input normalisation per channel or input type out of range "
                          "(finite means, stds > 0, one per channel)", path);
        goto done;
    }
    for (int i = 0; i < nl && !st; i++) {
        const cJSON *o = cJSON_GetArrayItem(layers, i);
        kd_int8_layer *L = &q->layers[i];
        q->n_layers = i + 1;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name"), *op = cJSON_GetObjectItemCaseSensitive(o, "op");
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(o, "inputs"), *relu = cJSON_GetObjectItemCaseSensitive(o, "relu");
        int bad = !cJSON_IsString(name) || strlen(name->valuestring) >= KD_NAME_MAX || !cJSON_IsString(op) ||
                  !cJSON_IsArray(ins) || !cJSON_IsBool(relu) || j_dims(o, "in_dims", &L->in_dims) ||
                  j_dims(o, "out_dims", &L->out_dims) || j_quant(o, "out_quant", &L->out_q);
        if (!bad) {
            snprintf(L->name, sizeof L->name, "%s", name->valuestring);
            L->op = (kd_int8_op)-1;
            for (int k = 0; k <= KD_INT8_ADD; k++)
                if (!strcmp(op->valuestring, kd_int8_op_name((kd_int8_op)k))) L->op = (kd_int8_op)k;
            L->relu = cJSON_IsTrue(relu);
            L->n_inputs = cJSON_GetArraySize(ins);
            L->src = -1;
            bad = (int)L->op < 0 || L->n_inputs != (L->op == KD_INT8_ADD ? 2 : 1);
            L->inputs[1] = KD_MODEL_INPUT;
            for (int k = 0; !bad && k < L->n_inputs; k++) {
                int32_t in;
                bad = j_int_value(cJSON_GetArrayItem(ins, k), -1, i - 1, &in);
                if (!bad) L->inputs[k] = in;
            }
        }
        if (!bad) switch (L->op) {
            case KD_INT8_CONV:
            case KD_INT8_DEPTHWISE:
            case KD_INT8_FC: {
                bad = j_dims(o, "filter_dims", &L->filter_dims);
                if (L->op == KD_INT8_FC)
                    bad = bad || j_int(o, "input_zero_point", -128, 127, &L->fc.input_zero_point) ||
                          j_int(o, "output_zero_point", -128, 127, &L->fc.output_zero_point) ||
                          j_pair(o, "activation", -128, 127, &L->fc.activation.min, &L->fc.activation.max);
                else
                    bad = bad || j_int(o, "input_zero_point", -128, 127, &L->conv.input_zero_point) ||
                          j_int(o, "output_zero_point", -128, 127, &L->conv.output_zero_point) ||
                          j_pair(o, "stride", 1, 65536, &L->conv.stride.h, &L->conv.stride.w) ||
                          j_pair(o, "padding", 0, 65536, &L->conv.padding.h, &L->conv.padding.w) ||
                          j_pair(o, "activation", -128, 127, &L->conv.activation.min, &L->conv.activation.max);
                if (bad) break;
                const kdrt_dims *f = &L->filter_dims;
                size_t nw = (size_t)f->n * f->h * f->w * f->c, oc = (size_t)L->out_dims.c;
                L->weight = get_tensor(&sf, L->name, "weight", "I8", nw);
                L->bias = get_tensor(&sf, L->name, "bias", "I32", oc);
                L->w_scale = get_tensor(&sf, L->name, "w_scale", "F32", oc);
                L->mult = get_tensor(&sf, L->name, "multiplier", "I32", oc);
                L->shift = get_tensor(&sf, L->name, "shift", "I32", oc);
                bad = !L->weight || !L->bias || !L->w_scale || !L->mult || !L->shift;
                break;
            }
            case KD_INT8_MAXPOOL:
            case KD_INT8_AVGPOOL:
                bad = j_pair(o, "filter", 1, 65536, &L->pool.filter.h, &L->pool.filter.w) ||
                      j_pair(o, "stride", 1, 65536, &L->pool.stride.h, &L->pool.stride.w) ||
                      j_pair(o, "padding", 0, 65536, &L->pool.padding.h, &L->pool.padding.w) ||
                      j_pair(o, "activation", -128, 127, &L->pool.activation.min, &L->pool.activation.max);
                break;
            case KD_INT8_ADD: {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "add");
                kdrt_add_params *p = &L->add;
                bad = j_int(a, "input1_zero_point", -128, 127, &p->input1_zero_point) ||
                      j_int(a, "input1_multiplier", 0, INT32_MAX, &p->input1_multiplier) ||
                      j_int(a, "input1_shift", -31, 30, &p->input1_shift) ||
                      j_int(a, "input2_zero_point", -128, 127, &p->input2_zero_point) ||
                      j_int(a, "input2_multiplier", 0, INT32_MAX, &p->input2_multiplier) ||
                      j_int(a, "input2_shift", -31, 30, &p->input2_shift) ||
                      j_int(a, "output_zero_point", -128, 127, &p->output_zero_point) ||
                      j_int(a, "output_multiplier", 0, INT32_MAX, &p->output_multiplier) ||
                      j_int(a, "output_shift", -31, 30, &p->output_shift) ||
                      j_int(a, "left_shift", 0, 22, &p->left_shift) ||
                      j_pair(a, "activation", -128, 127, &p->activation.min, &p->activation.max);
                break;
            }
            }
        if (bad)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: int8 layer %d (%s) is malformed or its tensors are missing",
                              path, i, cJSON_IsString(name) ? name->valuestring : "?");
    }
    if (!st && q->layers[q->n_layers - 1].out_dims.c != q->n_classes)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: the last layer does not give %d logits", path, q->n_classes);
    for (int i = 0; i < sf.n && !st; i++)
        if (!sf.t[i].used)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s belongs to no layer of the int8 model", path,
                              sf.t[i].name);
done:
    kd_st_close(&sf);
    cJSON_Delete(mj);
    if (st) kd_int8_free(q);
    else *out = q;
    return st;
}
