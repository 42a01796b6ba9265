/* Golden test of the fp32 training ops (include/distill/ops.h) against PyTorch: forward outputs,
 * gradients of every input and parameter, and batch-norm running statistics, from the fixtures
 * that tests/golden/gen_ops.py writes to tests/golden/ops/<case>.kdgf (format documented there).
 *
 * Tolerance: |got - want| <= 1e-5 + 1e-5 * |want| per element (the fixtures hold the correctly
 * rounded float64 answer, so this only has to absorb the C code's float32 rounding).
 * Beyond matching the numbers, each case checks the contract of ops.h: forward overwrites its
 * outputs (they are poisoned with NaN first), backward accumulates (a second call must give twice
 * the gradient) and skips NULL gradient pointers. A missing or malformed fixture is a failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/ops.h"
#include "golden/kdgf.h"
#include "test.h"

#define OP_THREADS 2 /* the ops' parallel paths run (ctest sets OMP_NUM_THREADS=2 too) */

#ifndef KD_SOURCE_DIR
#define KD_SOURCE_DIR "."
#endif

#define TOL_ABS 1e-5
#define TOL_REL 1e-5

/* ------------------------------------------------------------------ fixtures */
/* Loads tests/golden/ops/<case_name>.kdgf; returns 1 on success; on failure records a CHECK failure
 * naming the problem (missing or malformed). */
static int fx_load(fx_file *f, const char *case_name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/ops/%s.kdgf", KD_SOURCE_DIR, case_name);
    const int rc = kdgf_load(f, path, case_name);
    CHECK_MSG(rc != KDGF_MISSING, "missing fixture %s (run tests/golden/gen_ops.py)", path);
    if (rc == KDGF_MISSING) return 0;
    CHECK_MSG(rc == KDGF_OK, "malformed fixture %s", path);
    return rc == KDGF_OK;
}

/* Array `name` with exactly `n` elements, or NULL (and a recorded failure). */
static const float *fx_get(const fx_file *f, const char *name, size_t n) {
    const fx_array *a = fx_find(f, name);
    CHECK_MSG(a != NULL, "%s: fixture has no array '%s'", f->case_name, name);
    if (!a) return NULL;
    CHECK_MSG(a->n == n, "%s: '%s' has %zu elements, expected %zu", f->case_name, name, a->n, n);
    return a->n == n ? a->data : NULL;
}

/* Integer scalar `name`, or -1 (and a recorded failure). */
static int fx_int(const fx_file *f, const char *name) {
    const float *v = fx_get(f, name, 1);
    return v ? (int)v[0] : -1;
}

static float fx_float(const fx_file *f, const char *name) {
    const float *v = fx_get(f, name, 1);
    return v ? v[0] : NAN;
}

/* ------------------------------------------------------------------ comparison helpers */
/* Largest |got - want| / tolerance seen in the current case (printed per case: the margin). */
static double case_worst_ratio;

/* One CHECK per array: got == factor * want within tolerance; reports the worst element. */
static void compare(const char *cs, const char *what, const float *got, const float *want, size_t n,
                    float factor) {
    size_t bad = 0, worst = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double w = (double)factor * want[i], err = fabs((double)got[i] - w);
        double tol = TOL_ABS + TOL_REL * fabs(w), excess = err - tol;
        if (!(err / tol <= case_worst_ratio)) case_worst_ratio = err / tol; /* NaN sticks */
        if (!(excess <= 0.0)) bad++; /* NaN counts as bad */
        if (!(excess <= worst_excess)) {
            worst_excess = excess;
            worst = i;
        }
    }
    CHECK_MSG(bad == 0, "%s: %s: %zu of %zu elements off, worst [%zu] got %.7g want %.7g", cs, what,
              bad, n, worst, (double)got[worst], (double)factor * want[worst]);
}

/* compare() of a result computed with `threads` threads: "what [threads N]" names it. */
static void compare_at(const char *cs, const char *what, int threads, const float *got, const float *want, size_t n,
                       float factor) {
    char label[96];
    snprintf(label, sizeof label, "%s [threads %d]", what, threads);
    compare(cs, label, got, want, n, factor);
}

static float *poisoned(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

#define ALL3(a, b, c) ((a) && (b) && (c))

/* ------------------------------------------------------------------ cases */
static void case_linear(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), in_f = fx_int(f, "in_f"), out_f = fx_int(f, "out_f");
    int has_bias = fx_int(f, "has_bias");
    if (B <= 0 || in_f <= 0 || out_f <= 0 || has_bias < 0) return;
    size_t nin = (size_t)B * in_f, nw = (size_t)out_f * in_f, nout = (size_t)B * out_f;
    const float *in = fx_get(f, "in", nin), *w = fx_get(f, "weight", nw), *dout = fx_get(f, "dout", nout);
    const float *out_ref = fx_get(f, "out", nout), *din_ref = fx_get(f, "din", nin);
    const float *dw_ref = fx_get(f, "dweight", nw);
    const float *bias = has_bias ? fx_get(f, "bias", out_f) : NULL;
    const float *db_ref = has_bias ? fx_get(f, "dbias", out_f) : NULL;
    if (!ALL3(in, w, dout) || !ALL3(out_ref, din_ref, dw_ref) || (has_bias && !(bias && db_ref))) return;

    float *out = poisoned(nout), *din = zeros(nin), *dw = zeros(nw), *db = zeros(out_f);
    kd_linear_forward(out, in, w, bias, B, in_f, out_f);
    compare(cs, "out", out, out_ref, nout, 1);
    kd_linear_backward(din, dw, has_bias ? db : NULL, dout, in, w, B, in_f, out_f);
    compare(cs, "din", din, din_ref, nin, 1);
    compare(cs, "dweight", dw, dw_ref, nw, 1);
    if (has_bias) compare(cs, "dbias", db, db_ref, out_f, 1);
    kd_linear_backward(din, dw, has_bias ? db : NULL, dout, in, w, B, in_f, out_f);
    compare(cs, "din (accumulated twice)", din, din_ref, nin, 2);
    compare(cs, "dweight (accumulated twice)", dw, dw_ref, nw, 2);
    if (has_bias) compare(cs, "dbias (accumulated twice)", db, db_ref, out_f, 2);
    /* NULL gradients are skipped: parameters only (first layer), then input only (frozen layer) */
    memset(din, 0, nin * sizeof *din);
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, out_f * sizeof *db);
    kd_linear_backward(NULL, dw, has_bias ? db : NULL, dout, in, w, B, in_f, out_f);
    compare(cs, "dweight (din NULL)", dw, dw_ref, nw, 1);
    if (has_bias) compare(cs, "dbias (din NULL)", db, db_ref, out_f, 1);
    kd_linear_backward(din, NULL, NULL, dout, in, w, B, in_f, out_f);
    compare(cs, "din (dweight, dbias NULL)", din, din_ref, nin, 1);
    free(out), free(din), free(dw), free(db);
}

static void case_conv(const fx_file *f) {
    const char *cs = f->case_name;
    kd_conv_shape s = {0};
    s.B = fx_int(f, "B"), s.Cin = fx_int(f, "Cin"), s.H = fx_int(f, "H"), s.W = fx_int(f, "W");
    s.Cout = fx_int(f, "Cout"), s.K = fx_int(f, "K"), s.stride = fx_int(f, "stride");
    s.pad = fx_int(f, "pad"), s.groups = fx_int(f, "groups");
    int has_bias = fx_int(f, "has_bias");
    const fx_array *out_a = fx_find(f, "out");
    CHECK_MSG(out_a && out_a->ndim == 4, "%s: no 4-d 'out'", cs);
    if (!out_a || out_a->ndim != 4 || s.B <= 0 || s.Cin <= 0 || s.Cout <= 0 || s.K <= 0 || s.stride <= 0 ||
        s.pad < 0 || s.groups <= 0 || has_bias < 0)
        return;
    s.Ho = kd_conv2d_out_size(s.H, s.K, s.stride, s.pad);
    s.Wo = kd_conv2d_out_size(s.W, s.K, s.stride, s.pad);
    CHECK_MSG(s.Ho == out_a->dims[2] && s.Wo == out_a->dims[3], "%s: kd_conv2d_out_size %dx%d, PyTorch %dx%d",
              cs, s.Ho, s.Wo, out_a->dims[2], out_a->dims[3]);
    if (s.Ho != out_a->dims[2] || s.Wo != out_a->dims[3]) return;
    size_t nin = (size_t)s.B * s.Cin * s.H * s.W, nout = (size_t)s.B * s.Cout * s.Ho * s.Wo;
    size_t nw = (size_t)s.Cout * (s.Cin / s.groups) * s.K * s.K;
    const float *in = fx_get(f, "in", nin), *w = fx_get(f, "weight", nw), *dout = fx_get(f, "dout", nout);
    const float *out_ref = fx_get(f, "out", nout), *din_ref = fx_get(f, "din", nin);
    const float *dw_ref = fx_get(f, "dweight", nw);
    const float *bias = has_bias ? fx_get(f, "bias", s.Cout) : NULL;
    const float *db_ref = has_bias ? fx_get(f, "dbias", s.Cout) : NULL;
    if (!ALL3(in, w, dout) || !ALL3(out_ref, din_ref, dw_ref) || (has_bias && !(bias && db_ref))) return;

    /* The same numbers whatever the thread count (3 > B exercises idle threads). */
    const int thread_counts[2] = {1, 3};
    for (int t = 0; t < 2; t++) {
        s.threads = thread_counts[t];
        float *scratch = zeros(kd_conv2d_scratch_floats(&s));
        float *out = poisoned(nout), *din = zeros(nin), *dw = zeros(nw), *db = zeros(s.Cout);
        kd_conv2d_forward(out, in, w, bias, &s, scratch);
        compare_at(cs, "out", s.threads, out, out_ref, nout, 1);
        kd_conv2d_backward(din, dw, has_bias ? db : NULL, dout, in, w, &s, scratch);
        compare_at(cs, "din", s.threads, din, din_ref, nin, 1);
        compare_at(cs, "dweight", s.threads, dw, dw_ref, nw, 1);
        if (has_bias) {
            compare_at(cs, "dbias", s.threads, db, db_ref, s.Cout, 1);
        }
        kd_conv2d_backward(din, dw, has_bias ? db : NULL, dout, in, w, &s, scratch);
        compare_at(cs, "din accumulated twice", s.threads, din, din_ref, nin, 2);
        compare_at(cs, "dweight accumulated twice", s.threads, dw, dw_ref, nw, 2);
        if (has_bias) {
            compare_at(cs, "dbias accumulated twice", s.threads, db, db_ref, s.Cout, 2);
        }
        memset(din, 0, nin * sizeof *din);
        memset(dw, 0, nw * sizeof *dw);
        memset(db, 0, s.Cout * sizeof *db);
        kd_conv2d_backward(NULL, dw, has_bias ? db : NULL, dout, in, w, &s, scratch);
        compare_at(cs, "dweight, din NULL", s.threads, dw, dw_ref, nw, 1);
        if (has_bias) {
            compare_at(cs, "dbias, din NULL", s.threads, db, db_ref, s.Cout, 1);
        }
        kd_conv2d_backward(din, NULL, NULL, dout, in, w, &s, scratch);
        compare_at(cs, "din, dweight/dbias NULL", s.threads, din, din_ref, nin, 1);
        free(scratch), free(out), free(din), free(dw), free(db);
    }

    /* ops.h: with a fixed thread count, results are bit-identical run to run. */
    s.threads = 3;
    float *scratch = zeros(kd_conv2d_scratch_floats(&s));
    float *g1 = zeros(nin + nw + s.Cout), *g2 = zeros(nin + nw + s.Cout);
    float *o1 = poisoned(nout), *o2 = poisoned(nout);
    kd_conv2d_forward(o1, in, w, bias, &s, scratch);
    kd_conv2d_backward(g1, g1 + nin, has_bias ? g1 + nin + nw : NULL, dout, in, w, &s, scratch);
    kd_conv2d_forward(o2, in, w, bias, &s, scratch);
    kd_conv2d_backward(g2, g2 + nin, has_bias ? g2 + nin + nw : NULL, dout, in, w, &s, scratch);
    CHECK_MSG(memcmp(o1, o2, nout * sizeof *o1) == 0, "%s: forward not bit-identical run to run", cs);
    CHECK_MSG(memcmp(g1, g2, (nin + nw + s.Cout) * sizeof *g1) == 0, "%s: backward not bit-identical run to run", cs);
    free(scratch), free(g1), free(g2), free(o1), free(o2);
}

/* Max (average = 0) or average pooling: forward, backward, backward accumulating twice. */
static void case_pool(const fx_file *f, int average) {
    const char *cs = f->case_name;
    const int B = fx_int(f, "B"), C = fx_int(f, "C"), H = fx_int(f, "H"), W = fx_int(f, "W");
    const int k = fx_int(f, "k"), st = fx_int(f, "stride");
    if (B <= 0 || C <= 0 || H < k || W < k || k <= 0 || st <= 0) return;
    int Ho = (H - k) / st + 1, Wo = (W - k) / st + 1;
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * Ho * Wo;
    const float *in = fx_get(f, "in", nin), *dout = fx_get(f, "dout", nout);
    const float *out_ref = fx_get(f, "out", nout), *din_ref = fx_get(f, "din", nin);
    if (!ALL3(in, dout, out_ref) || !din_ref) return;
    float *out = poisoned(nout), *din = zeros(nin);
    int32_t *argmax = average ? NULL : malloc(nout * sizeof *argmax);
    kd_pool_shape s = {B, C, H, W, k, st, 0, Ho, Wo, 1, OP_THREADS};
    if (average) kd_avgpool_forward(out, in, &s);
    else kd_maxpool_forward(out, argmax, in, &s);
    compare(cs, "out", out, out_ref, nout, 1);
    for (int times = 1; times <= 2; times++) {
        if (average) kd_avgpool_backward(din, dout, &s);
        else kd_maxpool_backward(din, dout, argmax, &s);
        compare(cs, times == 1 ? "din" : "din (accumulated twice)", din, din_ref, nin, times);
    }
    free(out), free(din), free(argmax);
}

static void case_maxpool(const fx_file *f) { case_pool(f, 0); }
static void case_avgpool(const fx_file *f) { case_pool(f, 1); }

static void case_gap(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), C = fx_int(f, "C"), HW = fx_int(f, "HW");
    if (B <= 0 || C <= 0 || HW <= 0) return;
    size_t nin = (size_t)B * C * HW, nout = (size_t)B * C;
    const float *in = fx_get(f, "in", nin), *dout = fx_get(f, "dout", nout);
    const float *out_ref = fx_get(f, "out", nout), *din_ref = fx_get(f, "din", nin);
    if (!ALL3(in, dout, out_ref) || !din_ref) return;
    float *out = poisoned(nout), *din = zeros(nin);
    kd_gap_forward(out, in, B, C, HW);
    compare(cs, "out", out, out_ref, nout, 1);
    kd_gap_backward(din, dout, B, C, HW);
    compare(cs, "din", din, din_ref, nin, 1);
    kd_gap_backward(din, dout, B, C, HW);
    compare(cs, "din (accumulated twice)", din, din_ref, nin, 2);
    free(out), free(din);
}

static void case_bn_train(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), C = fx_int(f, "C"), HW = fx_int(f, "HW");
    float eps = fx_float(f, "eps"), momentum = fx_float(f, "momentum");
    if (B <= 0 || C <= 0 || HW <= 0 || isnan(eps) || isnan(momentum)) return;
    size_t n = (size_t)B * C * HW;
    const float *in = fx_get(f, "in", n), *gamma = fx_get(f, "gamma", C), *beta = fx_get(f, "beta", C);
    const float *rm0 = fx_get(f, "running_mean", C), *rv0 = fx_get(f, "running_var", C);
    const float *dout = fx_get(f, "dout", n), *out_ref = fx_get(f, "out", n);
    const float *sm_ref = fx_get(f, "save_mean", C), *si_ref = fx_get(f, "save_invstd", C);
    const float *rm_ref = fx_get(f, "running_mean_new", C), *rv_ref = fx_get(f, "running_var_new", C);
    const float *din_ref = fx_get(f, "din", n), *dg_ref = fx_get(f, "dgamma", C), *db_ref = fx_get(f, "dbeta", C);
    if (!ALL3(in, gamma, beta) || !ALL3(rm0, rv0, dout) || !ALL3(out_ref, sm_ref, si_ref) ||
        !ALL3(rm_ref, rv_ref, din_ref) || !dg_ref || !db_ref)
        return;
    float *out = poisoned(n), *smean = poisoned(C), *sinv = poisoned(C);
    float *rm = malloc(C * sizeof *rm), *rv = malloc(C * sizeof *rv);
    memcpy(rm, rm0, C * sizeof *rm);
    memcpy(rv, rv0, C * sizeof *rv);
    kd_batchnorm_forward_train(out, smean, sinv, rm, rv, in, gamma, beta, B, C, HW, eps, momentum, OP_THREADS);
    compare(cs, "out", out, out_ref, n, 1);
    compare(cs, "save_mean", smean, sm_ref, C, 1);
    compare(cs, "save_invstd", sinv, si_ref, C, 1);
    compare(cs, "running_mean after update", rm, rm_ref, C, 1);
    compare(cs, "running_var after update (unbiased)", rv, rv_ref, C, 1);

    /* Backward from PyTorch's saved statistics, so a forward bug is not reported twice; the C
     * forward's own statistics were just compared against the same values. */
    float *din = zeros(n), *dg = zeros(C), *db = zeros(C);
    kd_batchnorm_backward(din, dg, db, dout, in, gamma, sm_ref, si_ref, B, C, HW, OP_THREADS);
    compare(cs, "din", din, din_ref, n, 1);
    compare(cs, "dgamma", dg, dg_ref, C, 1);
    compare(cs, "dbeta", db, db_ref, C, 1);
    kd_batchnorm_backward(din, dg, db, dout, in, gamma, sm_ref, si_ref, B, C, HW, OP_THREADS);
    compare(cs, "din (accumulated twice)", din, din_ref, n, 2);
    compare(cs, "dgamma (accumulated twice)", dg, dg_ref, C, 2);
    compare(cs, "dbeta (accumulated twice)", db, db_ref, C, 2);
    memset(din, 0, n * sizeof *din);
    memset(dg, 0, C * sizeof *dg);
    memset(db, 0, C * sizeof *db);
    kd_batchnorm_backward(NULL, dg, db, dout, in, gamma, sm_ref, si_ref, B, C, HW, OP_THREADS);
    compare(cs, "dgamma (din NULL)", dg, dg_ref, C, 1);
    compare(cs, "dbeta (din NULL)", db, db_ref, C, 1);
    kd_batchnorm_backward(din, NULL, NULL, dout, in, gamma, sm_ref, si_ref, B, C, HW, OP_THREADS);
    compare(cs, "din (dgamma, dbeta NULL)", din, din_ref, n, 1);
    free(out), free(smean), free(sinv), free(rm), free(rv), free(din), free(dg), free(db);
}

static void case_bn_eval(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), C = fx_int(f, "C"), HW = fx_int(f, "HW");
    float eps = fx_float(f, "eps");
    if (B <= 0 || C <= 0 || HW <= 0 || isnan(eps)) return;
    size_t n = (size_t)B * C * HW;
    const float *in = fx_get(f, "in", n), *gamma = fx_get(f, "gamma", C), *beta = fx_get(f, "beta", C);
    const float *rm = fx_get(f, "running_mean", C), *rv = fx_get(f, "running_var", C);
    const float *out_ref = fx_get(f, "out", n);
    if (!ALL3(in, gamma, beta) || !ALL3(rm, rv, out_ref)) return;
    float *out = poisoned(n);
    kd_batchnorm_forward_eval(out, in, gamma, beta, rm, rv, B, C, HW, eps, OP_THREADS);
    compare(cs, "out", out, out_ref, n, 1);
    free(out);
}

/* The element-wise ops go multi-threaded above some size, so each element-wise case also runs
 * on the fixture tiled LARGE_REPEAT times (same golden values, repeated). */
#define LARGE_MIN 100000

static size_t large_repeat(size_t n) { return (LARGE_MIN + n - 1) / n; }

/* `n * reps` floats: src repeated. */
static float *tiled(const float *src, size_t n, size_t reps) {
    float *t = malloc(n * reps * sizeof *t);
    for (size_t r = 0; r < reps; r++) memcpy(t + r * n, src, n * sizeof *t);
    return t;
}

static const char *tag(char *buf, size_t cap, const char *what, size_t n) {
    snprintf(buf, cap, "%s [n=%zu]", what, n);
    return buf;
}

/* relu (backward from out) or gelu (backward from in). */
static void run_unary(const char *cs, int is_relu, size_t n, const float *in, const float *dout,
                      const float *out_ref, const float *din_ref) {
    char t[96];
    float *out = poisoned(n), *din = zeros(n);
    for (int rep = 1; rep <= 2; rep++) {
        if (is_relu) {
            if (rep == 1) kd_relu_forward(out, in, n, OP_THREADS);
            kd_relu_backward(din, dout, out, n, OP_THREADS);
        } else {
            if (rep == 1) kd_gelu_forward(out, in, n, OP_THREADS);
            kd_gelu_backward(din, dout, in, n, OP_THREADS);
        }
        if (rep == 1) compare(cs, tag(t, sizeof t, "out", n), out, out_ref, n, 1);
        compare(cs, tag(t, sizeof t, rep == 1 ? "din" : "din (accumulated twice)", n), din, din_ref, n,
                (float)rep);
    }
    free(out), free(din);
}

static void case_unary(const fx_file *f) {
    const char *cs = f->case_name;
    int n = fx_int(f, "n");
    if (n <= 0) return;
    const float *in = fx_get(f, "in", n), *dout = fx_get(f, "dout", n);
    const float *out_ref = fx_get(f, "out", n), *din_ref = fx_get(f, "din", n);
    if (!ALL3(in, dout, out_ref) || !din_ref) return;
    int is_relu = strcmp(cs, "relu") == 0;
    run_unary(cs, is_relu, n, in, dout, out_ref, din_ref);
    size_t r = large_repeat(n);
    float *a = tiled(in, n, r), *b = tiled(dout, n, r), *c = tiled(out_ref, n, r), *d = tiled(din_ref, n, r);
    run_unary(cs, is_relu, n * r, a, b, c, d);
    free(a), free(b), free(c), free(d);
}

static void run_dropout(const char *cs, size_t n, const float *in, const float *mask, const float *dout,
                        const float *out_ref, const float *din_ref) {
    char t[96];
    float *out = poisoned(n), *din = zeros(n);
    kd_dropout_forward(out, in, mask, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "out", n), out, out_ref, n, 1);
    kd_dropout_backward(din, dout, mask, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "din", n), din, din_ref, n, 1);
    kd_dropout_backward(din, dout, mask, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "din (accumulated twice)", n), din, din_ref, n, 2);
    free(out), free(din);
}

static void case_dropout(const fx_file *f) {
    const char *cs = f->case_name;
    int n = fx_int(f, "n");
    if (n <= 0) return;
    const float *in = fx_get(f, "in", n), *mask = fx_get(f, "mask", n), *dout = fx_get(f, "dout", n);
    const float *out_ref = fx_get(f, "out", n), *din_ref = fx_get(f, "din", n);
    if (!ALL3(in, mask, dout) || !out_ref || !din_ref) return;
    run_dropout(cs, n, in, mask, dout, out_ref, din_ref);
    size_t r = large_repeat(n);
    float *a = tiled(in, n, r), *m = tiled(mask, n, r), *b = tiled(dout, n, r);
    float *c = tiled(out_ref, n, r), *d = tiled(din_ref, n, r);
    run_dropout(cs, n * r, a, m, b, c, d);
    free(a), free(m), free(b), free(c), free(d);
}

static void run_add(const char *cs, size_t n, const float *a, const float *b, const float *dout,
                    const float *out_ref, const float *da_ref, const float *db_ref) {
    char t[96];
    float *out = poisoned(n), *da = zeros(n), *db = zeros(n);
    kd_add_forward(out, a, b, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "out", n), out, out_ref, n, 1);
    kd_add_backward(da, db, dout, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "da", n), da, da_ref, n, 1);
    compare(cs, tag(t, sizeof t, "db", n), db, db_ref, n, 1);
    kd_add_backward(da, db, dout, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "da (accumulated twice)", n), da, da_ref, n, 2);
    compare(cs, tag(t, sizeof t, "db (accumulated twice)", n), db, db_ref, n, 2);
    memset(da, 0, n * sizeof *da);
    kd_add_backward(da, NULL, dout, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "da (db NULL)", n), da, da_ref, n, 1);
    memset(db, 0, n * sizeof *db);
    kd_add_backward(NULL, db, dout, n, OP_THREADS);
    compare(cs, tag(t, sizeof t, "db (da NULL)", n), db, db_ref, n, 1);
    free(out), free(da), free(db);
}

static void case_add(const fx_file *f) {
    const char *cs = f->case_name;
    int n = fx_int(f, "n");
    if (n <= 0) return;
    const float *a = fx_get(f, "a", n), *b = fx_get(f, "b", n), *dout = fx_get(f, "dout", n);
    const float *out_ref = fx_get(f, "out", n), *da_ref = fx_get(f, "da", n), *db_ref = fx_get(f, "db", n);
    if (!ALL3(a, b, dout) || !ALL3(out_ref, da_ref, db_ref)) return;
    run_add(cs, n, a, b, dout, out_ref, da_ref, db_ref);
    size_t r = large_repeat(n);
    float *ta = tiled(a, n, r), *tb = tiled(b, n, r), *td = tiled(dout, n, r), *to = tiled(out_ref, n, r);
    float *tda = tiled(da_ref, n, r), *tdb = tiled(db_ref, n, r);
    run_add(cs, n * r, ta, tb, td, to, tda, tdb);
    free(ta), free(tb), free(td), free(to), free(tda), free(tdb);
}

/* softmax / log_softmax have no backward in ops.h: forward only. */
static void case_softmax(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), C = fx_int(f, "C");
    float T = fx_float(f, "T");
    if (B <= 0 || C <= 0 || isnan(T)) return;
    size_t n = (size_t)B * C;
    const float *logits = fx_get(f, "logits", n), *out_ref = fx_get(f, "out", n);
    if (!logits || !out_ref) return;
    float *out = poisoned(n);
    if (strncmp(cs, "log_", 4) == 0)
        kd_log_softmax_forward(out, logits, B, C, T);
    else
        kd_softmax_forward(out, logits, B, C, T);
    compare(cs, "out", out, out_ref, n, 1);
    free(out);
}

static void case_cross_entropy(const fx_file *f) {
    const char *cs = f->case_name;
    int B = fx_int(f, "B"), C = fx_int(f, "C");
    float smoothing = fx_float(f, "smoothing"), scale = fx_float(f, "scale");
    if (B <= 0 || C <= 0 || isnan(smoothing) || isnan(scale)) return;
    size_t n = (size_t)B * C;
    const float *logits = fx_get(f, "logits", n), *labels_f = fx_get(f, "labels", B);
    const float *loss_ref = fx_get(f, "loss", 1), *probs_ref = fx_get(f, "probs", n);
    const float *dl_ref = fx_get(f, "dlogits", n);
    if (!ALL3(logits, labels_f, loss_ref) || !probs_ref || !dl_ref) return;
    int32_t *labels = malloc(B * sizeof *labels);
    for (int i = 0; i < B; i++) labels[i] = (int32_t)labels_f[i];
    float *probs = poisoned(n), *dl = zeros(n);
    float loss = kd_cross_entropy_forward(probs, logits, labels, B, C, smoothing);
    compare(cs, "loss", &loss, loss_ref, 1, 1);
    compare(cs, "probs", probs, probs_ref, n, 1);
    kd_cross_entropy_backward(dl, probs, labels, B, C, smoothing, scale);
    compare(cs, "dlogits", dl, dl_ref, n, 1);
    kd_cross_entropy_backward(dl, probs, labels, B, C, smoothing, scale);
    compare(cs, "dlogits (accumulated twice)", dl, dl_ref, n, 2);
    free(labels), free(probs), free(dl);
}

/* ------------------------------------------------------------------ driver */
typedef struct golden_case {
    const char *name;
    void (*run)(const fx_file *f);
} golden_case;

static const golden_case CASES[] = {
    {"linear", case_linear},
    {"linear_nobias", case_linear},
    {"conv_3x3_s1_p1", case_conv},
    {"conv_3x3_s2_p1", case_conv},
    {"conv_1x1", case_conv},
    {"conv_grouped_g2", case_conv},
    {"conv_depthwise_3x3", case_conv},
    {"conv_depthwise_3x3_s2", case_conv},
    {"conv_3x3_nobias", case_conv},
    {"conv_3x3_p0", case_conv},
    {"conv_1x1_s2", case_conv},
    {"conv_depthwise_mult2", case_conv},
    {"maxpool_2x2_s2", case_maxpool},
    {"maxpool_3x3_s2", case_maxpool},
    {"maxpool_2x2_s2_ties", case_maxpool},
    {"maxpool_3x3_s2_ties", case_maxpool},
    {"avgpool_2x2_s2", case_avgpool},
    {"gap", case_gap},
    {"bn2d_train", case_bn_train},
    {"bn2d_eval", case_bn_eval},
    {"bn1d_train", case_bn_train},
    {"relu", case_unary},
    {"gelu", case_unary},
    {"dropout", case_dropout},
    {"add", case_add},
    {"softmax_T1", case_softmax},
    {"softmax_T4", case_softmax},
    {"log_softmax_T1", case_softmax},
    {"log_softmax_T4", case_softmax},
    {"cross_entropy_ls0", case_cross_entropy},
    {"cross_entropy_ls0.1", case_cross_entropy},
};

int main(void) {
    int n_cases = (int)(sizeof CASES / sizeof CASES[0]), n_ok = 0;
    for (int i = 0; i < n_cases; i++) {
        int fail0 = kd_test_fail, pass0 = kd_test_pass;
        fx_file f;
        case_worst_ratio = 0.0;
        if (fx_load(&f, CASES[i].name)) {
            CASES[i].run(&f);
            fx_free(&f);
        }
        /* a case that checked nothing has not tested anything */
        if (kd_test_fail == fail0 && kd_test_pass == pass0) CHECK_MSG(0, "%s: no checks ran", CASES[i].name);
        int failed = kd_test_fail - fail0;
        printf("golden %-24s %s (%3d checks, %d failed, worst error %.3g of tolerance)\n", CASES[i].name,
               failed ? "FAIL" : "ok", kd_test_pass - pass0 + failed, failed, case_worst_ratio);
        n_ok += failed == 0;
    }
    printf("golden: %d of %d cases match PyTorch (tol %g abs + %g rel)\n", n_ok, n_cases, TOL_ABS, TOL_REL);
    TEST_DONE();
}
