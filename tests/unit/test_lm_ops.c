/* Language-model ops (src/lm/ops_lm.c): finite-difference gradient checks of every op and loss
 * (float64 central differences of a random projection of the output), a tiny model's logits, loss
 * and parameter gradients against PyTorch (tests/golden/gen_lm.py), and causal masking. */
#include <stdint.h>

#include "distill/lm.h"
#include "distill/rng.h"
#include "golden/kdgf.h"
#include "test.h"

#define NT 2 /* OpenMP threads of the ops under test: their parallel paths run */

/* ---------------------------------------------------------------- golden (tests/golden/kdgf.h) */

/* Array `name` of the fixture, or NULL after a recorded failure. */
static const fx_array *get(const fx_file *f, const char *name) {
    const fx_array *a = fx_find(f, name);
    if (!a) CHECK_MSG(a != NULL, "%s: golden array %s missing", f->case_name, name);
    return a;
}

static double max_rel(const float *x, const float *ref, int n, double floor_) {
    double mx = 0, scale = floor_;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs((double)x[i] - ref[i]) / scale);
    return mx;
}

static void test_golden(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/lm/%s.kdgf", KD_SOURCE_DIR, name);
    fx_file a;
    int rc = kdgf_load(&a, path, name);
    CHECK_MSG(rc == KDGF_OK && a.count > 0, "cannot read %s", path);
    if (rc != KDGF_OK) return;
    const fx_array *cfg = get(&a, "config"), *Ba = get(&a, "B"), *Ta = get(&a, "T"), *p = get(&a, "params");
    const fx_array *tokens = get(&a, "tokens"), *targets = get(&a, "targets"), *logits = get(&a, "logits");
    const fx_array *loss_ref = get(&a, "loss"), *dparams = get(&a, "dparams");
    if (!cfg || !Ba || !Ta || !p || !tokens || !targets || !logits || !loss_ref || !dparams) {
        fx_free(&a);
        return;
    }
    const float *cf = cfg->data;
    kd_lm_config c = {(int)cf[0], (int)cf[1], (int)cf[2], (int)cf[3], (int)cf[4]};
    int B = (int)Ba->data[0], T = (int)Ta->data[0];
    kd_lm *m = NULL;
    kd_error err;
    CHECK(kd_lm_create(&m, &c, 1, &err) == KD_STATUS_OK);
    CHECK(kd_lm_prepare(m, B, T, 1, &err) == KD_STATUS_OK);
    CHECK((size_t)p->n == m->n_params);
    memcpy(m->params, p->data, m->n_params * sizeof(float));
    int32_t tok[64], tgt[64];
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)tokens->data[i];
        tgt[i] = (int32_t)targets->data[i];
    }
    kd_lm_forward(m, tok, B, T);
    double el = max_rel(m->a.logits, logits->data, B * T * c.vocab, 1.0);
    CHECK_MSG(el < 1e-5, "%s logits: max relative error %g", name, el);
    float loss = kd_lm_crossentropy_forward(m->a.probs, m->a.logits, tgt, B * T, c.vocab, NT);
    CHECK_NEAR(loss, loss_ref->data[0], 1e-5);
    memset(m->g.dlogits, 0, (size_t)B * T * c.vocab * sizeof(float));
    kd_lm_crossentropy_backward(m->g.dlogits, m->a.probs, tgt, B * T, c.vocab, 1.f, NT);
    kd_lm_zero_grad(m);
    kd_lm_backward(m, NULL);
    const float *dp = dparams->data;
    for (int i = 0; i < m->n_tensors; i++) { /* per tensor, so a failure names it */
        const kd_lm_tensor *t = &m->tensors[i];
        double e = max_rel(m->grads + t->off, dp + t->off, (int)t->n, 1e-3);
        CHECK_MSG(e < 1e-4, "%s d%s: max relative error %g", name, t->name, e);
    }
    kd_lm_free(m);
    fx_free(&a);
}

/* ---------------------------------------------------------------- finite differences */

static kd_rng rng;

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * kd_rng_normal(&rng);
}

/* A check: fwd() recomputes the scalar loss (float64) from the current inputs; the analytic
 * gradient of each input was computed by the caller. Compare on up to 40 elements per input. */
typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, loss_fn fwd, void *ctx, float *x, const float *g, size_t n, double eps,
                     double tol) {
    double worst = 0;
    size_t step = n > 40 ? n / 40 : 1, worst_i = 0;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = (float)(keep + eps);
        double lp = fwd(ctx);
        x[i] = (float)(keep - eps);
        double lm = fwd(ctx);
        x[i] = keep;
        double num = (lp - lm) / ((double)(float)(keep + eps) - (double)(float)(keep - eps));
        double e = fabs(num - g[i]) / fmax(1.0, fabs(num));
        if (e > worst) {
            worst = e;
            worst_i = i;
        }
    }
    CHECK_MSG(worst < tol, "%s: gradient off by %g at element %zu (tolerance %g)", what, worst, worst_i, tol);
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* each op: inputs, output, random projection r, loss = sum(out * r) */
typedef struct op_ctx {
    int B, T, C, NH, V, N;
    int32_t *tok, *tgt;
    float *in, *w, *b, *out, *r, *aux, *aux2, *pt;
    float T_kd;
    int op;   /* OP_*: the op op_loss runs */
    int kind; /* the loss loss_loss runs */
} op_ctx;

/* loss = sum(out * r) of the forward op c->op: one callback for every op's finite-difference check */
enum { OP_EMBED, OP_LAYERNORM, OP_MATMUL, OP_ATTENTION, OP_GELU };

static double op_loss(void *p) {
    op_ctx *c = p;
    size_t n = (size_t)c->N * c->C; /* output elements */
    switch (c->op) {
    case OP_EMBED: kd_lm_embed_forward(c->out, c->tok, c->w, c->b, c->B, c->T, c->C, NT); break;
    case OP_LAYERNORM: kd_lm_layernorm_forward(c->out, c->aux, c->aux2, c->in, c->w, c->b, c->N, c->C, NT); break;
    case OP_MATMUL:
        kd_lm_matmul_forward(c->out, c->in, c->w, c->b, c->N, c->C, c->V, NT);
        n = (size_t)c->N * c->V;
        break;
    case OP_ATTENTION: kd_lm_attention_forward(c->out, c->aux, c->in, c->B, c->T, c->C, c->NH, NT); break;
    default: kd_lm_gelu_forward(c->out, c->in, n, NT); break;
    }
    return dot_d(c->out, c->r, n);
}

static double loss_loss(void *p) {
    op_ctx *c = p;
    switch (c->kind) {
    case 0: return kd_lm_crossentropy_forward(c->aux, c->in, c->tgt, c->N, c->V, NT);
    case 1: return kd_lm_forward_kl(NULL, c->in, c->pt, c->N, c->V, c->T_kd, 1.f);
    case 2: return kd_lm_reverse_kl(NULL, c->in, c->pt, c->N, c->V, c->T_kd, 1.f);
    default: return kd_lm_cosine_loss(NULL, c->in, c->pt, c->N, c->C, 1.f);
    }
}

static void test_fd(void) {
    op_ctx c = {.B = 2, .T = 5, .C = 8, .NH = 2, .V = 12};
    c.N = c.B * c.T;
    size_t big = 4096;
    c.tok = malloc(big * sizeof(int32_t));
    c.tgt = malloc(big * sizeof(int32_t));
    float *bufs[9];
    for (int i = 0; i < 9; i++) bufs[i] = calloc(big, sizeof(float));
    c.in = bufs[0], c.w = bufs[1], c.b = bufs[2], c.out = bufs[3], c.r = bufs[4], c.aux = bufs[5], c.aux2 = bufs[6];
    c.pt = bufs[7];
    float *g1 = calloc(big, sizeof(float)), *g2 = calloc(big, sizeof(float)), *g3 = calloc(big, sizeof(float));
    for (int i = 0; i < c.N; i++) {
        c.tok[i] = (int32_t)kd_rng_below(&rng, (uint32_t)c.V);
        c.tgt[i] = (int32_t)kd_rng_below(&rng, (uint32_t)c.V);
    }
    c.tok[3] = c.tok[1]; /* a repeated token: its embedding row gets two contributions */
    size_t NC = (size_t)c.N * c.C;

    /* embedding: w = wte (V,C), b = wpe (T,C) */
    fill(c.w, (size_t)c.V * c.C, 1.f);
    fill(c.b, (size_t)c.T * c.C, 1.f);
    fill(c.r, NC, 1.f);
    c.op = OP_EMBED;
    kd_lm_embed_backward(g1, g2, c.r, c.tok, c.B, c.T, c.C);
    fd_check("embedding dwte", op_loss, &c, c.w, g1, (size_t)c.V * c.C, 1e-2, 1e-3);
    fd_check("embedding dwpe", op_loss, &c, c.b, g2, (size_t)c.T * c.C, 1e-2, 1e-3);

    /* layernorm */
    memset(g1, 0, big * 4), memset(g2, 0, big * 4), memset(g3, 0, big * 4);
    fill(c.in, NC, 2.f);
    for (int i = 0; i < c.C; i++) c.in[i] += 3.f; /* a row with a large mean */
    fill(c.w, (size_t)c.C, 1.f);
    fill(c.b, (size_t)c.C, 1.f);
    c.op = OP_LAYERNORM;
    op_loss(&c);
    kd_lm_layernorm_backward(g1, g2, g3, c.r, c.in, c.w, c.aux, c.aux2, c.N, c.C, NT);
    fd_check("layernorm din", op_loss, &c, c.in, g1, NC, 1e-2, 5e-3);
    fd_check("layernorm dw", op_loss, &c, c.w, g2, (size_t)c.C, 1e-2, 5e-3);
    fd_check("layernorm db", op_loss, &c, c.b, g3, (size_t)c.C, 1e-2, 5e-3);

    /* matmul (C -> V) */
    memset(g1, 0, big * 4), memset(g2, 0, big * 4), memset(g3, 0, big * 4);
    fill(c.in, NC, 1.f);
    fill(c.w, (size_t)c.V * c.C, 1.f);
    fill(c.b, (size_t)c.V, 1.f);
    fill(c.r, (size_t)c.N * c.V, 1.f);
    c.op = OP_MATMUL;
    kd_lm_matmul_backward(g1, g2, g3, c.r, c.in, c.w, c.N, c.C, c.V);
    fd_check("matmul din", op_loss, &c, c.in, g1, NC, 1e-2, 2e-3);
    fd_check("matmul dw", op_loss, &c, c.w, g2, (size_t)c.V * c.C, 1e-2, 2e-3);
    fd_check("matmul db", op_loss, &c, c.b, g3, (size_t)c.V, 1e-2, 2e-3);

    /* attention: qkv (B,T,3C) */
    memset(g1, 0, big * 4);
    fill(c.in, 3 * NC, 1.f);
    fill(c.r, NC, 1.f);
    c.op = OP_ATTENTION;
    op_loss(&c);
    kd_lm_attention_backward(g1, c.aux2, c.r, c.in, c.aux, c.B, c.T, c.C, c.NH, NT);
    fd_check("attention dqkv", op_loss, &c, c.in, g1, 3 * NC, 1e-2, 5e-3);

    /* gelu */
    memset(g1, 0, big * 4);
    fill(c.in, NC, 2.f);
    fill(c.r, NC, 1.f);
    c.op = OP_GELU;
    kd_lm_gelu_backward(g1, c.r, c.in, NC, NT);
    fd_check("gelu din", op_loss, &c, c.in, g1, NC, 1e-3, 2e-3);

    /* losses on logits (N,V): CE, forward KL, reverse KL at T = 1 and 2; cosine on (N,C) */
    size_t NV = (size_t)c.N * c.V;
    const char *names[] = {"cross-entropy", "forward KL", "reverse KL", "cosine"};
    for (int kind = 0; kind < 4; kind++)
        for (int ti = 0; ti < (kind == 1 || kind == 2 ? 2 : 1); ti++) {
            c.kind = kind;
            c.T_kd = ti ? 2.f : 1.f;
            memset(g1, 0, big * 4);
            fill(c.in, kind == 3 ? NC : NV, 2.f);
            fill(c.aux2, NV, 2.f);
            if (kind == 3) fill(c.pt, NC, 1.f);
            else kd_lm_softmax(c.pt, c.aux2, c.N, c.V, c.T_kd, NT);
            float scale = 0.7f;
            if (kind == 0) {
                kd_lm_crossentropy_forward(c.aux, c.in, c.tgt, c.N, c.V, NT);
                kd_lm_crossentropy_backward(g1, c.aux, c.tgt, c.N, c.V, scale, NT);
            } else if (kind == 1) kd_lm_forward_kl(g1, c.in, c.pt, c.N, c.V, c.T_kd, scale);
            else if (kind == 2) kd_lm_reverse_kl(g1, c.in, c.pt, c.N, c.V, c.T_kd, scale);
            else kd_lm_cosine_loss(g1, c.in, c.pt, c.N, c.C, scale);
            for (size_t i = 0; i < (kind == 3 ? NC : NV); i++) g1[i] /= scale;
            char what[64];
            snprintf(what, sizeof what, "%s (T=%g)", names[kind], (double)c.T_kd);
            fd_check(what, loss_loss, &c, c.in, g1, kind == 3 ? NC : NV, 1e-2, 2e-3);
        }
    /* KL of identical distributions is 0; both KLs are >= 0 */
    fill(c.in, NV, 1.f);
    kd_lm_softmax(c.pt, c.in, c.N, c.V, 2.f, NT);
    CHECK_NEAR(kd_lm_forward_kl(NULL, c.in, c.pt, c.N, c.V, 2.f, 1.f), 0.0, 1e-5);
    CHECK_NEAR(kd_lm_reverse_kl(NULL, c.in, c.pt, c.N, c.V, 2.f, 1.f), 0.0, 1e-5);
    fill(c.aux2, NV, 1.f);
    CHECK(kd_lm_forward_kl(NULL, c.aux2, c.pt, c.N, c.V, 2.f, 1.f) > 0.f);
    CHECK(kd_lm_reverse_kl(NULL, c.aux2, c.pt, c.N, c.V, 2.f, 1.f) > 0.f);

    for (int i = 0; i < 9; i++) free(bufs[i]);
    free(g1), free(g2), free(g3), free(c.tok), free(c.tgt);
}

/* ---------------------------------------------------------------- causal masking */

static void test_causal(void) {
    kd_lm_config cfg = {256, 16, 2, 32, 4};
    kd_lm *m = NULL;
    kd_error err;
    CHECK(kd_lm_create(&m, &cfg, 7, &err) == KD_STATUS_OK);
    CHECK(kd_lm_prepare(m, 1, 16, 0, &err) == KD_STATUS_OK);
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = (int32_t)kd_rng_below(&rng, 256);
    size_t V = 256;
    float *ref = malloc(16 * V * sizeof(float));
    kd_lm_forward(m, tok, 1, 16);
    memcpy(ref, m->a.logits, 16 * V * sizeof(float));
    int bad = 0, changed = 0;
    for (int t = 1; t < 16; t += 3) {
        int32_t keep = tok[t];
        tok[t] = (keep + 1 + (int32_t)kd_rng_below(&rng, 255)) % 256;
        kd_lm_forward(m, tok, 1, 16);
        for (size_t i = 0; i < (size_t)t * V; i++) bad += m->a.logits[i] != ref[i];
        for (size_t i = (size_t)t * V; i < (size_t)(t + 1) * V; i++) changed += m->a.logits[i] != ref[i];
        tok[t] = keep;
    }
    CHECK_MSG(bad == 0, "%d logits before a changed token changed", bad);
    CHECK(changed > 0);
    free(ref);
    kd_lm_free(m);
}

int main(void) {
    kd_rng_seed(&rng, 42, 1);
    test_golden("tiny");
    test_golden("one_head");
    test_fd();
    test_causal();
    TEST_DONE();
}
