/* kdrt's model interpreter: validates a .kdm file in place (kdrt_model_load), reports and binds the
 * arena (kdrt_arena_size, kdrt_prepare) and runs the layers through the int8 kernels (kdrt_invoke).
 * The format is specified in kdrt_model.h and docs/FORMAT.md. C99, no allocation, no libc beyond
 * <string.h>; every byte of the file is treated as hostile until checked. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kdrt_kernels.h"
#include "kdrt_model.h"
#include "kernels_internal.h" /* the kernels' argument rules: one definition */

typedef char kdrt_check_float_is_32_bits[sizeof(float) == 4 ? 1 : -1];

enum { STATE_NONE = 0, STATE_LOADED = 1, STATE_PREPARED = 2 };

/* ---- CRC-32 ------------------------------------------------------------------------------------ */

/* Reflected polynomial 0xEDB88320 processed 4 bits at a time: a 64-byte table instead of zlib's
 * 1 KiB (flash matters more than the load-time speed of a one-off check). Entry i is the CRC
 * register after shifting nibble i through 4 rounds. */
static const uint32_t crc_nibble[16] = {0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
                                        0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
                                        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
                                        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t kdrt_crc32(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    if (!p) return crc;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

/* ---- Small checks ------------------------------------------------------------------------------ */

static int host_is_little_endian(void) {
    const uint32_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* scale - scale is 0 for finite values and NaN for inf and NaN: no <math.h> needed. */
static int finite_f(float v) { return v - v == 0.0f; }
static int scale_ok(float s) { return s > 0.0f && finite_f(s); }

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* The end of the layer table, then of the normalisation block (norm_c channels, 0 without one). */
static uint64_t table_end(int32_t n_layers) {
    return KDRT_KDM_HEADER_SIZE + (uint64_t)KDRT_KDM_LAYER_SIZE * (uint64_t)n_layers;
}
static size_t data_start(int32_t n_layers, int32_t norm_c) {
    return (size_t)align_up(table_end(n_layers) + 8u * (uint64_t)norm_c, 16);
}

static void read_record(const kdrt_model *m, int32_t i, kdrt_kdm_layer *r) {
    memcpy(r, m->bytes + KDRT_KDM_HEADER_SIZE + (size_t)i * KDRT_KDM_LAYER_SIZE, sizeof *r);
}

static int64_t record_count(const kdrt_kdm_layer *r) { return (int64_t)r->out_h * r->out_w * r->out_c; }

static kdrt_dims dims3(int32_t h, int32_t w, int32_t c) {
    kdrt_dims d;
    d.n = 1;
    d.h = h;
    d.w = w;
    d.c = c;
    return d;
}

static int dims_equal(const kdrt_dims *a, const kdrt_dims *b) {
    return a->n == b->n && a->h == b->h && a->w == b->w && a->c == b->c;
}

/* Output shape and quantization of layer j, or of the model input for j < 0. j is < the reader's
 * index, which the caller has checked. */
static void producer(const kdrt_model *m, int32_t j, kdrt_dims *d, kdrt_quant *q) {
    if (j < 0) {
        *d = m->input_dims;
        *q = m->input_quant;
        return;
    }
    kdrt_kdm_layer r;
    read_record(m, j, &r);
    *d = dims3(r.out_h, r.out_w, r.out_c);
    q->scale = r.out_scale;
    q->zero_point = r.out_zero_point;
}

/* ---- Decoding and validating a layer ------------------------------------------------------------ */

/* Layer i into *L. Everything about it is checked against the rules in kdrt_model.h, assuming
 * layers 0..i-1 were checked before; with full = 0 the per-channel scale scan is skipped (invoke
 * and prepare decode layers that kdrt_model_load has already validated). */
static kdrt_status decode_layer(const kdrt_model *m, int32_t i, kdrt_layer *L, int full) {
    kdrt_kdm_layer r;
    read_record(m, i, &r);
    memset(L, 0, sizeof *L);
    if ((r.flags & ~KDRT_KDM_FLAG_RELU) != 0 || r.op < KDRT_OP_CONV2D || r.op > KDRT_OP_ADD) return KDRT_STATUS_BAD_MODEL;
    L->op = (kdrt_op)r.op;
    L->relu = (r.flags & KDRT_KDM_FLAG_RELU) != 0;
    L->n_inputs = L->op == KDRT_OP_ADD ? 2 : 1;
    for (int k = 0; k < 2; k++) {
        int32_t in = r.input[k];
        if (k < L->n_inputs ? (in < KDRT_MODEL_INPUT || in >= i) : in != KDRT_MODEL_INPUT)
            return KDRT_STATUS_BAD_MODEL;
        L->input[k] = in;
    }
    if (r.out_h < 1 || r.out_w < 1 || r.out_c < 1 || record_count(&r) > INT32_MAX) return KDRT_STATUS_BAD_SHAPE;
    L->out_dims = dims3(r.out_h, r.out_w, r.out_c);
    if (!scale_ok(r.out_scale) || !kdrt_s8_ok(r.out_zero_point) || r.act_min > r.act_max) return KDRT_STATUS_BAD_QUANT;
    L->out_q.scale = r.out_scale;
    L->out_q.zero_point = r.out_zero_point;
    L->activation.min = r.act_min;
    L->activation.max = r.act_max;
    producer(m, L->input[0], &L->in_dims, &L->in_q[0]);
    L->in_q[1] = L->in_q[0];
    if (L->n_inputs == 2) {
        kdrt_dims d1;
        producer(m, L->input[1], &d1, &L->in_q[1]);
        if (!dims_equal(&d1, &L->in_dims)) return KDRT_STATUS_BAD_SHAPE;
    }
    L->kernel.h = r.kernel_h;
    L->kernel.w = r.kernel_w;
    L->stride.h = r.stride_h;
    L->stride.w = r.stride_w;
    L->padding.h = r.pad_h;
    L->padding.w = r.pad_w;
    const kdrt_dims *in = &L->in_dims, *out = &L->out_dims;
    const int windowed = L->op == KDRT_OP_CONV2D || L->op == KDRT_OP_DEPTHWISE_CONV2D ||
                         L->op == KDRT_OP_MAX_POOL2D || L->op == KDRT_OP_AVG_POOL2D;
    if (windowed) {
        if (!kdrt_window_ok(in->h, out->h, L->kernel.h, L->stride.h, L->padding.h) ||
            !kdrt_window_ok(in->w, out->w, L->kernel.w, L->stride.w, L->padding.w))
            return KDRT_STATUS_BAD_SHAPE;
    } else if (r.kernel_h || r.kernel_w || r.stride_h || r.stride_w || r.pad_h || r.pad_w) {
        return KDRT_STATUS_BAD_MODEL;
    }
    const int weighted = L->op == KDRT_OP_CONV2D || L->op == KDRT_OP_DEPTHWISE_CONV2D ||
                         L->op == KDRT_OP_FULLY_CONNECTED;
    switch (L->op) {
    case KDRT_OP_CONV2D:
        L->filter_dims.n = out->c;
        L->filter_dims.h = L->kernel.h;
        L->filter_dims.w = L->kernel.w;
        L->filter_dims.c = in->c;
        break;
    case KDRT_OP_DEPTHWISE_CONV2D:
        if (out->c != in->c) return KDRT_STATUS_BAD_SHAPE;
        L->filter_dims = dims3(L->kernel.h, L->kernel.w, in->c);
        break;
    case KDRT_OP_FULLY_CONNECTED:
        if (out->h != 1 || out->w != 1) return KDRT_STATUS_BAD_SHAPE;
        L->filter_dims.n = out->c;
        L->filter_dims.h = 1;
        L->filter_dims.w = 1;
        L->filter_dims.c = in->h * in->w * in->c; /* < 2^31: checked when the producer was */
        break;
    case KDRT_OP_MAX_POOL2D:
    case KDRT_OP_AVG_POOL2D:
        if (out->c != in->c || (int64_t)L->kernel.h * L->kernel.w > 65536) return KDRT_STATUS_BAD_SHAPE;
        /* pools do not requantize: the output must be quantized like the input */
        if (L->out_q.scale != L->in_q[0].scale || L->out_q.zero_point != L->in_q[0].zero_point)
            return KDRT_STATUS_BAD_QUANT;
        break;
    case KDRT_OP_ADD:
        if (!dims_equal(out, in)) return KDRT_STATUS_BAD_SHAPE;
        break;
    }
    if (weighted) {
        const kdrt_dims *f = &L->filter_dims;
        const uint64_t oc = (uint64_t)out->c;
        const uint64_t n_weights = (uint64_t)f->n * (uint64_t)f->h * (uint64_t)f->w * (uint64_t)f->c;
        if (n_weights > INT32_MAX) return KDRT_STATUS_BAD_SHAPE;
        const uint64_t off = r.data_offset, w_off = align_up(off + 8 * oc, 16);
        if (off % 16 != 0 || off < data_start(m->n_layers, m->input_norm_mean ? m->input_dims.c : 0) || w_off + n_weights > m->size) return KDRT_STATUS_BAD_MODEL;
        L->bias = (const int32_t *)(const void *)(m->bytes + off);
        L->w_scale = (const float *)(const void *)(m->bytes + off + 4 * oc);
        L->weight = (const int8_t *)(m->bytes + w_off);
        if (full)
            for (uint64_t c = 0; c < oc; c++)
                if (!scale_ok(L->w_scale[c])) return KDRT_STATUS_BAD_QUANT;
    } else if (r.data_offset != 0) {
        return KDRT_STATUS_BAD_MODEL;
    }
    L->act_offset = r.act_offset;
    if (i == m->n_layers - 1) {
        if (r.act_offset != 0) return KDRT_STATUS_BAD_MODEL;
    } else if ((uint64_t)r.act_offset + (uint64_t)record_count(&r) > m->activation_bytes) {
        return KDRT_STATUS_BAD_MODEL;
    }
    return KDRT_STATUS_OK;
}

/* Bytes kdrt_prepare stores for layer L: multipliers + shifts, or the add's parameters. */
static size_t layer_param_bytes(const kdrt_layer *L) {
    switch (L->op) {
    case KDRT_OP_CONV2D:
    case KDRT_OP_DEPTHWISE_CONV2D:
    case KDRT_OP_FULLY_CONNECTED: return (size_t)L->out_dims.c * 2 * sizeof(int32_t);
    case KDRT_OP_ADD: return sizeof(kdrt_add_params);
    default: return 0;
    }
}

/* Scratch the dispatched kernel of layer L needs (the arena keeps the maximum over layers). The
 * dispatchers report the largest need of the variants built for this architecture, so the arena
 * size of a model does not depend on which CPU of that architecture runs it. */
static size_t layer_scratch_bytes(const kdrt_layer *L) {
    switch (L->op) {
    case KDRT_OP_CONV2D: return kdrt_conv2d_s8_scratch_size(&L->out_dims, &L->in_dims, &L->filter_dims);
    case KDRT_OP_DEPTHWISE_CONV2D:
        return kdrt_depthwise_conv2d_s8_scratch_size(&L->out_dims, &L->in_dims, &L->filter_dims);
    case KDRT_OP_FULLY_CONNECTED: return kdrt_fully_connected_s8_scratch_size(&L->out_dims, &L->in_dims);
    default: return 0;
    }
}

/* The activation plan: an output alive while a later layer writes its own must not share a byte
 * with it. Output i is alive from layer i to its last reader. O(n^2) time, O(1) memory. */
static int plan_ok(const kdrt_model *m) {
    const int32_t n = m->n_layers;
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t last = i;
        for (int32_t j = i + 1; j < n; j++) {
            kdrt_kdm_layer r;
            read_record(m, j, &r);
            if (r.input[0] == i || (r.op == KDRT_OP_ADD && r.input[1] == i)) last = j;
        }
        kdrt_kdm_layer a;
        read_record(m, i, &a);
        const uint64_t a0 = a.act_offset, a1 = a0 + (uint64_t)record_count(&a);
        for (int32_t j = i + 1; j <= last && j + 1 < n; j++) { /* the last layer writes the caller's buffer */
            kdrt_kdm_layer b;
            read_record(m, j, &b);
            const uint64_t b0 = b.act_offset, b1 = b0 + (uint64_t)record_count(&b);
            if (a0 < b1 && b0 < a1) return 0;
        }
    }
    return 1;
}

/* ---- Public API ---------------------------------------------------------------------------------- */

kdrt_status kdrt_model_load(kdrt_model *m, const void *bytes, size_t len) {
    if (!m) return KDRT_STATUS_BAD_ARG;
    memset(m, 0, sizeof *m);
    if (!bytes) return KDRT_STATUS_BAD_ARG;
    if ((uintptr_t)bytes % 4 != 0) return KDRT_STATUS_BAD_ALIGNMENT;
    if (!host_is_little_endian()) return KDRT_STATUS_UNSUPPORTED; /* weights are read in place */
    const uint8_t *b = (const uint8_t *)bytes;
    if (len < 6 || memcmp(b, KDRT_KDM_MAGIC, 4) != 0) return KDRT_STATUS_BAD_MODEL;
    uint16_t version;
    memcpy(&version, b + 4, sizeof version);
    if (version != KDRT_KDM_VERSION) return KDRT_STATUS_BAD_VERSION;
    if (len < KDRT_KDM_HEADER_SIZE) return KDRT_STATUS_BAD_MODEL;
    kdrt_kdm_header h;
    memcpy(&h, b, sizeof h);
    if (h.header_size != KDRT_KDM_HEADER_SIZE || h.file_size < KDRT_KDM_HEADER_SIZE || h.file_size > len)
        return KDRT_STATUS_BAD_MODEL;
    if (kdrt_crc32(0, b + 12, h.file_size - 12) != h.checksum) return KDRT_STATUS_BAD_CHECKSUM;

    kdrt_status st = KDRT_STATUS_BAD_MODEL;
    const int32_t norm_c = (h.flags & KDRT_KDM_INPUT_NORM) ? h.in_c : 0;
    if ((h.flags & ~(KDRT_KDM_INPUT_NORM | KDRT_KDM_INPUT_VALUES)) != 0 || h.n_layers < 1 ||
        h.n_layers > KDRT_KDM_MAX_LAYERS || h.n_classes < 1 || data_start(h.n_layers, norm_c) > h.file_size)
        return KDRT_STATUS_BAD_MODEL;
    if (h.in_h < 1 || h.in_w < 1 || h.in_c < 1 || (int64_t)h.in_h * h.in_w * h.in_c > INT32_MAX)
        return KDRT_STATUS_BAD_SHAPE;
    if (!scale_ok(h.in_scale) || !kdrt_s8_ok(h.in_zero_point) || !scale_ok(h.in_std) || !finite_f(h.in_mean))
        return KDRT_STATUS_BAD_QUANT;
    m->bytes = b;
    m->size = h.file_size;
    m->n_layers = h.n_layers;
    m->n_classes = h.n_classes;
    m->input_dims = dims3(h.in_h, h.in_w, h.in_c);
    m->input_quant.scale = h.in_scale;
    m->input_quant.zero_point = h.in_zero_point;
    m->input_mean = h.in_mean;
    m->input_std = h.in_std;
    m->input_values = (h.flags & KDRT_KDM_INPUT_VALUES) != 0;
    if (norm_c) {
        const float *nb = (const float *)(const void *)(b + table_end(h.n_layers)); /* 4-aligned */
        for (int32_t c = 0; c < norm_c; c++)
            if (!finite_f(nb[c]) || !scale_ok(nb[norm_c + c])) {
                memset(m, 0, sizeof *m);
                return KDRT_STATUS_BAD_QUANT;
            }
        m->input_norm_mean = nb;
        m->input_norm_std = nb + norm_c;
    }
    memcpy(m->name, h.name, KDRT_KDM_NAME_MAX);
    m->name[KDRT_KDM_NAME_MAX] = '\0';
    m->activation_bytes = h.activation_bytes;

    uint64_t params = 0, scratch = 0, act_end = 0;
    kdrt_layer L;
    for (int32_t i = 0; i < m->n_layers; i++) {
        st = decode_layer(m, i, &L, 1);
        if (st != KDRT_STATUS_OK) goto fail;
        params += layer_param_bytes(&L);
        const uint64_t s = layer_scratch_bytes(&L);
        if (s > scratch) scratch = s;
        if (i + 1 < m->n_layers) {
            const uint64_t end = (uint64_t)L.act_offset + (uint64_t)L.out_dims.h * L.out_dims.w * L.out_dims.c;
            if (end > act_end) act_end = end;
        }
    }
    /* The logits: (1, 1, n_classes), written to the caller's buffer. */
    if (L.out_dims.h != 1 || L.out_dims.w != 1 || L.out_dims.c != m->n_classes) {
        st = KDRT_STATUS_BAD_SHAPE;
        goto fail;
    }
    m->output_quant = L.out_q;
    /* The stored activation size is exactly what the plan uses, and the plan is sound. */
    st = KDRT_STATUS_BAD_MODEL;
    if (act_end != h.activation_bytes || !plan_ok(m)) goto fail;
    const uint64_t total = align_up(act_end, 4) + params + scratch;
    if (total > (uint64_t)SIZE_MAX) goto fail;
    m->param_bytes = (size_t)params;
    m->scratch_bytes = (size_t)scratch;
    /* the pixel tables: one, or one per channel up to KDRT_INPUT_LUT_CHANNELS; none for float values */
    const int32_t lut_c = m->input_values ? 0 : norm_c == 0 ? 1 : norm_c < KDRT_INPUT_LUT_CHANNELS ? norm_c
                                                                                                   : KDRT_INPUT_LUT_CHANNELS;
    for (int32_t c = 0; c < lut_c; c++)
        for (int32_t p = 0; p < 256; p++) m->input_lut[c][p] = kdrt_quantize_pixel_channel(m, c, (uint8_t)p);
    m->state = STATE_LOADED;
    return KDRT_STATUS_OK;
fail:
    memset(m, 0, sizeof *m);
    return st;
}

size_t kdrt_arena_size(const kdrt_model *m) {
    if (!m || m->state < STATE_LOADED) return 0;
    return (size_t)align_up(m->activation_bytes, 4) + m->param_bytes + m->scratch_bytes;
}

kdrt_status kdrt_model_layer(const kdrt_model *m, int32_t i, kdrt_layer *out) {
    if (!m || !out) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    if (i < 0 || i >= m->n_layers) return KDRT_STATUS_BAD_ARG;
    return decode_layer(m, i, out, 0);
}

kdrt_status kdrt_prepare(kdrt_model *m, void *arena, size_t len) {
    if (!m) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    if (!arena) return KDRT_STATUS_BAD_ARG;
    if ((uintptr_t)arena % 4 != 0) return KDRT_STATUS_BAD_ALIGNMENT;
    if (len < kdrt_arena_size(m)) return KDRT_STATUS_NO_ARENA;
    m->state = STATE_LOADED;
    m->arena = NULL;
    uint8_t *p = (uint8_t *)arena + align_up(m->activation_bytes, 4);
    kdrt_layer L;
    for (int32_t i = 0; i < m->n_layers; i++) {
        kdrt_status st = decode_layer(m, i, &L, 0);
        if (st != KDRT_STATUS_OK) return st;
        if (L.weight) {
            int32_t *mult = (int32_t *)(void *)p, *shift = mult + L.out_dims.c;
            st = kdrt_prepare_channel_quant(mult, shift, L.out_dims.c, L.in_q[0].scale, L.w_scale, L.out_q.scale);
        } else if (L.op == KDRT_OP_ADD) {
            st = kdrt_add_prepare((kdrt_add_params *)(void *)p, L.in_q[0], L.in_q[1], L.out_q, L.activation);
        }
        if (st != KDRT_STATUS_OK) return st;
        p += layer_param_bytes(&L);
    }
    m->arena = (uint8_t *)arena;
    m->state = STATE_PREPARED;
    return KDRT_STATUS_OK;
}

/* One layer through its kernel. This is where a dispatcher will pick an optimised variant; the
 * `_ref` kernels are the only ones so far. `params` is the layer's prepared block in the arena. */
static kdrt_status run_layer(const kdrt_ctx *ctx, const kdrt_layer *L, int8_t *out, const int8_t *in0,
                             const int8_t *in1, const uint8_t *params) {
    switch (L->op) {
    case KDRT_OP_CONV2D:
    case KDRT_OP_DEPTHWISE_CONV2D: {
        kdrt_conv_params p;
        p.input_zero_point = L->in_q[0].zero_point;
        p.output_zero_point = L->out_q.zero_point;
        p.stride = L->stride;
        p.padding = L->padding;
        p.activation = L->activation;
        kdrt_channel_quant q;
        q.multiplier = (const int32_t *)(const void *)params;
        q.shift = q.multiplier + L->out_dims.c;
        if (L->op == KDRT_OP_CONV2D)
            return kdrt_conv2d_s8(ctx, out, &L->out_dims, in0, &L->in_dims, L->weight, &L->filter_dims, L->bias,
                                  &p, &q);
        return kdrt_depthwise_conv2d_s8(ctx, out, &L->out_dims, in0, &L->in_dims, L->weight, &L->filter_dims,
                                        L->bias, &p, &q);
    }
    case KDRT_OP_FULLY_CONNECTED: {
        kdrt_fc_params p;
        p.input_zero_point = L->in_q[0].zero_point;
        p.output_zero_point = L->out_q.zero_point;
        p.activation = L->activation;
        kdrt_channel_quant q;
        q.multiplier = (const int32_t *)(const void *)params;
        q.shift = q.multiplier + L->out_dims.c;
        return kdrt_fully_connected_s8(ctx, out, &L->out_dims, in0, &L->in_dims, L->weight, L->bias, &p, &q);
    }
    case KDRT_OP_MAX_POOL2D:
    case KDRT_OP_AVG_POOL2D: {
        kdrt_pool_params p;
        p.filter = L->kernel;
        p.stride = L->stride;
        p.padding = L->padding;
        p.activation = L->activation;
        return L->op == KDRT_OP_MAX_POOL2D ? kdrt_max_pool2d_s8(out, &L->out_dims, in0, &L->in_dims, &p)
                                           : kdrt_avg_pool2d_s8(out, &L->out_dims, in0, &L->in_dims, &p);
    }
    case KDRT_OP_ADD:
        return kdrt_add_s8(out, in0, in1, &L->out_dims, (const kdrt_add_params *)(const void *)params);
    }
    return KDRT_STATUS_BAD_MODEL;
}

static const int8_t *tensor_of(const kdrt_model *m, int32_t j, const int8_t *input) {
    if (j < 0) return input;
    kdrt_kdm_layer r;
    read_record(m, j, &r);
    return (const int8_t *)(m->arena + r.act_offset);
}

kdrt_status kdrt_invoke(kdrt_model *m, const int8_t *input, int8_t *output) {
    if (!m) return KDRT_STATUS_BAD_ARG;
    if (m->state != STATE_PREPARED) return KDRT_STATUS_NOT_PREPARED;
    if (!input || !output) return KDRT_STATUS_BAD_ARG;
    const uint8_t *params = m->arena + align_up(m->activation_bytes, 4);
    kdrt_ctx ctx; /* kernel scratch: the end of the arena, after the requantization parameters */
    ctx.buf = m->scratch_bytes ? (void *)(m->arena + align_up(m->activation_bytes, 4) + m->param_bytes) : NULL;
    ctx.size = m->scratch_bytes;
    kdrt_layer L;
    for (int32_t i = 0; i < m->n_layers; i++) {
        kdrt_status st = decode_layer(m, i, &L, 0);
        if (st != KDRT_STATUS_OK) return st;
        int8_t *out = i == m->n_layers - 1 ? output : (int8_t *)(m->arena + L.act_offset);
        const int8_t *in0 = tensor_of(m, L.input[0], input);
        const int8_t *in1 = L.n_inputs == 2 ? tensor_of(m, L.input[1], input) : NULL;
        st = run_layer(&ctx, &L, out, in0, in1, params);
        if (st != KDRT_STATUS_OK) return st;
        params += layer_param_bytes(&L);
    }
    return KDRT_STATUS_OK;
}

/* ---- Helpers ------------------------------------------------------------------------------------ */

/* clamp(round(v) + zp, -128, 127) with round to nearest, ties away from zero (C's round), without
 * libm; NaN gives -128, as the training side's kd_quantize_value. */
static int8_t quantize_double(double v, int32_t zp) {
    if (!(v >= -1e9)) return -128; /* also NaN */
    if (v > 1e9) return 127;
    int64_t t = (int64_t)v; /* truncation; v - t is exact for |v| < 2^52 */
    const double frac = v - (double)t;
    if (frac >= 0.5) t++;
    else if (frac <= -0.5) t--;
    t += zp;
    return (int8_t)(t < -128 ? -128 : t > 127 ? 127 : t);
}

/* Pixel p as the model input: the same float operations, in the same order, as kd_batch_fill's
 * normalisation (the build must not contract them into an FMA: ISO C modes of GCC and Clang do
 * not), then the training side's rounding in double. kdrt_model_load tabulates it for the 256
 * pixel values, so a device does these soft-float divisions once, not once per pixel. */
static int8_t quantize_pixel(const kdrt_model *m, float mean, float std, uint8_t p) {
    const float scale = 1.f / (255.f * std), shift = -mean / std;
    const float x = (float)p * scale + shift;
    return quantize_double((double)x / (double)m->input_quant.scale, m->input_quant.zero_point);
}

int8_t kdrt_quantize_pixel(const kdrt_model *m, uint8_t p) { return quantize_pixel(m, m->input_mean, m->input_std, p); }

/* Channel c's normalisation: the block's, or the header's. */
static int per_channel(const kdrt_model *m, int32_t c) {
    return m->input_norm_mean && c >= 0 && c < m->input_dims.c;
}

int8_t kdrt_quantize_pixel_channel(const kdrt_model *m, int32_t c, uint8_t p) {
    if (!per_channel(m, c)) return kdrt_quantize_pixel(m, p);
    return quantize_pixel(m, m->input_norm_mean[c], m->input_norm_std[c], p);
}

/* As kd_batch_fill for float values: v * (1 / std) + (-mean / std), no / 255. */
int8_t kdrt_quantize_value(const kdrt_model *m, int32_t c, float v) {
    const int pc = per_channel(m, c);
    const float mean = pc ? m->input_norm_mean[c] : m->input_mean, std = pc ? m->input_norm_std[c] : m->input_std;
    const float scale = 1.f / std, shift = -mean / std;
    const float x = v * scale + shift;
    return quantize_double((double)x / (double)m->input_quant.scale, m->input_quant.zero_point);
}

kdrt_status kdrt_quantize_input_u8(const kdrt_model *m, int8_t *out, const uint8_t *pixels) {
    if (!m || !out || !pixels) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    if (m->input_values) return KDRT_STATUS_BAD_ARG;
    const int32_t C = m->input_dims.c, n = m->input_dims.h * m->input_dims.w * C;
    if (!m->input_norm_mean) {
        for (int32_t i = 0; i < n; i++) out[i] = m->input_lut[0][pixels[i]];
        return KDRT_STATUS_OK;
    }
    for (int32_t i = 0, c = 0; i < n; i++, c = c + 1 == C ? 0 : c + 1)
        out[i] = c < KDRT_INPUT_LUT_CHANNELS ? m->input_lut[c][pixels[i]] : kdrt_quantize_pixel_channel(m, c, pixels[i]);
    return KDRT_STATUS_OK;
}

kdrt_status kdrt_quantize_input_f32(const kdrt_model *m, int8_t *out, const float *values) {
    if (!m || !out || !values) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    if (!m->input_values) return KDRT_STATUS_BAD_ARG;
    const int32_t C = m->input_dims.c, n = m->input_dims.h * m->input_dims.w * C;
    for (int32_t i = 0, c = 0; i < n; i++, c = c + 1 == C ? 0 : c + 1) out[i] = kdrt_quantize_value(m, c, values[i]);
    return KDRT_STATUS_OK;
}

int32_t kdrt_output_argmax(const kdrt_model *m, const int8_t *logits) {
    if (!m || !logits || m->state < STATE_LOADED) return -1;
    kdrt_dims d = dims3(1, 1, m->n_classes);
    int32_t best = -1;
    return kdrt_argmax_s8_ref(&best, logits, &d) == KDRT_STATUS_OK ? best : -1;
}

kdrt_status kdrt_output_dequantize(const kdrt_model *m, float *out, const int8_t *logits) {
    if (!m || !out || !logits) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    return kdrt_dequantize_s8_ref(out, logits, m->n_classes, m->output_quant);
}

/* 2^y for y <= 0 without libm: 2^floor(y) from the float's exponent bits times 2^f, f in [0, 1),
 * from a degree-5 polynomial fitted to relative error (at most 7.7e-8, below a float ulp). */
static float exp2_nonpositive(float y) {
    if (!(y > -126.0f)) return 0.0f; /* also NaN; 2^-126 and below only matter against a sum >= 1 */
    int32_t n = (int32_t)y;
    if ((float)n > y) n--;
    const float f = y - (float)n;
    float p = 0.0018762329f;
    p = p * f + 0.0089925840f;
    p = p * f + 0.0558236045f;
    p = p * f + 0.2401545299f;
    p = p * f + 0.6931529682f;
    p = p * f + 0.9999999269f;
    union {
        uint32_t u;
        float f;
    } scale;
    scale.u = (uint32_t)(n + 127) << 23;
    return p * scale.f;
}

kdrt_status kdrt_output_softmax(const kdrt_model *m, float *probs, const int8_t *logits) {
    if (!m || !probs || !logits) return KDRT_STATUS_BAD_ARG;
    if (m->state < STATE_LOADED) return KDRT_STATUS_NOT_PREPARED;
    int32_t top = logits[0];
    for (int32_t c = 1; c < m->n_classes; c++) top = logits[c] > top ? logits[c] : top;
    /* softmax is shift-invariant: exp(s (q - top)) = 2^(s log2(e) (q - top)) with q - top <= 0 */
    const float k = m->output_quant.scale * 1.44269504f;
    float sum = 0.0f;
    for (int32_t c = 0; c < m->n_classes; c++) sum += probs[c] = exp2_nonpositive(k * (float)(logits[c] - top));
    for (int32_t c = 0; c < m->n_classes; c++) probs[c] /= sum; /* sum >= 1: the top class gives 2^0 */
    return KDRT_STATUS_OK;
}

const char *kdrt_status_string(kdrt_status s) {
    switch (s) {
    case KDRT_STATUS_OK: return "ok";
    case KDRT_STATUS_BAD_ARG: return "bad argument";
    case KDRT_STATUS_BAD_SHAPE: return "bad shape";
    case KDRT_STATUS_BAD_QUANT: return "bad quantization parameter";
    case KDRT_STATUS_NO_SCRATCH: return "not enough scratch memory";
    case KDRT_STATUS_BAD_MODEL: return "malformed model";
    case KDRT_STATUS_BAD_VERSION: return "unsupported model format version";
    case KDRT_STATUS_BAD_CHECKSUM: return "checksum mismatch";
    case KDRT_STATUS_BAD_ALIGNMENT: return "buffer not 4-byte aligned";
    case KDRT_STATUS_NO_ARENA: return "arena too small";
    case KDRT_STATUS_NOT_PREPARED: return "model not loaded or not prepared";
    case KDRT_STATUS_UNSUPPORTED: return "unsupported on this target";
    }
    return "unknown status";
}
