/* Model surgery (src/compress): batch-norm folding keeps eval outputs; magnitude masks hit their
 * exact target and survive optimizer steps; the AGP schedule; structured channel pruning gives the
 * outputs of the dense model with those channels zeroed, and shrinks parameters and MACs as
 * reported; bad arguments are errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill/compress.h"
#include "distill/model.h"
#include "distill/train.h"
#include "test.h"
#include "test_models.h"

#define B 3

static void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    kd_rng r;
    kd_rng_seed(&r, seed, 11);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kd_rng_uniform(&r);
}

/* Non-trivial batch-norm state: gamma of both signs, beta, running mean and variance. */
static void perturb_bn_signed(kd_model *m, uint64_t seed) {
    const bn_spread s = {0.3f, 1.4f, 1.f, 0.5f, 0.4f, 0.05f, 2.f, 1};
    perturb_bn_with(m, seed, &s);
}

/* Eval-mode logits of B fixed random inputs; malloc'd copy. */
static float *eval_logits(kd_model *m) {
    kd_error err;
    size_t in = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = malloc(B * in * sizeof *x);
    fill_uniform(x, B * in, -1.f, 1.f, 99);
    CHECK_MSG(kd_model_set_batch(m, B, 1, &err) == KD_STATUS_OK, "%s", err.msg);
    const float *y = kd_model_forward(m, x, B, 0, NULL);
    float *out = malloc((size_t)B * m->n_classes * sizeof *out);
    memcpy(out, y, (size_t)B * m->n_classes * sizeof *out);
    free(x);
    return out;
}

/* max |a - b| relative to max |a| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, mag = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        mag = fmax(mag, fabs((double)a[i]));
    }
    return d / mag;
}

static kd_model *clone(const kd_model *m) {
    kd_model *c = NULL;
    kd_error err;
    if (kd_model_from_yaml(&c, m->yaml, "clone", 0, &err)) return NULL;
    memcpy(c->params, m->params, m->n_params * sizeof(float));
    memcpy(c->buffers, m->buffers, m->n_buffers * sizeof(float));
    return c;
}

static int count_type(const kd_model *m, kd_layer_type t) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].type == t;
    return n;
}

/* ---- batch-norm folding ---- */

static void check_fold(kd_model *m, int want_folded, int want_bn_left) {
    kd_error err;
    kd_model *f = NULL;
    int nf = -1;
    perturb_bn_signed(m, 3);
    int bn_before = count_type(m, KD_LAYER_BATCHNORM);
    kd_status st = kd_fold_batchnorm(m, &f, &nf, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s: %s", m->name, err.msg);
    if (st) return;
    CHECK_MSG(nf == want_folded, "%s: folded %d, want %d", m->name, nf, want_folded);
    CHECK(count_type(f, KD_LAYER_BATCHNORM) == want_bn_left);
    CHECK(bn_before - want_bn_left == nf);
    CHECK(f->n_layers == m->n_layers - nf);
    CHECK(strcmp(f->name, m->name) == 0);
    float *a = eval_logits(m), *b = eval_logits(f);
    double d = rel_diff(a, b, (size_t)B * m->n_classes);
    CHECK_MSG(d <= 1e-5, "%s: folded outputs differ by %g (relative)", m->name, d);
    printf("fold %-12s %d BN folded, %d kept, max relative difference %.2e\n", m->name, nf, want_bn_left, d);
    free(a);
    free(b);
    /* the YAML written for the folded model rebuilds the same model */
    kd_model *r = NULL;
    CHECK_MSG(kd_model_from_yaml(&r, f->yaml, "refold", 0, &err) == KD_STATUS_OK, "%s", err.msg);
    if (r) CHECK(r->n_params == f->n_params && r->n_layers == f->n_layers);
    kd_model_free(r);
    kd_model_free(f);
}

static void test_fold(void) {
    kd_error err;
    kd_model *m = NULL;
    CHECK(kd_model_create(&m, "cnn-t", 1, &err) == KD_STATUS_OK);
    check_fold(m, 4, 0);
    kd_model *f = NULL;
    CHECK(kd_fold_batchnorm(m, &f, NULL, &err) == KD_STATUS_OK);
    if (f) {
        /* names kept, producers gained a bias, readers re-pointed */
        int c1 = kd_model_find_layer(f, "conv1"), r1 = kd_model_find_layer(f, "relu1");
        CHECK(c1 == 0 && r1 == 1 && f->layers[r1].inputs[0] == c1);
        CHECK(f->layers[c1].bias && f->layers[c1].b_size == 32);
        CHECK(kd_model_find_layer(f, "bn1") < 0);
        CHECK(kd_model_find_layer(f, "fc1") >= 0 && f->layers[kd_model_find_layer(f, "fc1")].b_size == 256);
        CHECK(f->n_params == m->n_params - 2 * (32 + 64 + 128 + 256) + (32 + 64 + 128 + 256));
        CHECK(f->n_buffers == 0);
    }
    kd_model_free(f);
    kd_model_free(m);

    CHECK(kd_model_create(&m, "mobilenet-s", 2, &err) == KD_STATUS_OK);
    check_fold(m, 7, 0); /* every BN follows a conv (depthwise ones too) */
    kd_model_free(m);

    /* residual model: BNs after an add, or on a conv that also feeds another layer, stay */
    const char *yaml =
        "name: res-fold\n"
        "input: [2, 8, 8]\n"
        "layers:\n"
        "  - {name: in_bn, type: batchnorm}\n"
        "  - {name: stem, type: conv2d, out: 6, kernel: 3, pad: 1}\n"
        "  - {name: stem_bn, type: batchnorm}\n"
        "  - {name: stem_relu, type: relu}\n"
        "  - {name: dw, type: conv2d, out: 6, kernel: 3, pad: 1, groups: 6, bias: false}\n"
        "  - {name: dw_bn, type: batchnorm, eps: 0.001}\n"
        "  - {name: pw, type: conv2d, out: 6, kernel: 1, bias: false}\n"
        "  - {name: pw_bn, type: batchnorm}\n"
        "  - {name: sum, type: add, inputs: [pw_bn, stem_relu]}\n"
        "  - {name: sum_bn, type: batchnorm}\n"
        "  - {name: side, type: conv2d, out: 6, kernel: 1}\n"
        "  - {name: side_bn, type: batchnorm}\n"
        "  - {name: mix, type: add, inputs: [side, side_bn]}\n"
        "  - {name: gap, type: global_avgpool}\n"
        "  - {name: fc1, type: linear, out: 12, bias: false}\n"
        "  - {name: fc1_bn, type: batchnorm}\n"
        "  - {name: act, type: gelu}\n"
        "  - {name: fc2, type: linear, out: 5}\n"
        "  - {name: 'out:bn', type: batchnorm}\n";
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "res.yaml", 4, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    check_fold(m, 5, 3); /* in_bn (on the input), sum_bn (after an add), side_bn (side feeds mix) */
    CHECK(kd_fold_batchnorm(m, &f, NULL, &err) == KD_STATUS_OK);
    if (f) {
        int sum = kd_model_find_layer(f, "sum");
        CHECK(sum >= 0 && f->layers[sum].inputs[0] == kd_model_find_layer(f, "pw"));
        CHECK(f->layers[sum].inputs[1] == kd_model_find_layer(f, "stem_relu"));
        CHECK(kd_model_find_layer(f, "sum_bn") >= 0 && kd_model_find_layer(f, "side_bn") >= 0);
        CHECK(kd_model_find_layer(f, "in_bn") == 0 && f->layers[1].inputs[0] == 0);
        CHECK(!strcmp(f->layers[f->n_layers - 1].name, "fc2")); /* a final BN folds too */
    }
    kd_model_free(f);
    kd_model_free(m);
    CHECK(kd_fold_batchnorm(NULL, &f, NULL, &err) == KD_STATUS_BAD_ARG && f == NULL);
}

/* ---- unstructured pruning ---- */

static size_t zeros_in(const kd_model *m, const kd_layer *L) {
    size_t z = 0;
    for (size_t k = 0; k < L->w_size; k++) z += m->params[L->w_off + k] == 0.f;
    return z;
}

/* Every pruned weight was no larger in magnitude than every kept one (within each span checked). */
static int magnitude_order_ok(const float *orig, const kd_model *m, size_t off, size_t n) {
    float max_pruned = 0.f, min_kept = INFINITY;
    for (size_t k = 0; k < n; k++) {
        float a = fabsf(orig[off + k]);
        if (m->params[off + k] == 0.f) max_pruned = fmaxf(max_pruned, a);
        else min_kept = fminf(min_kept, a);
    }
    return max_pruned <= min_kept;
}

static void test_magnitude(void) {
    kd_error err;
    kd_model *m = NULL;
    kd_prune_mask mask;
    CHECK(kd_model_create(&m, "cnn-s", 5, &err) == KD_STATUS_OK);
    float *orig = malloc(m->n_params * sizeof *orig);
    memcpy(orig, m->params, m->n_params * sizeof *orig);
    CHECK(kd_prune_mask_init(&mask, m, &err) == KD_STATUS_OK);
    CHECK(kd_model_weight_sparsity(m) == 0.0);

    /* per layer: exactly round(s * n) zeros in each layer, the smallest ones */
    CHECK(kd_prune_magnitude(m, &mask, 0.37f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_OK);
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_CONV2D && L->type != KD_LAYER_LINEAR) continue;
        size_t want = (size_t)floor(0.37 * (double)L->w_size + 0.5), masked = 0;
        for (size_t k = 0; k < L->w_size; k++) masked += !mask.keep[L->w_off + k];
        CHECK_MSG(zeros_in(m, L) == want && masked == want, "%s: %zu zeros, %zu masked, want %zu", L->name,
                  zeros_in(m, L), masked, want);
        CHECK(magnitude_order_ok(orig, m, L->w_off, L->w_size));
        for (size_t k = 0; k < L->b_size; k++) CHECK(mask.keep[L->b_off + k] && m->params[L->b_off + k] == orig[L->b_off + k]);
    }

    /* global, growing: exactly round(s * total) zeros, one threshold, old mask kept */
    unsigned char *prev = malloc(mask.n);
    memcpy(prev, mask.keep, mask.n);
    memcpy(m->params, orig, m->n_params * sizeof *orig);
    CHECK(kd_prune_apply(m, &mask, &err) == KD_STATUS_OK);
    CHECK(kd_prune_magnitude(m, &mask, 0.8f, KD_PRUNE_GLOBAL, &err) == KD_STATUS_OK);
    size_t total = 0, zeros = 0;
    int superset = 1;
    for (size_t k = 0; k < mask.n; k++) superset &= prev[k] || !mask.keep[k];
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_CONV2D && L->type != KD_LAYER_LINEAR) continue;
        total += L->w_size;
        zeros += zeros_in(m, L);
    }
    CHECK(superset);
    CHECK_MSG(zeros == (size_t)floor(0.8 * (double)total + 0.5), "%zu zeros of %zu", zeros, total);
    CHECK_NEAR(kd_model_weight_sparsity(m), 0.8, 0.5 / (double)total);
    /* one threshold across layers: compare pruned/kept over all weights (old-masked ones aside) */
    float max_pruned = 0.f, min_kept = INFINITY;
    for (int i = 0; i < m->n_layers; i++) {
        const kd_layer *L = &m->layers[i];
        if (L->type != KD_LAYER_CONV2D && L->type != KD_LAYER_LINEAR) continue;
        for (size_t k = 0; k < L->w_size; k++) {
            size_t p = L->w_off + k;
            if (!prev[p]) continue;
            if (mask.keep[p]) min_kept = fminf(min_kept, fabsf(orig[p]));
            else max_pruned = fmaxf(max_pruned, fabsf(orig[p]));
        }
    }
    CHECK(max_pruned <= min_kept);
    free(prev);

    /* report of an unstructured pruning: parameters and MACs unchanged, non-zeros down */
    kd_model *dense = clone(m);
    memcpy(dense->params, orig, m->n_params * sizeof *orig);
    kd_prune_report rep;
    CHECK(kd_prune_report_compare(dense, m, &rep, &err) == KD_STATUS_OK);
    CHECK(rep.params_before == m->n_params && rep.params_after == m->n_params);
    CHECK(rep.nonzero_before == m->n_params && rep.nonzero_after == m->n_params - zeros);
    CHECK(rep.macs_before == kd_model_macs(m) && rep.macs_after == rep.macs_before);
    CHECK(rep.n_layers == m->n_layers && rep.layers[0].nonzero_after == rep.layers[0].params_after - zeros_in(m, &m->layers[0]));
    CHECK(rep.layers[0].kept == NULL && rep.layers[0].channels_after == 8);
    kd_prune_report_free(&rep);
    kd_model_free(dense);

    /* masks survive optimizer steps (SGD with momentum + weight decay, then AdamW) */
    for (int opt = 0; opt < 2; opt++) {
        kd_optim_config oc;
        kd_optim_config_default(&oc);
        if (opt) oc.type = KD_OPT_ADAMW;
        kd_optimizer o;
        CHECK(kd_optimizer_init(&o, &oc, m, &err) == KD_STATUS_OK);
        CHECK(kd_model_set_batch(m, 4, 1, &err) == KD_STATUS_OK);
        size_t in = (size_t)m->in_c * m->in_h * m->in_w;
        float *x = malloc(4 * in * sizeof *x), dl[40];
        int leaked = 0, stayed = 1;
        for (int step = 0; step < 3; step++) {
            fill_uniform(x, 4 * in, -1.f, 1.f, (uint64_t)(step + 10 * opt));
            fill_uniform(dl, 40, -1.f, 1.f, (uint64_t)(step + 100));
            kd_model_zero_grad(m);
            kd_model_forward(m, x, 4, 1, NULL);
            kd_model_backward(m, dl);
            kd_optimizer_step(&o, m, 0.05f);
            for (size_t k = 0; k < mask.n; k++) leaked += !mask.keep[k] && m->params[k] != 0.f;
            CHECK(kd_prune_apply(m, &mask, &err) == KD_STATUS_OK);
            for (size_t k = 0; k < mask.n; k++) stayed &= mask.keep[k] || m->params[k] == 0.f;
        }
        CHECK(leaked > 0); /* the step alone does move masked weights: the test means something */
        CHECK(stayed);
        CHECK_NEAR(kd_model_weight_sparsity(m), 0.8, 0.5 / (double)total);
        free(x);
        kd_optimizer_free(&o);
    }

    /* ties: all weights equal, still exactly the target, chosen by position */
    for (size_t k = 0; k < m->n_params; k++) m->params[k] = 0.25f;
    kd_prune_mask_free(&mask);
    CHECK(kd_prune_mask_init(&mask, m, &err) == KD_STATUS_OK);
    CHECK(kd_prune_magnitude(m, &mask, 0.5f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_OK);
    const kd_layer *c1 = &m->layers[0];
    CHECK(zeros_in(m, c1) == 36 && m->params[c1->w_off] == 0.f && m->params[c1->w_off + 71] == 0.25f);
    /* lowering the target recomputes the mask to exactly the new count */
    CHECK(kd_prune_magnitude(m, &mask, 0.25f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_OK);
    size_t masked = 0;
    for (size_t k = 0; k < c1->w_size; k++) masked += !mask.keep[c1->w_off + k];
    CHECK(masked == 18 && !mask.keep[c1->w_off] && mask.keep[c1->w_off + 18]);
    CHECK(kd_prune_magnitude(m, &mask, 0.f, KD_PRUNE_GLOBAL, &err) == KD_STATUS_OK);
    CHECK(zeros_in(m, c1) == 36); /* unmasked weights stay at zero until trained */
    masked = 0;
    for (size_t k = 0; k < mask.n; k++) masked += !mask.keep[k];
    CHECK(masked == 0);

    /* errors */
    CHECK(kd_prune_magnitude(m, &mask, 1.f, KD_PRUNE_GLOBAL, &err) == KD_STATUS_BAD_ARG);
    CHECK(strstr(err.msg, "sparsity") && strstr(err.msg, "[0, 1)"));
    CHECK(kd_prune_magnitude(m, &mask, -0.1f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_BAD_ARG);
    CHECK(kd_prune_magnitude(m, &mask, NAN, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_BAD_ARG);
    CHECK(kd_prune_magnitude(m, &mask, 0.5f, (kd_prune_scope)7, &err) == KD_STATUS_BAD_ARG);
    m->params[3] = NAN;
    CHECK(kd_prune_magnitude(m, &mask, 0.5f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_BAD_ARG);
    CHECK(strstr(err.msg, "conv1") != NULL);
    kd_prune_mask bad = {mask.n - 1, mask.keep};
    CHECK(kd_prune_apply(m, &bad, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "mask"));
    CHECK(kd_prune_magnitude(m, &bad, 0.5f, KD_PRUNE_PER_LAYER, &err) == KD_STATUS_BAD_ARG);
    kd_prune_mask_free(&mask);
    free(orig);
    kd_model_free(m);
}

static void test_agp(void) {
    CHECK(kd_agp_sparsity(0.f, 0.9f, 0, 100, 1100) == 0.f);
    CHECK(kd_agp_sparsity(0.f, 0.9f, 100, 100, 1100) == 0.f);
    CHECK(kd_agp_sparsity(0.f, 0.9f, 1100, 100, 1100) == 0.9f);
    CHECK(kd_agp_sparsity(0.f, 0.9f, 5000, 100, 1100) == 0.9f);
    CHECK(kd_agp_sparsity(0.1f, 0.9f, 50, 100, 100) == 0.1f); /* before start */
    CHECK(kd_agp_sparsity(0.1f, 0.9f, 100, 100, 100) == 0.9f); /* empty ramp: final */
    /* s_f + (s_i - s_f)(1 - 1/2)^3 at the middle */
    CHECK_NEAR(kd_agp_sparsity(0.1f, 0.9f, 600, 100, 1100), 0.9 - 0.8 / 8, 1e-6);
    CHECK_NEAR(kd_agp_sparsity(0.f, 0.8f, 300, 100, 1100), 0.8 - 0.8 * 0.8 * 0.8 * 0.8, 1e-6);
    float prev = -1.f, prev_gap = INFINITY;
    int mono = 1, concave = 1;
    for (long long t = 0; t <= 1200; t += 10) {
        float s = kd_agp_sparsity(0.05f, 0.85f, t, 100, 1100);
        mono &= s >= prev && s >= 0.05f && s <= 0.85f;
        if (t > 100 && t <= 1100) {
            float gap = s - prev; /* prunes fast first, slower near the end */
            concave &= gap <= prev_gap + 1e-6f;
            prev_gap = gap;
        }
        prev = s;
    }
    CHECK(mono);
    CHECK(concave);
}

/* ---- structured channel pruning ---- */

/* The dense model with the removed channels zeroed: filters and biases of conv/linear outputs,
 * gamma and beta of batch norms; their outputs are then exactly 0 downstream. */
static void zero_removed(kd_model *d, const kd_prune_report *rep) {
    for (int i = 0; i < d->n_layers; i++) {
        const kd_layer *L = &d->layers[i];
        const kd_prune_layer_report *r = &rep->layers[i];
        if (!r->kept) continue;
        char *keep = calloc((size_t)L->c, 1);
        for (int k = 0; k < r->channels_after; k++) keep[r->kept[k]] = 1;
        size_t per = L->w_size / (size_t)L->c;
        for (int c = 0; c < L->c; c++) {
            if (keep[c]) continue;
            memset(d->params + L->w_off + (size_t)c * per, 0, per * sizeof(float));
            if (L->b_size) d->params[L->b_off + c] = 0.f;
        }
        free(keep);
    }
}

static void check_channels(kd_model *m, const kd_channel_prune_config *cfg, int expect_tied) {
    kd_error err;
    kd_model *p = NULL;
    kd_prune_report rep;
    perturb_bn_signed(m, 8);
    kd_status st = kd_prune_channels(m, cfg, &p, &rep, &err);
    CHECK_MSG(st == KD_STATUS_OK, "%s: %s", m->name, err.msg);
    if (st) return;
    kd_model *d = clone(m);
    zero_removed(d, &rep);
    float *a = eval_logits(d), *b = eval_logits(p), *dense = eval_logits(m);
    double diff = rel_diff(a, b, (size_t)B * m->n_classes);
    CHECK_MSG(diff <= 1e-5, "%s: pruned vs masked dense differ by %g", m->name, diff);
    /* and removing channels did change the function (the comparison is not vacuous) */
    CHECK(rel_diff(dense, b, (size_t)B * m->n_classes) > 1e-3);
    free(dense);
    free(a);
    free(b);
    /* sizes shrink as reported */
    CHECK(rep.params_before == m->n_params && rep.params_after == p->n_params);
    CHECK(p->n_params < m->n_params);
    CHECK(rep.macs_before == kd_model_macs(m) && rep.macs_after == kd_model_macs(p));
    CHECK(rep.macs_after < rep.macs_before);
    CHECK(rep.nonzero_after <= rep.params_after);
    size_t sum = 0;
    long long macs = 0;
    int tied = 0, pruned = 0;
    for (int i = 0; i < rep.n_layers; i++) {
        const kd_prune_layer_report *r = &rep.layers[i];
        sum += r->params_after;
        macs += r->macs_after;
        CHECK(!strcmp(r->name, p->layers[i].name));
        CHECK(r->params_after == p->layers[i].w_size + p->layers[i].b_size);
        tied += r->note && strstr(r->note, "residual") != NULL;
        if (r->kept && (r->type == KD_LAYER_CONV2D || r->type == KD_LAYER_LINEAR)) {
            pruned++;
            float ratio = cfg->layer_keep ? cfg->layer_keep[i] : cfg->keep_ratio;
            int want = (int)floor(ratio * r->channels_before + 0.5);
            /* depthwise convs follow their producer's ratio */
            if (!(m->layers[i].groups > 1))
                CHECK_MSG(r->channels_after == want, "%s: %d channels, want %d", r->name, r->channels_after, want);
            for (int k = 1; k < r->channels_after; k++) CHECK(r->kept[k] > r->kept[k - 1]);
        }
    }
    CHECK(sum == p->n_params && macs == kd_model_macs(p));
    CHECK(pruned > 0);
    CHECK(expect_tied ? tied > 0 : tied == 0);
    printf("prune %-12s params %zu -> %zu, MACs %lld -> %lld, max relative difference %.2e\n", m->name,
           rep.params_before, rep.params_after, rep.macs_before, rep.macs_after, diff);
    /* the pruned model's YAML stands on its own */
    kd_model *r = NULL;
    CHECK_MSG(kd_model_from_yaml(&r, p->yaml, "pruned", 0, &err) == KD_STATUS_OK, "%s", err.msg);
    if (r) CHECK(r->n_params == p->n_params);
    kd_model_free(r);
    kd_prune_report_free(&rep);
    kd_model_free(d);
    kd_model_free(p);
}

/* check_channels, then kd_prune_channels (which must succeed); the pruned model or NULL. */
static kd_model *prune_checked(kd_model *m, const kd_channel_prune_config *cfg, int expect_tied, kd_prune_report *rep) {
    check_channels(m, cfg, expect_tied);
    kd_model *p = NULL;
    kd_error err;
    CHECK(kd_prune_channels(m, cfg, &p, rep, &err) == KD_STATUS_OK);
    return p;
}

static void test_channels(void) {
    kd_error err;
    kd_model *m = NULL;
    kd_channel_prune_config cfg = {0.5f, NULL, KD_CHANNEL_L1};

    /* cnn-s: conv -> pool -> conv -> pool -> flatten -> fc: the fc loses 49 features per channel */
    CHECK(kd_model_create(&m, "cnn-s", 1, &err) == KD_STATUS_OK);
    check_channels(m, &cfg, 0);
    kd_model *p = NULL;
    kd_prune_report rep;
    CHECK(kd_prune_channels(m, &cfg, &p, &rep, &err) == KD_STATUS_OK);
    if (p) {
        CHECK(p->layers[0].out == 4 && p->layers[3].out == 8 && p->layers[3].in_c == 4);
        CHECK(p->layers[7].in_c == 8 * 49 && p->layers[7].out == 10);
        CHECK(p->n_params == (4 * 9 + 4) + (8 * 4 * 9 + 8) + (392 * 10 + 10));
        CHECK(rep.layers[7].note && strstr(rep.layers[7].note, "output"));
        /* L1: the kept filters of conv1 are the 4 with the largest L1 norms */
        float l1[8];
        for (int o = 0; o < 8; o++) {
            l1[o] = 0;
            for (int k = 0; k < 9; k++) l1[o] += fabsf(m->params[m->layers[0].w_off + o * 9 + k]);
        }
        float min_kept = INFINITY, max_gone = 0;
        char keep[8] = {0};
        for (int k = 0; k < 4; k++) keep[rep.layers[0].kept[k]] = 1;
        for (int o = 0; o < 8; o++) {
            if (keep[o]) min_kept = fminf(min_kept, l1[o]);
            else max_gone = fmaxf(max_gone, l1[o]);
        }
        CHECK(min_kept >= max_gone);
        kd_prune_report_free(&rep);
    }
    kd_model_free(p);
    /* keep ratio 1: the same model */
    kd_channel_prune_config all = {1.f, NULL, KD_CHANNEL_L1};
    CHECK(kd_prune_channels(m, &all, &p, NULL, &err) == KD_STATUS_OK);
    if (p) CHECK(p->n_params == m->n_params && !memcmp(p->params, m->params, m->n_params * sizeof(float)));
    kd_model_free(p);
    kd_model_free(m);

    /* cnn-t with batch norm, per-layer ratios, BN-gamma criterion; fc1 (hidden linear) too */
    CHECK(kd_model_create(&m, "cnn-t", 1, &err) == KD_STATUS_OK);
    float *ratios = malloc((size_t)m->n_layers * sizeof *ratios);
    for (int i = 0; i < m->n_layers; i++) ratios[i] = 0.f; /* ignored for non-weighted layers */
    ratios[kd_model_find_layer(m, "conv1")] = 0.75f;
    ratios[kd_model_find_layer(m, "conv2")] = 0.5f;
    ratios[kd_model_find_layer(m, "conv3")] = 0.25f;
    ratios[kd_model_find_layer(m, "fc1")] = 0.5f;
    ratios[kd_model_find_layer(m, "fc2")] = 0.5f; /* the output layer is never pruned */
    kd_channel_prune_config cbn = {1.f, ratios, KD_CHANNEL_BN_GAMMA};
    p = prune_checked(m, &cbn, 0, &rep);
    if (p) {
        int bn3 = kd_model_find_layer(m, "bn3"), fc1 = kd_model_find_layer(m, "fc1");
        CHECK(p->layers[bn3].c == 32 && p->layers[fc1].in_c == 32 * 49 && p->layers[fc1].out == 128);
        CHECK(p->n_classes == 10);
        /* BN gamma criterion: kept channels of bn3 have the largest |gamma| */
        float min_kept = INFINITY, max_gone = 0;
        char keep[128] = {0};
        for (int k = 0; k < 32; k++) keep[rep.layers[bn3].kept[k]] = 1;
        for (int c = 0; c < 128; c++) {
            float g = fabsf(m->params[m->layers[bn3].w_off + c]);
            if (keep[c]) min_kept = fminf(min_kept, g);
            else max_gone = fmaxf(max_gone, g);
        }
        CHECK(min_kept >= max_gone);
        /* the conv feeding bn3 kept the same channels */
        CHECK(!memcmp(rep.layers[bn3].kept, rep.layers[bn3 - 1].kept, 32 * sizeof(int)));
        kd_prune_report_free(&rep);
    }
    kd_model_free(p);
    free(ratios);
    kd_model_free(m);

    /* mobilenet-s: depthwise convs follow their producer; pw2 and pw3 meet in a residual add */
    CHECK(kd_model_create(&m, "mobilenet-s", 3, &err) == KD_STATUS_OK);
    p = prune_checked(m, &cfg, 1, &rep);
    if (p) {
        int pw2 = kd_model_find_layer(m, "pw2"), pw3 = kd_model_find_layer(m, "pw3");
        int dw3 = kd_model_find_layer(m, "dw3"), dw1 = kd_model_find_layer(m, "dw1");
        CHECK(p->layers[pw2].out == 32 && p->layers[pw3].out == 32 && p->layers[pw3].in_c == 32);
        CHECK(p->layers[dw3].out == 32 && p->layers[dw3].groups == 32);
        CHECK(p->layers[dw1].out == 8 && p->layers[dw1].groups == 8);
        CHECK(!memcmp(rep.layers[pw2].kept, rep.layers[pw3].kept, 32 * sizeof(int)));
        CHECK(!memcmp(rep.layers[pw2].kept, rep.layers[dw3].kept, 32 * sizeof(int)));
        CHECK(p->layers[p->n_layers - 1].in_c == 32);
        kd_prune_report_free(&rep);
    }
    kd_model_free(p);
    kd_model_free(m);

    /* a small residual model with a grouped conv (not prunable) and a hidden linear with BN */
    const char *yaml =
        "name: res-prune\n"
        "input: [3, 10, 10]\n"
        "layers:\n"
        "  - {name: c1, type: conv2d, out: 8, kernel: 3, pad: 1}\n"
        "  - {name: r1, type: relu}\n"
        "  - {name: c2, type: conv2d, out: 8, kernel: 3, pad: 1, bias: false}\n"
        "  - {name: b2, type: batchnorm}\n"
        "  - {name: sum, type: add, inputs: [b2, r1]}\n"
        "  - {name: pool, type: avgpool, kernel: 2}\n"
        "  - {name: c3, type: conv2d, out: 8, kernel: 3, pad: 1}\n"
        "  - {name: gc, type: conv2d, out: 4, kernel: 1, groups: 2}\n"
        "  - {name: a3, type: gelu}\n"
        "  - {name: flat, type: flatten}\n"
        "  - {name: fc1, type: linear, out: 16}\n"
        "  - {name: bn1, type: batchnorm}\n"
        "  - {name: r2, type: relu}\n"
        "  - {name: fc2, type: linear, out: 4}\n";
    CHECK_MSG(kd_model_from_yaml(&m, yaml, "res.yaml", 6, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    p = prune_checked(m, &cfg, 1, &rep);
    if (p) {
        CHECK(p->layers[0].out == 4 && p->layers[2].out == 4 && p->layers[2].in_c == 4);
        CHECK(p->layers[6].out == 8 && p->layers[6].in_c == 4); /* c3 feeds a grouped conv: kept */
        CHECK(rep.layers[6].note && strstr(rep.layers[6].note, "grouped"));
        CHECK(rep.layers[7].note && strstr(rep.layers[7].note, "grouped"));
        CHECK(p->layers[10].out == 8 && p->layers[11].c == 8 && p->layers[13].in_c == 8);
        kd_prune_report_free(&rep);
    }
    kd_model_free(p);

    kd_model_free(m);

    /* a channel across an explicit flatten (H*W features, also through a BatchNorm1d on them) and
     * into a linear's implicit flatten; two linears tied by an add */
    const char *flat =
        "name: flat-prune\n"
        "input: [2, 6, 6]\n"
        "layers:\n"
        "  - {name: c1, type: conv2d, out: 6, kernel: 3}\n"
        "  - {name: r1, type: relu}\n"
        "  - {name: flat, type: flatten}\n"
        "  - {name: fbn, type: batchnorm}\n"
        "  - {name: fcA, type: linear, out: 12}\n"
        "  - {name: c2, type: conv2d, out: 6, kernel: 3, inputs: [input]}\n"
        "  - {name: r2, type: relu}\n"
        "  - {name: fcB, type: linear, out: 12}\n"
        "  - {name: sum, type: add, inputs: [fcA, fcB]}\n"
        "  - {name: fc, type: linear, out: 3}\n";
    CHECK_MSG(kd_model_from_yaml(&m, flat, "flat.yaml", 6, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) return;
    p = prune_checked(m, &cfg, 1, &rep);
    if (p) {
        CHECK(p->layers[0].out == 3 && p->layers[3].c == 48 && p->layers[4].in_c == 48 && p->layers[4].out == 6);
        CHECK(p->layers[5].out == 3 && p->layers[7].in_c == 48 && p->layers[7].out == 6 && p->layers[9].in_c == 6);
        /* the BN1d keeps the 16 features of each kept channel */
        CHECK(rep.layers[3].channels_after == 48 && rep.layers[3].kept[0] % 16 == 0 &&
              rep.layers[3].kept[15] == rep.layers[3].kept[0] + 15);
        kd_prune_report_free(&rep);
    }
    kd_model_free(p);

    /* errors: keep ratio 0 or above 1, per-layer 0, NULLs; *out stays NULL */
    kd_channel_prune_config bad = {0.f, NULL, KD_CHANNEL_L1};
    kd_model dummy;
    p = &dummy; /* must be reset to NULL */
    CHECK(kd_prune_channels(m, &bad, &p, &rep, &err) == KD_STATUS_BAD_ARG && p == NULL);
    CHECK(strstr(err.msg, "keep ratio") != NULL);
    bad.keep_ratio = 1.5f;
    CHECK(kd_prune_channels(m, &bad, &p, NULL, &err) == KD_STATUS_BAD_ARG);
    bad.keep_ratio = NAN;
    CHECK(kd_prune_channels(m, &bad, &p, NULL, &err) == KD_STATUS_BAD_ARG);
    float lr[14];
    for (int i = 0; i < 14; i++) lr[i] = 0.5f;
    lr[4] = 0.f; /* fcA */
    kd_channel_prune_config badl = {0.5f, lr, KD_CHANNEL_L1};
    CHECK(kd_prune_channels(m, &badl, &p, NULL, &err) == KD_STATUS_BAD_ARG && strstr(err.msg, "fcA"));
    kd_channel_prune_config badc = {0.5f, NULL, (kd_channel_criterion)9};
    CHECK(kd_prune_channels(m, &badc, &p, NULL, &err) == KD_STATUS_BAD_ARG);
    CHECK(kd_prune_channels(m, NULL, &p, NULL, &err) == KD_STATUS_BAD_ARG);
    kd_model_free(m);
}

int main(void) {
    test_fold();
    test_magnitude();
    test_agp();
    test_channels();
    TEST_DONE();
}
