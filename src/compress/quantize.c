/* Post-training int8 quantization: calibration of activation ranges (min-max, percentile, MSE),
 * conversion of a BN-folded fp32 model into runtime-layout int8 layers, and the integer evaluation,
 * which calls the runtime's reference kernels (runtime/src/kernels_ref.c) and nothing else for
 * arithmetic. The formulas are docs/QUANTIZATION.md's; see include/distill/quantize.h. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"
#include "distill/quantize.h"
#include "kdrt_kernels.h"

/* ---------------------------------------------------------------- names */

const char *kd_calib_method_name(kd_calib_method m) {
    switch (m) {
    case KD_CALIB_MINMAX: return "minmax";
    case KD_CALIB_PERCENTILE: return "percentile";
    case KD_CALIB_MSE: return "mse";
    }
    return "?";
}

int kd_calib_method_parse(const char *s, kd_calib_method *m) {
    if (!s) return -1;
    if (!strcmp(s, "minmax")) *m = KD_CALIB_MINMAX;
    else if (!strcmp(s, "percentile")) *m = KD_CALIB_PERCENTILE;
    else if (!strcmp(s, "mse")) *m = KD_CALIB_MSE;
    else return -1;
    return 0;
}

const char *kd_int8_op_name(kd_int8_op op) {
    static const char *n[] = {"conv2d", "depthwise_conv2d", "fully_connected", "max_pool2d", "avg_pool2d", "add"};
    return (unsigned)op < sizeof n / sizeof n[0] ? n[op] : "?";
}

void kd_calib_config_default(kd_calib_config *c) {
    *c = (kd_calib_config){.n_images = 0, .method = KD_CALIB_MINMAX, .percentile = 99.99, .bins = 4096,
                           .batch = 100, .threads = 1, .weight_bits = 8, .weight_group = 32};
}

/* ---------------------------------------------------------------- calibration */

void kd_calib_ranges_free(kd_calib_ranges *r) {
    if (!r) return;
    free(r->lo);
    free(r->hi);
    r->lo = r->hi = NULL;
    r->n_layers = 0;
}

/* Quantize-dequantize error of a histogram with range [lo, hi] (bins of width bw from L, centre values). */
static double hist_mse(const double *h, int bins, double L, double bw, float lo, float hi) {
    kdrt_quant q = kd_quant_from_range(lo, hi);
    double s = q.scale, e = 0.0;
    for (int i = 0; i < bins; i++) {
        if (h[i] == 0.0) continue;
        double x = L + (i + 0.5) * bw;
        double v = round(x / s) + q.zero_point;
        v = v < -128 ? -128 : v > 127 ? 127 : v;
        double d = s * (v - q.zero_point) - x;
        e += h[i] * d * d;
    }
    return e;
}

static void choose_range(const double *h, int bins, double total, float mn, float mx, const kd_calib_config *cfg,
                         float *lo, float *hi) {
    double L = mn < 0.f ? mn : 0.0, H = mx > 0.f ? mx : 0.0, bw = (H - L) / bins;
    *lo = mn;
    *hi = mx;
    if (!(H > L) || cfg->method == KD_CALIB_MINMAX) return;
    if (cfg->method == KD_CALIB_PERCENTILE) {
        double tail = total * (1.0 - cfg->percentile / 100.0), c = 0.0;
        int i = 0, j = bins - 1;
        for (; i < bins - 1; i++) {
            c += h[i];
            if (c > tail) break;
        }
        c = 0.0;
        for (; j > 0; j--) {
            c += h[j];
            if (c > tail) break;
        }
        float l = (float)(L + i * bw), u = (float)(L + (j + 1) * bw);
        *lo = l > mn ? l : mn;
        *hi = u < mx ? u : mx;
        if (*hi < *lo) *hi = *lo;
        return;
    }
    /* MSE: coordinate descent over the two ends, each a fraction k/G of the observed end. */
    const int G = 100;
    float l0 = (float)L, h0 = (float)H, bl = l0, bh = h0;
    double best = hist_mse(h, bins, L, bw, bl, bh);
    for (int round_ = 0; round_ < 2; round_++) {
        if (h0 > 0.f)
            for (int k = 1; k <= G; k++) {
                float c = h0 * (float)k / G;
                double e = hist_mse(h, bins, L, bw, bl, c);
                if (e < best) { best = e; bh = c; }
            }
        if (l0 < 0.f)
            for (int k = 1; k <= G; k++) {
                float c = l0 * (float)k / G;
                double e = hist_mse(h, bins, L, bw, c, bh);
                if (e < best) { best = e; bl = c; }
            }
    }
    /* bl in [min, 0], bh in [0, max]: never wider than min-max */
    *lo = mn >= 0.f ? mn : bl;
    *hi = mx <= 0.f ? mx : bh;
}

/* The normalisation of the int8 model's input, checked: the model's own (kd_model.norm_mean /
 * norm_std, one per channel), or the calibration set's scalar statistics for a model without one.
 * For pixels, *lo / *hi get the exact range of the normalised input: the union over channels of
 * [(0 - mean_c) / std_c, (1 - mean_c) / std_c] (float values have no such bound: calibration
 * measures theirs). */
static kd_status input_norm(const kd_model *m, const kd_dataset *ds, float *mean, float *std, float *lo, float *hi,
                            kd_error *err) {
    if ((ds->type == KD_DATA_F32) != (m->input_values != 0))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration set holds %s but model %s takes %s",
                            ds->type == KD_DATA_F32 ? "float values" : "8-bit pixels", m->name,
                            m->input_values ? "float values" : "8-bit pixels");
    int nc = m->norm_mean ? m->in_c : 1;
    for (int c = 0; c < nc; c++) {
        float mu = m->norm_mean ? m->norm_mean[c] : ds->mean, sd = m->norm_mean ? m->norm_std[c] : ds->std;
        if (!(sd > 0.f) || !isfinite(sd) || !isfinite(mu)) {
            if (!m->norm_mean)
                return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration set has a bad normalisation (mean %g, std %g)",
                                    (double)mu, (double)sd);
            return kd_error_set(err, KD_STATUS_BAD_MODEL,
                                "model %s has a bad input normalisation (channel %d: mean %g, std %g)", m->name, c,
                                (double)mu, (double)sd);
        }
        float l = (0.f - mu) / sd, h = (1.f - mu) / sd;
        if (c == 0 || l < *lo) *lo = l;
        if (c == 0 || h > *hi) *hi = h;
        if (c == 0) { *mean = mu; *std = sd; }
    }
    return KD_STATUS_OK;
}

int kd_calib_count(const kd_calib_config *cfg, int n) {
    return cfg->n_images > 0 ? cfg->n_images : n < 1000 ? n : 1000;
}

kd_status kd_int8_calibrate(kd_model *m, const kd_dataset *ds, const kd_calib_config *cfg_in, kd_calib_ranges *r,
                            kd_error *err) {
    kd_calib_config cfg;
    if (cfg_in) cfg = *cfg_in;
    else kd_calib_config_default(&cfg);
    memset(r, 0, sizeof *r);
    if (!m || !ds) return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration: no model or no data set");
    if (cfg.n_images < 0)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration needs at least 1 sample, got %d", cfg.n_images);
    if (cfg.n_images > ds->n)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration asks for %d samples but the data set has %d",
                            cfg.n_images, ds->n);
    cfg.n_images = kd_calib_count(&cfg, ds->n);
    if (cfg.n_images < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "calibration: the data set is empty");
    if (ds->c != m->in_c || ds->h != m->in_h || ds->w != m->in_w)
        return kd_error_set(err, KD_STATUS_BAD_ARG,
                            "calibration images are %dx%dx%d but model %s takes %dx%dx%d", ds->c, ds->h, ds->w,
                            m->name, m->in_c, m->in_h, m->in_w);
    float in_mean = 0.f, in_std = 1.f, in_lo = 0.f, in_hi = 0.f, x_lo = FLT_MAX, x_hi = -FLT_MAX;
    kd_status st = input_norm(m, ds, &in_mean, &in_std, &in_lo, &in_hi, err);
    if (st) return st;
    if (cfg.method == KD_CALIB_PERCENTILE && !(cfg.percentile > 50.0 && cfg.percentile <= 100.0))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "percentile must be in (50, 100], got %g", cfg.percentile);
    if (cfg.bins < 16 || cfg.bins > (1 << 20)) cfg.bins = 4096;
    if (cfg.batch < 1) cfg.batch = 100;
    if (cfg.threads < 1) cfg.threads = 1;
    int B = cfg.batch < cfg.n_images ? cfg.batch : cfg.n_images, nl = m->n_layers;
    if ((st = kd_model_set_batch(m, B, cfg.threads, err))) return st;

    size_t img = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc((size_t)B * img * sizeof(float));
    int32_t *idx = malloc((size_t)B * sizeof(int32_t)), *y = malloc((size_t)B * sizeof(int32_t));
    float *mn = malloc((size_t)nl * sizeof(float)), *mx = malloc((size_t)nl * sizeof(float));
    double *hist = NULL, *tot = calloc((size_t)nl, sizeof(double));
    r->lo = malloc((size_t)nl * sizeof(float));
    r->hi = malloc((size_t)nl * sizeof(float));
    int need_hist = cfg.method != KD_CALIB_MINMAX;
    if (need_hist) hist = calloc((size_t)nl * cfg.bins, sizeof(double));
    if (!x || !idx || !y || !mn || !mx || !tot || !r->lo || !r->hi || (need_hist && !hist)) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "calibration: out of memory");
        goto done;
    }
    r->n_layers = nl;
    for (int i = 0; i < nl; i++) { mn[i] = FLT_MAX; mx[i] = -FLT_MAX; }
    for (int pass = 0; pass < 1 + need_hist && !st; pass++) {
        for (int b0 = 0; b0 < cfg.n_images && !st; b0 += B) {
            int nb = cfg.n_images - b0 < B ? cfg.n_images - b0 : B;
            for (int k = 0; k < nb; k++) idx[k] = b0 + k;
            kd_batch_fill(x, y, ds, m->norm_mean, m->norm_std, idx, nb);
            if (pass == 0 && m->input_values) /* float values: the input's range is what the data has */
                for (size_t k = 0; k < (size_t)nb * img && !st; k++) {
                    if (!isfinite(x[k]))
                        st = kd_error_set(err, KD_STATUS_BAD_ARG, "calibration: input value %g in sample %d",
                                          (double)x[k], b0 + (int)(k / img));
                    x_lo = x[k] < x_lo ? x[k] : x_lo;
                    x_hi = x[k] > x_hi ? x[k] : x_hi;
                }
            if (st) break;
            kd_model_forward(m, x, nb, 0, NULL);
            for (int i = 0; i < nl && !st; i++) {
                const float *o = kd_model_layer_output(m, i);
                size_t n = (size_t)nb * kd_layer_out_size(&m->layers[i]);
                if (pass == 0) {
                    float a = mn[i], c = mx[i];
                    for (size_t k = 0; k < n; k++) {
                        if (!isfinite(o[k])) {
                            st = kd_error_set(err, KD_STATUS_BAD_ARG,
                                              "calibration: layer %s outputs %g on calibration image %d",
                                              m->layers[i].name, (double)o[k],
                                              b0 + (int)(k / kd_layer_out_size(&m->layers[i])));
                            break;
                        }
                        a = o[k] < a ? o[k] : a;
                        c = o[k] > c ? o[k] : c;
                    }
                    mn[i] = a;
                    mx[i] = c;
                    tot[i] += (double)n;
                } else {
                    double L = mn[i] < 0.f ? mn[i] : 0.0, H = mx[i] > 0.f ? mx[i] : 0.0;
                    if (!(H > L)) continue;
                    double inv = cfg.bins / (H - L);
                    double *h = hist + (size_t)i * cfg.bins;
                    for (size_t k = 0; k < n; k++) {
                        long bi = (long)(((double)o[k] - L) * inv);
                        bi = bi < 0 ? 0 : bi >= cfg.bins ? cfg.bins - 1 : bi;
                        h[bi] += 1.0;
                    }
                }
            }
        }
    }
    if (st) goto done;
    for (int i = 0; i < nl; i++)
        choose_range(hist ? hist + (size_t)i * cfg.bins : NULL, cfg.bins, tot[i], mn[i], mx[i], &cfg, &r->lo[i],
                     &r->hi[i]);
    r->in_mean = in_mean;
    r->in_std = in_std;
    r->in_lo = m->input_values ? x_lo : in_lo;
    r->in_hi = m->input_values ? x_hi : in_hi;
done:
    free(x); free(idx); free(y); free(mn); free(mx); free(hist); free(tot);
    if (st) kd_calib_ranges_free(r);
    return st;
}

/* ---------------------------------------------------------------- building the int8 model */

void kd_int8_free(kd_int8_model *q) {
    if (!q) return;
    for (int i = 0; i < q->n_layers; i++) {
        kd_int8_layer *L = &q->layers[i];
        free(L->weight); free(L->bias); free(L->w_scale); free(L->mult); free(L->shift);
    }
    free(q->layers);
    free(q->norm_mean);
    free(q);
}

kd_status kd_int8_set_norm(kd_int8_model *q, const float *mean, const float *std, kd_error *err) {
    free(q->norm_mean);
    q->norm_mean = q->norm_std = NULL;
    q->in_mean = mean[0];
    q->in_std = std[0];
    int differ = 0;
    for (int c = 0; c < q->in_c; c++) {
        if (!(std[c] > 0.f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 model %s: bad input normalisation of channel %d "
                                "(mean %g, std %g)", q->name, c, (double)mean[c], (double)std[c]);
        differ |= mean[c] != mean[0] || std[c] != std[0];
    }
    if (!differ) return KD_STATUS_OK;
    if (!(q->norm_mean = malloc(2 * (size_t)q->in_c * sizeof(float))))
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "int8 model %s: out of memory", q->name);
    q->norm_std = q->norm_mean + q->in_c;
    memcpy(q->norm_mean, mean, (size_t)q->in_c * sizeof(float));
    memcpy(q->norm_std, std, (size_t)q->in_c * sizeof(float));
    return KD_STATUS_OK;
}

static kdrt_dims dims4(int n, int h, int w, int c) {
    kdrt_dims d = {n, h, w, c};
    return d;
}

static kdrt_activation clamp_for(int relu, kdrt_quant q) {
    kdrt_activation a = {-128, 127};
    if (relu) a.min = q.zero_point > -128 ? q.zero_point : -128;
    return a;
}

static int32_t quant_bias(double b, double s_in, double s_w) {
    double v = round(b / (s_in * s_w));
    if (!(v == v)) return 0;
    return v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
}

/* Weights, biases, scales and multipliers of a conv / depthwise / fc layer. w: the fp32 weights in
 * the training layout, (oc, k) rows; they are quantized in that layout (so int4 groups are the
 * same runs of weights that quantization-aware training rounds) and then permuted to the runtime's
 * layout: dst index perm[j] for the weight j of a row, or, for depthwise, (C, taps) -> (taps, C). */
static kd_status fill_weights(kd_int8_layer *Q, const float *w, const float *bias, int oc, size_t k,
                              const size_t *perm, int depthwise, kdrt_quant in_q, int bits, int group, kd_error *err) {
    int8_t *t = malloc((size_t)oc * k);
    Q->weight = malloc((size_t)oc * k);
    Q->bias = malloc((size_t)oc * sizeof(int32_t));
    Q->w_scale = malloc((size_t)oc * sizeof(float));
    Q->mult = malloc((size_t)oc * sizeof(int32_t));
    Q->shift = malloc((size_t)oc * sizeof(int32_t));
    if (!t || !Q->weight || !Q->bias || !Q->w_scale || !Q->mult || !Q->shift) {
        free(t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "layer %s: out of memory", Q->name);
    }
    kd_quantize_weights_bits(t, Q->w_scale, w, oc, k, bits, group);
    for (int c = 0; c < oc; c++)
        for (size_t j = 0; j < k; j++) {
            size_t d = depthwise ? j * (size_t)oc + c : (size_t)c * k + (perm ? perm[j] : j);
            Q->weight[d] = t[(size_t)c * k + j];
        }
    free(t);
    for (int c = 0; c < oc; c++) Q->bias[c] = bias ? quant_bias(bias[c], in_q.scale, Q->w_scale[c]) : 0;
    if (kdrt_prepare_channel_quant(Q->mult, Q->shift, oc, in_q.scale, Q->w_scale, Q->out_q.scale) != KDRT_STATUS_OK)
        return kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: cannot represent its requantization multipliers",
                            Q->name);
    return KD_STATUS_OK;
}

kd_status kd_int8_build(const kd_model *m, const kd_calib_ranges *r, const kd_calib_config *cfg,
                        kd_int8_model **out, kd_error *err) {
    *out = NULL;
    int bits = cfg ? cfg->weight_bits : 8, group = cfg ? cfg->weight_group : 32;
    if (bits != 8 && bits != 4)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "weights of %d bits: only 8 and 4 are supported", bits);
    if (bits == 4 && group < 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "int4 weight groups of %d weights: must be >= 1", group);
    if (!m || !r || r->n_layers != m->n_layers || !r->lo || !r->hi)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_int8_build: the ranges do not belong to model %s",
                            m ? m->name : "?");
    int nl = m->n_layers;
    kd_int8_model *q = calloc(1, sizeof *q);
    int *ncons = calloc((size_t)nl, sizeof(int)), *cons = malloc((size_t)nl * sizeof(int));
    int *tmap = malloc((size_t)nl * sizeof(int)), *fused = calloc((size_t)nl, sizeof(int));
    kdrt_quant *tq = malloc((size_t)nl * sizeof(kdrt_quant));
    kdrt_dims *mem = malloc((size_t)nl * sizeof(kdrt_dims)); /* NHWC memory shape of each output */
    kd_status st = KD_STATUS_OK;
    if (!q || !ncons || !cons || !tmap || !fused || !tq || !mem ||
        !(q->layers = calloc((size_t)nl, sizeof(kd_int8_layer)))) {
        st = kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", m->name);
        goto done;
    }
    snprintf(q->name, sizeof q->name, "%s", m->name);
    q->weight_bits = bits;
    q->weight_group = bits == 4 ? group : 0;
    q->in_c = m->in_c; q->in_h = m->in_h; q->in_w = m->in_w; q->n_classes = m->n_classes;
    q->in_q = kd_quant_from_range(r->in_lo, r->in_hi);
    q->in_mean = r->in_mean;
    q->in_std = r->in_std;
    q->input_values = m->input_values;
    if (m->norm_mean && (st = kd_int8_set_norm(q, m->norm_mean, m->norm_std, err))) goto done;
    for (int i = 0; i < nl; i++)
        for (int k = 0; k < m->layers[i].n_inputs; k++) {
            int j = m->layers[i].inputs[k];
            if (j >= 0) { ncons[j]++; cons[j] = i; }
        }
    kdrt_dims in_mem = dims4(1, m->in_h, m->in_w, m->in_c);
    for (int i = 0; i < nl && !st; i++) {
        const kd_layer *L = &m->layers[i];
        if (fused[i]) continue; /* a ReLU folded into its producer's clamp */
        int j0 = L->inputs[0];
        int t0 = j0 < 0 ? KD_MODEL_INPUT : tmap[j0];
        kdrt_quant q0 = j0 < 0 ? q->in_q : tq[j0];
        kdrt_dims d0 = j0 < 0 ? in_mem : mem[j0];
        /* A ReLU that is the only reader of this layer's output can be fused into the clamp. */
        int relu_next = ncons[i] == 1 && m->layers[cons[i]].type == KD_LAYER_RELU;
        int src = relu_next ? cons[i] : i;
        kd_int8_layer *Q = &q->layers[q->n_layers];
        memset(Q, 0, sizeof *Q);
        snprintf(Q->name, sizeof Q->name, "%s", L->name);
        Q->n_inputs = 1;
        Q->inputs[0] = t0;
        Q->inputs[1] = KD_MODEL_INPUT;
        Q->in_dims = d0;
        Q->src = src;
        Q->relu = relu_next;
        const float *w = m->params + L->w_off, *b = L->b_size ? m->params + L->b_off : NULL;
        switch (L->type) {
        case KD_LAYER_CONV2D: {
            int dw = L->groups > 1;
            if (dw && !(L->groups == L->in_c && L->out == L->in_c)) {
                st = kd_error_set(err, KD_STATUS_BAD_MODEL,
                                  "layer %s: grouped convolution (groups %d) is not supported by the int8 runtime "
                                  "(only groups 1 and depthwise)", L->name, L->groups);
                break;
            }
            if (L->pad > L->kernel - 1) {
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: padding %d >= kernel %d is not supported "
                                  "by the int8 runtime", L->name, L->pad, L->kernel);
                break;
            }
            if (L->dilation > 1) {
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: conv2d with dilation %d is not supported by "
                                  "the int8 runtime", L->name, L->dilation);
                break;
            }
            Q->op = dw ? KD_INT8_DEPTHWISE : KD_INT8_CONV;
            Q->out_q = kd_quant_from_range(r->lo[src], r->hi[src]);
            Q->out_dims = dims4(1, L->h, L->w, L->out);
            int K = L->kernel, C = dw ? 1 : L->in_c;
            Q->filter_dims = dw ? dims4(1, K, K, L->out) : dims4(L->out, K, K, L->in_c);
            size_t taps = (size_t)K * K * C;
            size_t *perm = malloc(taps * sizeof(size_t));
            if (!perm) { st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory"); break; }
            /* a row in IHW order -> HWI */
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) perm[((size_t)c * K + ky) * K + kx] = ((size_t)ky * K + kx) * C + c;
            st = fill_weights(Q, w, b, L->out, taps, perm, dw, q0, bits, group, err);
            free(perm);
            Q->conv.input_zero_point = q0.zero_point;
            Q->conv.output_zero_point = Q->out_q.zero_point;
            Q->conv.stride.h = Q->conv.stride.w = L->stride;
            Q->conv.padding.h = Q->conv.padding.w = L->pad;
            Q->conv.activation = clamp_for(relu_next, Q->out_q);
            break;
        }
        case KD_LAYER_LINEAR: {
            int F = L->in_c, Hh = d0.h, Ww = d0.w, C = d0.c;
            if ((long)Hh * Ww * C != F) {
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: input of %d features from a %dx%dx%d tensor",
                                  L->name, F, C, Hh, Ww);
                break;
            }
            Q->op = KD_INT8_FC;
            Q->out_q = kd_quant_from_range(r->lo[src], r->hi[src]);
            Q->out_dims = dims4(1, 1, 1, L->out);
            Q->filter_dims = dims4(L->out, 1, 1, F);
            size_t *perm = malloc((size_t)F * sizeof(size_t));
            if (!perm) { st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory"); break; }
            /* training column (c*H + y)*W + x -> runtime column (y*W + x)*C + c */
            for (int c = 0; c < C; c++)
                for (int y = 0; y < Hh; y++)
                    for (int x = 0; x < Ww; x++) perm[((size_t)c * Hh + y) * Ww + x] = ((size_t)y * Ww + x) * C + c;
            st = fill_weights(Q, w, b, L->out, (size_t)F, perm, 0, q0, bits, group, err);
            free(perm);
            Q->fc.input_zero_point = q0.zero_point;
            Q->fc.output_zero_point = Q->out_q.zero_point;
            Q->fc.activation = clamp_for(relu_next, Q->out_q);
            break;
        }
        case KD_LAYER_MAXPOOL:
        case KD_LAYER_AVGPOOL:
        case KD_LAYER_GLOBAL_AVGPOOL:
        case KD_LAYER_RELU: {
            int pooled = L->type == KD_LAYER_MAXPOOL || L->type == KD_LAYER_AVGPOOL;
            if (pooled && (L->pad || L->h != kd_pool_out_size(L->in_h, L->kernel, L->stride, 0, 0) ||
                           L->w != kd_pool_out_size(L->in_w, L->kernel, L->stride, 0, 0))) { /* padded, or ceil_mode adds a window */
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: %s with padding or ceil_mode is not supported "
                                  "by the int8 runtime", L->name, kd_layer_type_name(L->type));
                break;
            }
            Q->op = L->type == KD_LAYER_MAXPOOL || L->type == KD_LAYER_RELU ? KD_INT8_MAXPOOL : KD_INT8_AVGPOOL;
            Q->out_q = q0; /* pools do not requantize */
            if (L->type == KD_LAYER_GLOBAL_AVGPOOL) {
                Q->pool.filter.h = Q->pool.stride.h = d0.h;
                Q->pool.filter.w = Q->pool.stride.w = d0.w;
                Q->out_dims = dims4(1, 1, 1, d0.c);
            } else if (L->type == KD_LAYER_RELU) { /* standalone ReLU: a 1x1 max pool with the ReLU clamp */
                Q->pool.filter.h = Q->pool.filter.w = Q->pool.stride.h = Q->pool.stride.w = 1;
                Q->out_dims = d0;
                Q->relu = relu_next = 1;
                Q->src = src = i;
            } else {
                Q->pool.filter.h = Q->pool.filter.w = L->kernel;
                Q->pool.stride.h = Q->pool.stride.w = L->stride;
                Q->out_dims = dims4(1, L->h, L->w, L->c);
            }
            Q->pool.activation = clamp_for(relu_next, Q->out_q);
            break;
        }
        case KD_LAYER_ADD: {
            int j1 = L->inputs[1];
            kdrt_quant q1 = j1 < 0 ? q->in_q : tq[j1];
            int c1, h1, w1;
            kd_layer_input_shape(m, L, 1, &c1, &h1, &w1);
            if (L->in_c != L->c || L->in_h != L->h || L->in_w != L->w || c1 != L->c || h1 != L->h || w1 != L->w) {
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: add with broadcasting is not supported by the "
                                  "int8 runtime", L->name);
                break;
            }
            Q->op = KD_INT8_ADD;
            Q->n_inputs = 2;
            Q->inputs[1] = j1 < 0 ? KD_MODEL_INPUT : tmap[j1];
            Q->out_q = kd_quant_from_range(r->lo[src], r->hi[src]);
            Q->out_dims = d0;
            if (kdrt_add_prepare(&Q->add, q0, q1, Q->out_q, clamp_for(relu_next, Q->out_q)) != KDRT_STATUS_OK)
                st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: cannot represent the add's rescaling", L->name);
            break;
        }
        case KD_LAYER_FLATTEN:
        case KD_LAYER_DROPOUT: /* no computation: the output is the input tensor */
            tmap[i] = t0;
            tq[i] = q0;
            mem[i] = d0;
            continue;
        case KD_LAYER_BATCHNORM:
            st = kd_error_set(err, KD_STATUS_BAD_MODEL,
                              "layer %s: batch norm that cannot be folded into a preceding conv/linear is not "
                              "supported by the int8 runtime (run kd_fold_batchnorm first)", L->name);
            break;
        case KD_LAYER_GELU:
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: GELU is not supported by the int8 runtime", L->name);
            break;
        default:
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "layer %s: type %s is not supported by the int8 runtime",
                              L->name, kd_layer_type_name(L->type));
            break;
        }
        if (st) break;
        int qi = q->n_layers++;
        tmap[i] = qi;
        tq[i] = Q->out_q;
        mem[i] = Q->out_dims;
        if (relu_next && src != i) {
            fused[src] = 1;
            tmap[src] = qi;
            tq[src] = Q->out_q;
            mem[src] = Q->out_dims;
        }
    }
    if (!st && (q->n_layers == 0 || tmap[nl - 1] != q->n_layers - 1))
        st = kd_error_set(err, KD_STATUS_BAD_MODEL, "%s: the logits are not computed by an int8 layer", m->name);
done:
    free(ncons); free(cons); free(tmap); free(fused); free(tq); free(mem);
    if (st) kd_int8_free(q);
    else *out = q;
    return st;
}

kd_status kd_int8_quantize(const kd_model *m, const kd_dataset *calib, const kd_calib_config *cfg,
                           kd_int8_model **out, kd_error *err) {
    *out = NULL;
    kd_model *f = NULL;
    kd_calib_ranges r;
    kd_status st = kd_fold_batchnorm(m, &f, NULL, err);
    if (st) return st;
    st = kd_int8_calibrate(f, calib, cfg, &r, err);
    if (!st) {
        st = kd_int8_build(f, &r, cfg, out, err);
        kd_calib_ranges_free(&r);
    }
    kd_model_free(f);
    return st;
}

size_t kd_int8_param_bytes(const kd_int8_model *q) {
    size_t n = 0;
    for (int i = 0; i < q->n_layers; i++) {
        const kd_int8_layer *L = &q->layers[i];
        if (L->op == KD_INT8_CONV || L->op == KD_INT8_DEPTHWISE || L->op == KD_INT8_FC) {
            const kdrt_dims *f = &L->filter_dims;
            size_t oc = (size_t)L->out_dims.c;
            n += (size_t)f->n * f->h * f->w * f->c + oc * 3 * sizeof(int32_t);
        }
    }
    return n;
}

size_t kd_fp32_param_bytes(const kd_model *m) { return (m->n_params + m->n_buffers) * sizeof(float); }

/* ---------------------------------------------------------------- integer evaluation */

void kd_int8_quantize_input(const kd_int8_model *q, int8_t *out, const float *x, int B) {
    int C = q->in_c, H = q->in_h, W = q->in_w;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++)
                    out[(((size_t)b * H + y) * W + xx) * C + c] =
                        kd_quantize_value(x[(((size_t)b * C + c) * H + y) * W + xx], q->in_q);
}

static size_t dims_count(const kdrt_dims *d) { return (size_t)d->n * d->h * d->w * d->c; }

kd_status kd_int8_forward_q(const kd_int8_model *q, const int8_t *in, int B, int8_t *logits, kd_error *err) {
    if (!q || !in || !logits || B < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_int8_forward: bad arguments");
    size_t total = 0;
    size_t *off = malloc((size_t)q->n_layers * sizeof(size_t));
    if (!off) return kd_error_set(err, KD_STATUS_NO_MEMORY, "int8 forward: out of memory");
    for (int i = 0; i < q->n_layers; i++) {
        off[i] = total;
        total += (size_t)B * dims_count(&q->layers[i].out_dims);
    }
    int8_t *arena = malloc(total ? total : 1);
    if (!arena) {
        free(off);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "int8 forward: cannot allocate %zu bytes", total);
    }
    kd_status st = KD_STATUS_OK;
    for (int i = 0; i < q->n_layers && !st; i++) {
        const kd_int8_layer *L = &q->layers[i];
        int8_t *o = arena + off[i];
        const int8_t *x0 = L->inputs[0] < 0 ? in : arena + off[L->inputs[0]];
        kdrt_dims id = L->in_dims, od = L->out_dims;
        id.n = od.n = B;
        kdrt_channel_quant cq = {L->mult, L->shift};
        kdrt_status ks = KDRT_STATUS_BAD_ARG;
        switch (L->op) {
        case KD_INT8_CONV:
            ks = kdrt_conv2d_s8_ref(NULL, o, &od, x0, &id, L->weight, &L->filter_dims, L->bias, &L->conv, &cq);
            break;
        case KD_INT8_DEPTHWISE:
            ks = kdrt_depthwise_conv2d_s8_ref(NULL, o, &od, x0, &id, L->weight, &L->filter_dims, L->bias, &L->conv,
                                              &cq);
            break;
        case KD_INT8_FC:
            ks = kdrt_fully_connected_s8_ref(NULL, o, &od, x0, &id, L->weight, L->bias, &L->fc, &cq);
            break;
        case KD_INT8_MAXPOOL: ks = kdrt_max_pool2d_s8_ref(o, &od, x0, &id, &L->pool); break;
        case KD_INT8_AVGPOOL: ks = kdrt_avg_pool2d_s8_ref(o, &od, x0, &id, &L->pool); break;
        case KD_INT8_ADD: {
            const int8_t *x1 = L->inputs[1] < 0 ? in : arena + off[L->inputs[1]];
            ks = kdrt_add_s8_ref(o, x0, x1, &od, &L->add);
            break;
        }
        }
        if (ks != KDRT_STATUS_OK)
            st = kd_error_set(err, KD_STATUS_BAD_MODEL, "int8 layer %s (%s): the runtime kernel refused it (kdrt status %d)",
                              L->name, kd_int8_op_name(L->op), (int)ks);
    }
    if (!st) memcpy(logits, arena + off[q->n_layers - 1], (size_t)B * q->n_classes);
    free(arena);
    free(off);
    return st;
}

kd_status kd_int8_forward(const kd_int8_model *q, const float *x, int B, int8_t *logits, kd_error *err) {
    if (!q || !x || B < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_int8_forward: bad arguments");
    int8_t *in = malloc((size_t)B * q->in_c * q->in_h * q->in_w);
    if (!in) return kd_error_set(err, KD_STATUS_NO_MEMORY, "int8 forward: out of memory");
    kd_int8_quantize_input(q, in, x, B);
    kd_status st = kd_int8_forward_q(q, in, B, logits, err);
    free(in);
    return st;
}

kd_status kd_int8_evaluate(const kd_int8_model *q, const kd_dataset *ds, int batch, int threads, double *accuracy,
                           int32_t *predictions, kd_error *err) {
    if (!q || !ds || !accuracy || ds->n < 1)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "int8 evaluation: no model or an empty data set");
    if (ds->c != q->in_c || ds->h != q->in_h || ds->w != q->in_w)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "int8 evaluation: images are %dx%dx%d but model %s takes %dx%dx%d",
                            ds->c, ds->h, ds->w, q->name, q->in_c, q->in_h, q->in_w);
    if (!(q->in_std > 0.f) || !isfinite(q->in_std) || !isfinite(q->in_mean))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "int8 evaluation: model %s has a bad input normalisation (mean %g, "
                            "std %g)", q->name, (double)q->in_mean, (double)q->in_std);
    if ((ds->type == KD_DATA_F32) != (q->input_values != 0))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "int8 evaluation: the data holds %s but model %s takes %s",
                            ds->type == KD_DATA_F32 ? "float values" : "8-bit pixels", q->name,
                            q->input_values ? "float values" : "8-bit pixels");
    if (batch < 1) batch = 256;
    if (threads < 1) threads = 1;
    int nb = (ds->n + batch - 1) / batch;
    long correct = 0;
    kd_status st = KD_STATUS_OK;
    kd_error first = {0};
    size_t img = (size_t)q->in_c * q->in_h * q->in_w;
    kd_dataset own = *ds; /* the images normalised as the int8 model was built to take them */
    own.mean = q->in_mean;
    own.std = q->in_std;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(+ : correct)
    for (int bi = 0; bi < nb; bi++) {
        int b0 = bi * batch, n = ds->n - b0 < batch ? ds->n - b0 : batch;
        float *x = malloc((size_t)n * img * sizeof(float));
        int32_t *idx = malloc((size_t)n * sizeof(int32_t)), *y = malloc((size_t)n * sizeof(int32_t));
        int32_t *am = malloc((size_t)n * sizeof(int32_t));
        int8_t *lg = malloc((size_t)n * q->n_classes);
        kd_error e;
        kd_status s = KD_STATUS_OK;
        if (!x || !idx || !y || !am || !lg) {
            s = kd_error_set(&e, KD_STATUS_NO_MEMORY, "int8 evaluation: out of memory");
        } else {
            for (int k = 0; k < n; k++) idx[k] = b0 + k;
            kd_batch_fill(x, y, &own, q->norm_mean, q->norm_std, idx, n);
            s = kd_int8_forward(q, x, n, lg, &e);
            kdrt_dims ld = {n, 1, 1, q->n_classes};
            if (!s && kdrt_argmax_s8_ref(am, lg, &ld) != KDRT_STATUS_OK)
                s = kd_error_set(&e, KD_STATUS_BAD_ARG, "int8 evaluation: argmax failed");
            if (!s)
                for (int k = 0; k < n; k++) {
                    correct += am[k] == y[k];
                    if (predictions) predictions[b0 + k] = am[k];
                }
        }
        if (s) {
#pragma omp critical(kd_int8_eval_err)
            if (!st) { st = s; first = e; }
        }
        free(x); free(idx); free(y); free(am); free(lg);
    }
    if (st) {
        if (err) *err = first;
        return st;
    }
    *accuracy = (double)correct / ds->n;
    return KD_STATUS_OK;
}
