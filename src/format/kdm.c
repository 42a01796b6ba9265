/* The .kdm container: the writer (kd_int8_model -> deployable runtime file, with the activation
 * memory plan the file stores), the C-header form of a .kdm, and the reader back to a kd_int8_model
 * through the runtime's own loader. Layout: runtime/include/kdrt_model.h, docs/FORMAT.md. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/export.h"
#include "distill/fileio.h"

/* The architecture whose kernels' scratch the C header's arena size includes (the exporting one). */
#if defined(__x86_64__)
#define KD_HOST_ARCH_MACRO "__x86_64__"
#elif defined(__aarch64__)
#define KD_HOST_ARCH_MACRO "__aarch64__"
#else
#define KD_HOST_ARCH_MACRO "KD_NO_OPTIMISED_KERNELS"
#endif
#include "kdrt_kernels.h"
#include "kdrt_model.h"

static int host_little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static size_t align16(size_t v) { return (v + 15) & ~(size_t)15; }

static uint8_t op_code(kd_int8_op op) {
    switch (op) {
    case KD_INT8_CONV: return KDRT_OP_CONV2D;
    case KD_INT8_DEPTHWISE: return KDRT_OP_DEPTHWISE_CONV2D;
    case KD_INT8_FC: return KDRT_OP_FULLY_CONNECTED;
    case KD_INT8_MAXPOOL: return KDRT_OP_MAX_POOL2D;
    case KD_INT8_AVGPOOL: return KDRT_OP_AVG_POOL2D;
    case KD_INT8_ADD: return KDRT_OP_ADD;
    }
    return 0;
}

static int is_weighted(kd_int8_op op) { return op == KD_INT8_CONV || op == KD_INT8_DEPTHWISE || op == KD_INT8_FC; }

static size_t count3(const kdrt_dims *d) { return (size_t)d->h * d->w * d->c; }

static int u16_ok(int32_t v, int32_t lo) { return v >= lo && v <= 65535; }

static int same_quant(kdrt_quant a, kdrt_quant b) { return a.scale == b.scale && a.zero_point == b.zero_point; }

/* ---------------------------------------------------------------- checks */

/* The quantization of layer j's output (or the model input). */
static kdrt_quant tensor_quant(const kd_int8_model *q, int j) { return j < 0 ? q->in_q : q->layers[j].out_q; }

static kdrt_dims tensor_dims(const kd_int8_model *q, int j) {
    kdrt_dims d = {1, q->in_h, q->in_w, q->in_c};
    return j < 0 ? d : q->layers[j].out_dims;
}

/* Everything the file cannot express or the runtime would compute differently is an error here,
 * so that a written file always reproduces kd_int8_forward_q. */
static kd_status check_layer(const kd_int8_model *q, int i, kd_error *err) {
    const kd_int8_layer *L = &q->layers[i];
    const char *nm = L->name;
    if (!op_code(L->op)) return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: unknown int8 operator", nm);
    int want_inputs = L->op == KD_INT8_ADD ? 2 : 1;
    if (L->n_inputs != want_inputs)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: %d inputs for a %s", nm, L->n_inputs,
                            kd_int8_op_name(L->op));
    for (int k = 0; k < want_inputs; k++)
        if (L->inputs[k] < KD_MODEL_INPUT || L->inputs[k] >= i)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: input %d is not an earlier layer", nm, L->inputs[k]);
    const kdrt_dims *o = &L->out_dims;
    if (o->n != 1 || !u16_ok(o->h, 1) || !u16_ok(o->w, 1) || !u16_ok(o->c, 1))
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: output %dx%dx%d (the format holds 1..65535 per "
                            "dimension)", nm, o->h, o->w, o->c);
    kdrt_dims in = tensor_dims(q, L->inputs[0]);
    kdrt_quant in_q = tensor_quant(q, L->inputs[0]);
    if (L->in_dims.h != in.h || L->in_dims.w != in.w || L->in_dims.c != in.c)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: input shape %dx%dx%d differs from its producer's "
                            "%dx%dx%d", nm, L->in_dims.h, L->in_dims.w, L->in_dims.c, in.h, in.w, in.c);
    const kdrt_dims *f = &L->filter_dims;
    switch (L->op) {
    case KD_INT8_CONV:
    case KD_INT8_DEPTHWISE:
    case KD_INT8_FC: {
        int fc = L->op == KD_INT8_FC;
        int32_t izp = fc ? L->fc.input_zero_point : L->conv.input_zero_point;
        int32_t ozp = fc ? L->fc.output_zero_point : L->conv.output_zero_point;
        if (izp != in_q.zero_point || ozp != L->out_q.zero_point)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: zero points (%d in, %d out) differ from its "
                                "tensors' (%d, %d)", nm, izp, ozp, in_q.zero_point, L->out_q.zero_point);
        int ok = L->op == KD_INT8_CONV        ? f->n == o->c && f->c == in.c
                 : L->op == KD_INT8_DEPTHWISE ? f->n == 1 && f->c == in.c && o->c == in.c
                                              : f->n == o->c && f->h == 1 && f->w == 1 && (size_t)f->c == count3(&in);
        if (!fc)
            ok = ok && u16_ok(f->h, 1) && u16_ok(f->w, 1) && u16_ok(L->conv.stride.h, 1) && u16_ok(L->conv.stride.w, 1) &&
                 u16_ok(L->conv.padding.h, 0) && u16_ok(L->conv.padding.w, 0);
        if (!ok)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: filter %dx%dx%dx%d does not fit its input or "
                                "output", nm, f->n, f->h, f->w, f->c);
        if (!L->weight || !L->bias || !L->w_scale || !L->mult || !L->shift)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: missing weights or quantization arrays", nm);
        int32_t *mult = malloc((size_t)o->c * 2 * sizeof(int32_t));
        if (!mult) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        kdrt_status ks = kdrt_prepare_channel_quant(mult, mult + o->c, o->c, in_q.scale, L->w_scale, L->out_q.scale);
        int same = ks == KDRT_STATUS_OK && memcmp(mult, L->mult, (size_t)o->c * sizeof(int32_t)) == 0 &&
                   memcmp(mult + o->c, L->shift, (size_t)o->c * sizeof(int32_t)) == 0;
        free(mult);
        if (!same)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: its requantization multipliers are not those of "
                                "its scales (kdrt_prepare_channel_quant); the runtime would compute other outputs", nm);
        break;
    }
    case KD_INT8_MAXPOOL:
    case KD_INT8_AVGPOOL: {
        const kdrt_pool_params *p = &L->pool;
        if (!u16_ok(p->filter.h, 1) || !u16_ok(p->filter.w, 1) || !u16_ok(p->stride.h, 1) || !u16_ok(p->stride.w, 1) ||
            !u16_ok(p->padding.h, 0) || !u16_ok(p->padding.w, 0) || o->c != in.c)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: pooling window out of the format's range", nm);
        if (!same_quant(L->out_q, in_q))
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: a pool's output must be quantized as its input", nm);
        break;
    }
    case KD_INT8_ADD: {
        kdrt_dims in1 = tensor_dims(q, L->inputs[1]);
        if (in1.h != in.h || in1.w != in.w || in1.c != in.c || o->h != in.h || o->w != in.w || o->c != in.c)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: add of tensors of different shapes", nm);
        kdrt_add_params p;
        memset(&p, 0, sizeof p);
        kdrt_status ks = kdrt_add_prepare(&p, in_q, tensor_quant(q, L->inputs[1]), L->out_q, L->add.activation);
        const kdrt_add_params *a = &L->add;
        if (ks != KDRT_STATUS_OK || p.input1_zero_point != a->input1_zero_point ||
            p.input1_multiplier != a->input1_multiplier || p.input1_shift != a->input1_shift ||
            p.input2_zero_point != a->input2_zero_point || p.input2_multiplier != a->input2_multiplier ||
            p.input2_shift != a->input2_shift || p.output_zero_point != a->output_zero_point ||
            p.output_multiplier != a->output_multiplier || p.output_shift != a->output_shift ||
            p.left_shift != a->left_shift)
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: its add parameters are not those of its tensors' "
                                "quantization (kdrt_add_prepare)", nm);
        break;
    }
    }
    return KD_STATUS_OK;
}

static kdrt_activation layer_activation(const kd_int8_layer *L) {
    switch (L->op) {
    case KD_INT8_CONV:
    case KD_INT8_DEPTHWISE: return L->conv.activation;
    case KD_INT8_FC: return L->fc.activation;
    case KD_INT8_MAXPOOL:
    case KD_INT8_AVGPOOL: return L->pool.activation;
    case KD_INT8_ADD: return L->add.activation;
    }
    kdrt_activation none = {-128, 127};
    return none;
}

/* ---------------------------------------------------------------- activation memory plan */

/* The plan is part of the file, not a compression pass: the header's arena size and every layer's
 * output offset are fields of the .kdm layout that kdrt_model_load checks, and no other writer or
 * pass uses them, so it lives with the writer. */

/* Greedy by size (TensorFlow Lite Micro's GreedyMemoryPlanner): the largest outputs are placed
 * first, each at the lowest 4-aligned offset that does not overlap an already placed output whose
 * lifetime [producer, last reader] intersects its own. The last layer writes to the caller's
 * buffer and gets no space. Returns the activation area's size, or (size_t)-1 when out of memory. */
static size_t plan_activations(const kd_int8_model *q, uint32_t *offset) {
    int n = q->n_layers - 1; /* planned outputs: 0..n-1 */
    if (n <= 0) return 0;
    int *last = malloc((size_t)n * sizeof(int)), *order = malloc((size_t)n * sizeof(int));
    int *placed = malloc((size_t)n * sizeof(int));
    size_t *size = malloc((size_t)n * sizeof(size_t));
    if (!last || !order || !placed || !size) {
        free(last); free(order); free(placed); free(size);
        return (size_t)-1;
    }
    for (int i = 0; i < n; i++) {
        last[i] = i;
        size[i] = count3(&q->layers[i].out_dims);
        order[i] = i;
    }
    for (int j = 0; j < q->n_layers; j++)
        for (int k = 0; k < q->layers[j].n_inputs; k++) {
            int i = q->layers[j].inputs[k];
            if (i >= 0 && i < n && j > last[i]) last[i] = j;
        }
    /* insertion sort by size descending, then index: n is small and the order must be stable */
    for (int a = 1; a < n; a++) {
        int v = order[a], b = a;
        while (b > 0 && (size[order[b - 1]] < size[v] || (size[order[b - 1]] == size[v] && order[b - 1] > v))) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = v;
    }
    size_t total = 0;
    int n_placed = 0;
    for (int a = 0; a < n; a++) {
        int i = order[a];
        /* candidate offsets: 0 and the (aligned) end of every conflicting placed buffer; take the
         * lowest that overlaps none of them */
        size_t best = (size_t)-1;
        for (int c = -1; c < n_placed; c++) {
            size_t cand = 0;
            if (c >= 0) {
                int j = placed[c];
                if (last[j] < i || last[i] < j) continue;
                cand = (offset[j] + size[j] + 3) & ~(size_t)3;
            }
            if (cand >= best) continue;
            int clash = 0;
            for (int d = 0; d < n_placed && !clash; d++) {
                int j = placed[d];
                if (last[j] < i || last[i] < j) continue; /* lifetimes disjoint */
                clash = cand < offset[j] + size[j] && offset[j] < cand + size[i];
            }
            if (!clash) best = cand;
        }
        offset[i] = (uint32_t)best;
        if (best + size[i] > total) total = best + size[i];
        placed[n_placed++] = i;
    }
    free(last); free(order); free(placed); free(size);
    return total;
}

/* ---------------------------------------------------------------- writer */

kd_status kd_kdm_write(const kd_int8_model *q, unsigned char **bytes, size_t *len, kd_error *err) {
    if (!q || !bytes || !len || !q->layers)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_kdm_write: no model or no output");
    *bytes = NULL;
    *len = 0;
    if (!host_little_endian())
        return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_kdm_write: .kdm files are written on little-endian hosts only");
    int n = q->n_layers;
    if (n < 1 || n > KDRT_KDM_MAX_LAYERS)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: %d layers (the format holds 1..%d)", q->name, n,
                            KDRT_KDM_MAX_LAYERS);
    if (!u16_ok(q->in_h, 1) || !u16_ok(q->in_w, 1) || !u16_ok(q->in_c, 1) || !u16_ok(q->n_classes, 1))
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: input %dx%dx%d or %d classes out of the format's range",
                            q->name, q->in_c, q->in_h, q->in_w, q->n_classes);
    for (int i = 0; i < n; i++) {
        kd_status st = check_layer(q, i, err);
        if (st) return st;
    }
    const kd_int8_layer *last = &q->layers[n - 1];
    if (last->out_dims.h != 1 || last->out_dims.w != 1 || last->out_dims.c != q->n_classes)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: the last layer does not give %d logits", q->name,
                            q->n_classes);

    uint32_t *act = calloc((size_t)n, sizeof(uint32_t));
    uint32_t *data = calloc((size_t)n, sizeof(uint32_t));
    if (!act || !data) {
        free(act); free(data);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    size_t act_bytes = plan_activations(q, act);
    /* the normalisation block (KDRT_KDM_INPUT_NORM) follows the layer table */
    size_t norm_at = KDRT_KDM_HEADER_SIZE + (size_t)KDRT_KDM_LAYER_SIZE * n;
    size_t cursor = align16(norm_at + (q->norm_mean ? 8 * (size_t)q->in_c : 0));
    for (int i = 0; i < n; i++) {
        const kd_int8_layer *L = &q->layers[i];
        if (!is_weighted(L->op)) continue;
        const kdrt_dims *f = &L->filter_dims;
        cursor = align16(cursor);
        data[i] = (uint32_t)cursor;
        cursor = align16(cursor + 8 * (size_t)L->out_dims.c) + (size_t)f->n * f->h * f->w * f->c;
        if (cursor > UINT32_MAX) break;
    }
    if (act_bytes == (size_t)-1 || act_bytes > UINT32_MAX || cursor > UINT32_MAX) {
        free(act); free(data);
        return kd_error_set(err, act_bytes == (size_t)-1 ? KD_STATUS_NO_MEMORY : KD_STATUS_BAD_MODEL,
                            "%s: %s", q->name, act_bytes == (size_t)-1 ? "out of memory" : "larger than 4 GB");
    }
    unsigned char *b = calloc(1, cursor);
    if (!b) {
        free(act); free(data);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory (%zu bytes)", cursor);
    }

    kdrt_kdm_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, KDRT_KDM_MAGIC, 4);
    h.version = KDRT_KDM_VERSION;
    h.header_size = KDRT_KDM_HEADER_SIZE;
    h.file_size = (uint32_t)cursor;
    h.n_layers = (uint16_t)n;
    h.n_classes = (uint16_t)q->n_classes;
    h.in_h = (uint16_t)q->in_h;
    h.in_w = (uint16_t)q->in_w;
    h.in_c = (uint16_t)q->in_c;
    h.flags = (uint16_t)((q->norm_mean ? KDRT_KDM_INPUT_NORM : 0) | (q->input_values ? KDRT_KDM_INPUT_VALUES : 0));
    h.activation_bytes = (uint32_t)act_bytes;
    h.in_scale = q->in_q.scale;
    h.in_zero_point = q->in_q.zero_point;
    h.in_mean = q->in_mean;
    h.in_std = q->in_std;
    size_t nl = strnlen(q->name, sizeof q->name); /* NUL-padded by the memset, truncated to 16 bytes */
    memcpy(h.name, q->name, nl < sizeof h.name ? nl : sizeof h.name);
    for (int i = 0; i < n; i++) {
        const kd_int8_layer *L = &q->layers[i];
        kdrt_kdm_layer r;
        memset(&r, 0, sizeof r);
        r.op = op_code(L->op);
        r.flags = L->relu ? KDRT_KDM_FLAG_RELU : 0;
        kdrt_activation a = layer_activation(L);
        r.act_min = (int8_t)a.min;
        r.act_max = (int8_t)a.max;
        r.input[0] = (int16_t)L->inputs[0];
        r.input[1] = (int16_t)(L->n_inputs == 2 ? L->inputs[1] : KDRT_MODEL_INPUT);
        r.out_h = (uint16_t)L->out_dims.h;
        r.out_w = (uint16_t)L->out_dims.w;
        r.out_c = (uint16_t)L->out_dims.c;
        r.out_zero_point = (int16_t)L->out_q.zero_point;
        r.out_scale = L->out_q.scale;
        if (L->op == KD_INT8_CONV || L->op == KD_INT8_DEPTHWISE) {
            r.kernel_h = (uint16_t)L->filter_dims.h;
            r.kernel_w = (uint16_t)L->filter_dims.w;
            r.stride_h = (uint16_t)L->conv.stride.h;
            r.stride_w = (uint16_t)L->conv.stride.w;
            r.pad_h = (uint16_t)L->conv.padding.h;
            r.pad_w = (uint16_t)L->conv.padding.w;
        } else if (L->op == KD_INT8_MAXPOOL || L->op == KD_INT8_AVGPOOL) {
            r.kernel_h = (uint16_t)L->pool.filter.h;
            r.kernel_w = (uint16_t)L->pool.filter.w;
            r.stride_h = (uint16_t)L->pool.stride.h;
            r.stride_w = (uint16_t)L->pool.stride.w;
            r.pad_h = (uint16_t)L->pool.padding.h;
            r.pad_w = (uint16_t)L->pool.padding.w;
        }
        r.act_offset = i == n - 1 ? 0 : act[i];
        r.data_offset = data[i];
        memcpy(b + KDRT_KDM_HEADER_SIZE + (size_t)i * KDRT_KDM_LAYER_SIZE, &r, sizeof r);
        if (is_weighted(L->op)) {
            size_t oc = (size_t)L->out_dims.c, off = data[i];
            const kdrt_dims *f = &L->filter_dims;
            memcpy(b + off, L->bias, oc * sizeof(int32_t));
            memcpy(b + off + 4 * oc, L->w_scale, oc * sizeof(float));
            memcpy(b + align16(off + 8 * oc), L->weight, (size_t)f->n * f->h * f->w * f->c);
        }
    }
    if (q->norm_mean) {
        memcpy(b + norm_at, q->norm_mean, (size_t)q->in_c * sizeof(float));
        memcpy(b + norm_at + 4 * (size_t)q->in_c, q->norm_std, (size_t)q->in_c * sizeof(float));
    }
    memcpy(b, &h, sizeof h);
    h.checksum = kdrt_crc32(0, b + 12, cursor - 12);
    memcpy(b, &h, sizeof h);
    free(act);
    free(data);

    /* The runtime's loader is the judge of what was written. */
    kdrt_model m;
    kdrt_status ks = kdrt_model_load(&m, b, cursor);
    if (ks != KDRT_STATUS_OK) {
        free(b);
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: the runtime rejects the written model (%s)", q->name,
                            kdrt_status_string(ks));
    }
    *bytes = b;
    *len = cursor;
    return KD_STATUS_OK;
}

kd_status kd_kdm_save(const char *path, const kd_int8_model *q, kd_error *err) {
    unsigned char *b = NULL;
    size_t n = 0;
    kd_status st = kd_kdm_write(q, &b, &n, err);
    if (!st) st = kd_write_file_atomic(path, b, n, err);
    free(b);
    return st;
}

/* ---------------------------------------------------------------- C header */

kd_status kd_kdm_to_c(const unsigned char *bytes, size_t n, const char *symbol, const char *source, char **text,
                      size_t *len, kd_error *err) {
    if (!bytes || !symbol || !text || !len) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_kdm_to_c: bad arguments");
    *text = NULL;
    *len = 0;
    size_t sl = strlen(symbol);
    int ok = sl > 0 && sl < 64 && !isdigit((unsigned char)symbol[0]);
    for (size_t i = 0; ok && i < sl; i++) ok = isalnum((unsigned char)symbol[i]) || symbol[i] == '_';
    if (!ok) return kd_error_set(err, KD_STATUS_BAD_ARG, "'%s' is not a C identifier", symbol);
    /* the arena size the runtime will ask for: load the image with the runtime itself (through an
     * aligned copy, since `bytes` may be any buffer) */
    void *copy = malloc(n ? n : 1);
    if (!copy) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    memcpy(copy, bytes, n);
    kdrt_model m;
    kdrt_status ks = kdrt_model_load(&m, copy, n);
    size_t arena = kdrt_arena_size(&m), arena_ref = arena - m.scratch_bytes;
    free(copy);
    if (ks != KDRT_STATUS_OK)
        return kd_error_set(err, KD_STATUS_BAD_FILE, "not a valid .kdm image (%s)", kdrt_status_string(ks));
    char upper[64];
    for (size_t i = 0; i <= sl; i++) upper[i] = (char)toupper((unsigned char)symbol[i]);
    char src[200];
    snprintf(src, sizeof src, "%s", source ? source : "an int8 model");
    for (char *c = src; *c; c++) /* keep the comment a comment */
        if (*c == '*' || *c == '\n' || *c == '\r') *c = '_';
    size_t cap = 1024 + strlen(src) + 3 * sl + n * 6 + n / 16 * 4;
    char *t = malloc(cap);
    if (!t) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    int w = snprintf(t, cap,
                     "/* Generated by `distill export --format c` from %s: model '%s', a .kdm image (docs/FORMAT.md)\n"
                     " * for kdrt_model_load. The array is 16-byte aligned so the runtime reads the weights in place,\n"
                     " * from flash; %s_ARENA_SIZE is what kdrt_arena_size reports: pass kdrt_prepare an arena of\n"
                     " * that many bytes, 4-byte aligned (e.g. static int32_t arena[(%s_ARENA_SIZE + 3) / 4]).\n"
                     " * The arena holds the activations, the requantization parameters and the scratch of the\n"
                     " * optimised kernels, which exist for x86-64 and AArch64 only and differ between them; targets\n"
                     " * with only the reference kernels (Cortex-M, any other) need no scratch. */\n"
                     "#ifndef %s_KDM_H\n#define %s_KDM_H\n\n"
                     "#define %s_SIZE %zu\n"
                     "#if defined(" KD_HOST_ARCH_MACRO ")\n#define %s_ARENA_SIZE %zu\n"
                     "#elif defined(__x86_64__) || defined(__aarch64__)\n"
                     "#error \"the arena size in this header was computed for " KD_HOST_ARCH_MACRO ": "
                     "export on this architecture, or size the arena with kdrt_arena_size() at run time\"\n"
                     "#else\n#define %s_ARENA_SIZE %zu\n#endif\n\n"
                     "#if defined(__GNUC__) || defined(__clang__)\n"
                     "__attribute__((aligned(16)))\n"
                     "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L\n"
                     "_Alignas(16)\n"
                     "#endif\n"
                     "static const unsigned char %s[%zu] = {\n",
                     src, m.name, upper, upper, upper, upper, upper, n, upper, arena, upper, arena_ref, symbol, n);
    size_t pos = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        if (i % 16 == 0) t[pos++] = ' ';
        pos += (size_t)snprintf(t + pos, cap - pos, " %u,", (unsigned)bytes[i]);
        if (i % 16 == 15 || i + 1 == n) t[pos++] = '\n';
    }
    pos += (size_t)snprintf(t + pos, cap - pos, "};\n\n#endif\n");
    *text = t;
    *len = pos;
    return KD_STATUS_OK;
}

kd_status kd_kdm_save_c(const char *path, const kd_int8_model *q, const char *symbol, kd_error *err) {
    unsigned char *b = NULL;
    size_t n = 0;
    char *t = NULL;
    size_t tl = 0;
    kd_status st = kd_kdm_write(q, &b, &n, err);
    if (!st) st = kd_kdm_to_c(b, n, symbol, q->name, &t, &tl, err);
    if (!st) st = kd_write_file_atomic(path, t, tl, err);
    free(b);
    free(t);
    return st;
}

/* ---------------------------------------------------------------- reader */

static kd_int8_op op_from_code(kdrt_op op) {
    switch (op) {
    case KDRT_OP_CONV2D: return KD_INT8_CONV;
    case KDRT_OP_DEPTHWISE_CONV2D: return KD_INT8_DEPTHWISE;
    case KDRT_OP_FULLY_CONNECTED: return KD_INT8_FC;
    case KDRT_OP_MAX_POOL2D: return KD_INT8_MAXPOOL;
    case KDRT_OP_AVG_POOL2D: return KD_INT8_AVGPOOL;
    case KDRT_OP_ADD: break;
    }
    return KD_INT8_ADD;
}

static void *dup_bytes(const void *p, size_t n) {
    void *d = malloc(n ? n : 1);
    if (d) memcpy(d, p, n);
    return d;
}

kd_status kd_kdm_read(const void *bytes, size_t len, kd_int8_model **out, kd_error *err) {
    if (!out) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_kdm_read: no output");
    *out = NULL;
    if (!bytes) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_kdm_read: no bytes");
    /* the runtime wants 4-byte alignment; a caller's buffer may be anything */
    void *copy = NULL;
    if ((uintptr_t)bytes % 4 != 0) {
        if (!(copy = dup_bytes(bytes, len))) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        bytes = copy;
    }
    kdrt_model m;
    kdrt_status ks = kdrt_model_load(&m, bytes, len);
    kd_status st = KD_STATUS_OK;
    kd_int8_model *q = NULL;
    if (ks != KDRT_STATUS_OK) {
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "not a valid .kdm model: %s", kdrt_status_string(ks));
        goto done;
    }
    q = calloc(1, sizeof *q);
    if (!q || !(q->layers = calloc((size_t)m.n_layers, sizeof(kd_int8_layer)))) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    snprintf(q->name, sizeof q->name, "%s", m.name);
    q->in_h = m.input_dims.h;
    q->in_w = m.input_dims.w;
    q->in_c = m.input_dims.c;
    q->n_classes = m.n_classes;
    q->in_q = m.input_quant;
    q->in_mean = m.input_mean;
    q->in_std = m.input_std;
    q->input_values = m.input_values;
    if (m.input_norm_mean && (st = kd_int8_set_norm(q, m.input_norm_mean, m.input_norm_std, err))) goto done;
    /* version 1 stores int8 values; an int4-per-group model was written as its int8 values m_g * v
     * (quantize.h), which compute the same, but the file does not record that they were int4 */
    q->weight_bits = 8;
    q->weight_group = 0;
    for (int32_t i = 0; i < m.n_layers && !st; i++) {
        kdrt_layer R;
        kd_int8_layer *L = &q->layers[i];
        q->n_layers = i + 1;
        if ((ks = kdrt_model_layer(&m, i, &R)) != KDRT_STATUS_OK) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "layer %d: %s", (int)i, kdrt_status_string(ks));
            break;
        }
        L->op = op_from_code(R.op);
        snprintf(L->name, sizeof L->name, "%s%d", kd_int8_op_name(L->op), (int)i);
        L->src = -1;
        L->n_inputs = R.n_inputs;
        L->inputs[0] = R.input[0];
        L->inputs[1] = R.input[1];
        L->in_dims = R.in_dims;
        L->out_dims = R.out_dims;
        L->out_q = R.out_q;
        L->relu = R.relu;
        switch (L->op) {
        case KD_INT8_CONV:
        case KD_INT8_DEPTHWISE:
        case KD_INT8_FC: {
            size_t oc = (size_t)R.out_dims.c;
            const kdrt_dims *f = &R.filter_dims;
            L->filter_dims = R.filter_dims;
            L->weight = dup_bytes(R.weight, (size_t)f->n * f->h * f->w * f->c);
            L->bias = dup_bytes(R.bias, oc * sizeof(int32_t));
            L->w_scale = dup_bytes(R.w_scale, oc * sizeof(float));
            L->mult = malloc(oc * sizeof(int32_t));
            L->shift = malloc(oc * sizeof(int32_t));
            if (!L->weight || !L->bias || !L->w_scale || !L->mult || !L->shift) {
                st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
                break;
            }
            if (kdrt_prepare_channel_quant(L->mult, L->shift, (int32_t)oc, R.in_q[0].scale, L->w_scale,
                                           R.out_q.scale) != KDRT_STATUS_OK) {
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "layer %d: bad scales", (int)i);
                break;
            }
            if (L->op == KD_INT8_FC) {
                L->fc.input_zero_point = R.in_q[0].zero_point;
                L->fc.output_zero_point = R.out_q.zero_point;
                L->fc.activation = R.activation;
            } else {
                L->conv.input_zero_point = R.in_q[0].zero_point;
                L->conv.output_zero_point = R.out_q.zero_point;
                L->conv.stride = R.stride;
                L->conv.padding = R.padding;
                L->conv.activation = R.activation;
            }
            break;
        }
        case KD_INT8_MAXPOOL:
        case KD_INT8_AVGPOOL:
            L->pool.filter = R.kernel;
            L->pool.stride = R.stride;
            L->pool.padding = R.padding;
            L->pool.activation = R.activation;
            break;
        case KD_INT8_ADD:
            if (kdrt_add_prepare(&L->add, R.in_q[0], R.in_q[1], R.out_q, R.activation) != KDRT_STATUS_OK)
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "layer %d: bad add quantization", (int)i);
            break;
        }
    }
done:
    free(copy);
    if (st) kd_int8_free(q);
    else *out = q;
    return st;
}

kd_status kd_kdm_load(const char *path, kd_int8_model **out, kd_error *err) {
    if (out) *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    kd_status st = kd_read_file(path, &buf, &len, err);
    if (st) return st;
    st = kd_kdm_read(buf, len, out, err);
    if (st) {
        kd_error inner = err ? *err : (kd_error){0};
        st = kd_error_set(err, st, "%s: %s", path, inner.msg);
    }
    free(buf);
    return st;
}
