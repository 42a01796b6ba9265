/* Language models beyond the ops: checkpoints (round trip, hostile files), training on generated
 * text (the loss falls), resume bit-identical to an uninterrupted run, divergence, distillation
 * (every loss term, init from teacher), KV-cache inference against the batched forward, q8/q4
 * error budgets, reproducible sampling, text and loss-spec errors, and the CLI's help/usage. */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "distill/fileio.h"
#include "distill/lm.h"
#include "test.h"

static char dir[256];

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* Sentences from a small vocabulary with a fixed generator: a language with structure to learn. */
static void write_text(const char *path, size_t bytes, uint64_t seed) {
    static const char *words[] = {"the", "lord", "said", "unto", "moses", "and", "it", "came", "to", "pass",
                                  "that", "he", "went", "up", "into", "mountain", "of", "god", "land", "water"};
    kd_rng r;
    kd_rng_seed(&r, seed, 3);
    FILE *f = fopen(path, "wb");
    size_t n = 0;
    while (n < bytes) {
        int len = 4 + (int)kd_rng_below(&r, 8);
        for (int i = 0; i < len; i++)
            n += (size_t)fprintf(f, "%s%s", i ? " " : "", words[kd_rng_below(&r, 20)]);
        n += (size_t)fprintf(f, ".\n");
    }
    fclose(f);
}

static kd_lm *tiny(int layers, uint64_t seed) {
    kd_lm_config c = {256, 32, layers, 32, 4};
    kd_lm *m = NULL;
    kd_error err;
    if (kd_lm_create(&m, &c, seed, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return m;
}

static void train_cfg(kd_lm_train_config *tc, int steps) {
    kd_lm_train_config_default(tc);
    tc->steps = steps;
    tc->batch = 4;
    tc->threads = 1;
    tc->progress = 0;
    tc->optim.lr = 3e-3f;
    tc->warmup_steps = 5;
    tc->eval_bytes = 2048;
}

static void test_checkpoint(void) {
    kd_lm *m = tiny(2, 5), *m2 = NULL;
    char p[512], q[512];
    kd_error err;
    path_in(p, sizeof p, "ck.safetensors");
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(p, &m2, &err) == KD_STATUS_OK);
    CHECK(m2 && m2->n_params == m->n_params && !memcmp(m2->params, m->params, m->n_params * 4));
    kd_lm_free(m2);
    /* a different configuration is refused by name */
    kd_lm *m3 = tiny(1, 5);
    CHECK(kd_lm_load_into(p, m3, NULL, NULL, NULL, &err) == KD_STATUS_MISMATCH);
    CHECK(strstr(err.msg, "ck.safetensors") && strstr(err.msg, "layers 2"));
    kd_lm_free(m3);
    /* hostile files: truncated, not safetensors, wrong format, NaN in a tensor */
    char *data;
    size_t len;
    CHECK(kd_read_file(p, &data, &len, &err) == KD_STATUS_OK);
    path_in(q, sizeof q, "bad.safetensors");
    size_t cuts[] = {0, 5, 8, 100, len / 2, len - 1};
    for (int i = 0; i < 6; i++) {
        CHECK(kd_write_file_atomic(q, data, cuts[i], &err) == KD_STATUS_OK);
        m2 = NULL;
        kd_status s = kd_lm_load(q, &m2, &err);
        CHECK_MSG(s == KD_STATUS_BAD_FILE && m2 == NULL && strstr(err.msg, "bad.safetensors"),
                  "truncated at %zu: status %d, %s", cuts[i], s, err.msg);
    }
    char *copy = malloc(len);
    memcpy(copy, data, len);
    char *fmt = strstr(copy + 8, "distill-lm");
    fmt[0] = 'X';
    CHECK(kd_write_file_atomic(q, copy, len, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(q, &m2, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "not a Distill language model"));
    memcpy(copy, data, len);
    float nan = NAN;
    memcpy(copy + len - 4, &nan, 4); /* the last float of the last tensor */
    CHECK(kd_write_file_atomic(q, copy, len, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(q, &m2, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "NaN"));
    memcpy(copy, data, len);
    copy[8] = '[';
    CHECK(kd_write_file_atomic(q, copy, len, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(q, &m2, &err) == KD_STATUS_BAD_FILE);
    memset(copy, 0xff, 8); /* huge header length */
    CHECK(kd_write_file_atomic(q, copy, len, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(q, &m2, &err) == KD_STATUS_BAD_FILE);
    CHECK(kd_lm_load("/nonexistent/x.safetensors", &m2, &err) != KD_STATUS_OK && strstr(err.msg, "/nonexistent/x"));
    free(copy);
    free(data);
    /* a checkpoint is never written from NaN weights */
    m->params[3] = NAN;
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_DIVERGED && strstr(err.msg, "wte"));
    kd_lm_free(m);
}

static void test_train_resume(const char *text_path) {
    kd_lm_text text;
    kd_error err;
    CHECK(kd_lm_text_load(&text, text_path, 0.1, 32, &err) == KD_STATUS_OK);
    kd_lm_train_config tc;
    kd_lm_train_result res;
    char ck[512], ck2[512];
    path_in(ck, sizeof ck, "run.ckpt");
    path_in(ck2, sizeof ck2, "run2.ckpt");
    /* uninterrupted: 40 steps */
    kd_lm *a = tiny(2, 1);
    kd_lm_eval before;
    CHECK(kd_lm_evaluate(a, text.data + text.n_train, text.n - text.n_train, 4, 32, &before, &err) == KD_STATUS_OK);
    kd_lm_eval longer; /* a sequence past the context is refused (it was quietly evaluated at 32) */
    CHECK(kd_lm_evaluate(a, text.data + text.n_train, text.n - text.n_train, 4, 64, &longer, &err) == KD_STATUS_BAD_ARG &&
          strstr(err.msg, "longer than the model's context 32"));
    CHECK_NEAR(before.bpb, 8.0, 0.2); /* an untrained byte model: ~uniform over 256 */
    train_cfg(&tc, 40);
    tc.ckpt_path = ck;
    tc.ckpt_every = 0;
    CHECK(kd_lm_train(a, &text, &tc, &res, &err) == KD_STATUS_OK);
    CHECK_MSG(res.val.bpb < 5.0, "held-out %.3f bits/byte after 40 steps (from %.3f)", res.val.bpb, before.bpb);
    CHECK(res.resumed_step == -1 && res.steps_run == 40);
    /* interrupted at 25 (stop flag), then resumed to 40: bit-identical */
    kd_lm *b = tiny(2, 1);
    volatile int stop = 0;
    train_cfg(&tc, 40);
    tc.ckpt_path = ck2;
    tc.ckpt_every = 25;
    tc.stop = &stop;
    tc.steps = 25; /* first leg */
    CHECK(kd_lm_train(b, &text, &tc, &res, &err) == KD_STATUS_OK);
    kd_lm_free(b);
    b = tiny(2, 99); /* a fresh process would start from other weights: the checkpoint must win */
    tc.steps = 40;
    tc.resume = 1;
    CHECK(kd_lm_train(b, &text, &tc, &res, &err) == KD_STATUS_OK);
    CHECK(res.resumed_step == 25 && res.steps_run == 15);
    /* the schedule of a 25-step leg differs from the 40-step run's, so compare with a run that was
     * stopped by the flag instead: */
    kd_lm *c = tiny(2, 1), *d = tiny(2, 7);
    char ck3[512];
    path_in(ck3, sizeof ck3, "run3.ckpt");
    unlink(ck3);
    train_cfg(&tc, 40);
    tc.ckpt_path = ck3;
    tc.ckpt_every = 0;
    stop = 1; /* stops (and saves) after the first step */
    tc.stop = &stop;
    CHECK(kd_lm_train(c, &text, &tc, &res, &err) == KD_STATUS_INTERRUPTED && strstr(err.msg, "run3.ckpt"));
    stop = 0;
    tc.resume = 1;
    CHECK(kd_lm_train(d, &text, &tc, &res, &err) == KD_STATUS_OK);
    CHECK(res.resumed_step == 1);
    CHECK_MSG(!memcmp(a->params, d->params, a->n_params * sizeof(float)),
              "a run interrupted after step 1 and resumed differs from the uninterrupted run");
    /* divergence: a NaN weight stops training with a clear message */
    kd_lm *e = tiny(2, 1);
    e->params[e->tensors[5].off] = NAN;
    train_cfg(&tc, 5);
    CHECK(kd_lm_train(e, &text, &tc, &res, &err) == KD_STATUS_DIVERGED && strstr(err.msg, "diverged at step 1"));
    /* a resume from a checkpoint of another configuration is refused */
    kd_lm *f = tiny(1, 1);
    train_cfg(&tc, 5);
    tc.ckpt_path = ck;
    tc.resume = 1;
    CHECK(kd_lm_train(f, &text, &tc, &res, &err) == KD_STATUS_MISMATCH);
    kd_lm_free(a), kd_lm_free(b), kd_lm_free(c), kd_lm_free(d), kd_lm_free(e), kd_lm_free(f);
    kd_lm_text_free(&text);
}

static void test_kd(const char *text_path) {
    kd_lm_text text;
    kd_error err;
    CHECK(kd_lm_text_load(&text, text_path, 0.1, 32, &err) == KD_STATUS_OK);
    kd_lm *t = tiny(4, 3), *s = tiny(2, 4);
    kd_lm_train_config tc;
    kd_lm_train_result res;
    train_cfg(&tc, 30);
    CHECK(kd_lm_train(t, &text, &tc, &res, &err) == KD_STATUS_OK);
    CHECK(kd_lm_init_from_teacher(s, t, &err) == KD_STATUS_OK);
    kd_lm_layer ls, lt;
    kd_lm_layer_ptrs(s, s->params, 1, &ls);
    kd_lm_layer_ptrs(t, t->params, 2, &lt); /* k = 4/2: student layer 1 <- teacher layer 2 */
    CHECK(!memcmp(ls.w[KD_LM_FC_W], lt.w[KD_LM_FC_W], 4 * 32 * 32 * sizeof(float)));
    const char *specs[] = {"fkl:T=2", "rkl:T=1,weight=0.5", "ce:weight=0.5", "cosine:weight=0.1"};
    kd_lm_loss_term terms[4];
    for (int i = 0; i < 4; i++) CHECK(kd_lm_loss_term_parse(&terms[i], specs[i], &err) == KD_STATUS_OK);
    CHECK(terms[0].kind == KD_LM_LOSS_FKL && terms[0].T == 2.f && terms[1].weight == 0.5f);
    train_cfg(&tc, 20);
    tc.teacher = t;
    tc.terms = terms;
    tc.n_terms = 4;
    CHECK(kd_lm_train(s, &text, &tc, &res, &err) == KD_STATUS_OK);
    CHECK(isfinite(res.val.bpb) && res.val.bpb < 6.0);
    /* a teacher of another width cannot give hidden states to a cosine loss */
    kd_lm_config wide = {256, 32, 1, 64, 4};
    kd_lm *w = NULL;
    CHECK(kd_lm_create(&w, &wide, 1, &err) == KD_STATUS_OK);
    tc.teacher = w;
    CHECK(kd_lm_train(s, &text, &tc, &res, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "cosine"));
    CHECK(kd_lm_init_from_teacher(s, w, &err) == KD_STATUS_MISMATCH);
    const char *bad[] = {"kl", "fkl:T=0", "ce:T=2", "fkl:weight", "fkl:weight=abc", "cosine:weight=-1", ""};
    for (int i = 0; i < 7; i++) CHECK_MSG(kd_lm_loss_term_parse(&terms[0], bad[i], &err) == KD_STATUS_BAD_ARG, "%s", bad[i]);
    kd_lm_free(w);
    kd_lm_free(t);
    kd_lm_free(s);
    kd_lm_text_free(&text);
}

static void test_infer_quant(void) {
    kd_lm *m = tiny(2, 11);
    kd_error err;
    int T = 20;
    int32_t tok[32];
    kd_rng r;
    kd_rng_seed(&r, 5, 5);
    for (int i = 0; i < T; i++) tok[i] = (int32_t)kd_rng_below(&r, 256);
    /* scale the embeddings up so the logits are far from uniform (scaling every weight would make
     * attention so sharp that any rounding flips it) */
    for (size_t i = 0; i < m->tensors[0].n; i++) m->params[i] *= 20.f;
    CHECK(kd_lm_prepare(m, 1, T, 0, &err) == KD_STATUS_OK);
    kd_lm_forward(m, tok, 1, T);
    for (int qt = 0; qt < 3; qt++) {
        kd_lm *ref = m;
        kd_lm *fq = NULL;
        if (qt) { /* the quantized inference must match the batched forward of the fake-quantized model */
            char p[512];
            path_in(p, sizeof p, "q.safetensors");
            CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK && kd_lm_load(p, &fq, &err) == KD_STATUS_OK);
            CHECK(kd_lm_fake_quantize(fq, (kd_lm_qtype)qt, &err) == KD_STATUS_OK);
            CHECK(kd_lm_prepare(fq, 1, T, 0, &err) == KD_STATUS_OK);
            kd_lm_forward(fq, tok, 1, T);
            ref = fq;
        }
        kd_lm_infer *inf = NULL;
        CHECK(kd_lm_infer_create(&inf, m, (kd_lm_qtype)qt, &err) == KD_STATUS_OK);
        double worst = 0, dev = 0;
        for (int t = 0; t < T; t++) {
            const float *lg = kd_lm_infer_step(inf, tok[t], t);
            for (int v = 0; v < 256; v++) {
                worst = fmax(worst, fabs(lg[v] - ref->a.logits[t * 256 + v]));
                dev = fmax(dev, fabs(lg[v] - m->a.logits[t * 256 + v]));
            }
        }
        CHECK_MSG(worst < 2e-3, "%s: KV-cache logits differ from the batched forward by %g", kd_lm_qtype_traits(qt)->name, worst);
        double range = 0;
        for (int i = 0; i < T * 256; i++) range = fmax(range, fabs(m->a.logits[i]));
        if (qt == 1) CHECK_MSG(dev < 0.02 * range, "q8 logits move by %g (largest logit %g)", dev, range);
        if (qt == 2) CHECK_MSG(dev < 0.2 * range && dev > 1e-3, "q4 logits move by %g (largest logit %g)", dev, range);
        if (qt) CHECK(kd_lm_infer_weight_bytes(inf) < m->n_params * 4 * (qt == 1 ? 0.35 : 0.22));
        kd_lm_infer_free(inf);
        kd_lm_free(fq);
    }
    /* error budgets of the blocks: q8 |err| <= d/2 = amax/254, q4 within amax/7 / 2 * (1 + clip) */
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = kd_rng_normal(&r) * (i < 32 ? 1.f : 0.01f);
    x[5] = 4.f;
    unsigned char buf[256];
    for (int qt = 1; qt < 3; qt++) {
        const kd_lm_qtraits *q = kd_lm_qtype_traits((kd_lm_qtype)qt);
        q->from_float(buf, x, 64);
        q->to_float(y, buf, 64);
        for (int b = 0; b < 2; b++) {
            float amax = 0, e = 0;
            for (int i = 32 * b; i < 32 * b + 32; i++) amax = fmaxf(amax, fabsf(x[i]));
            for (int i = 32 * b; i < 32 * b + 32; i++) e = fmaxf(e, fabsf(x[i] - y[i]));
            float budget = qt == 1 ? amax / 254.f * 1.001f : amax / 7.f;
            CHECK_MSG(e <= budget, "%s block %d: error %g > %g", q->name, b, e, budget);
        }
        float z[64], dq = 0;
        for (int i = 0; i < 64; i++) z[i] = kd_rng_normal(&r);
        for (int i = 0; i < 64; i++) dq += y[i] * z[i];
        CHECK_NEAR(q->dot(buf, z, 64), dq, 1e-4);
        CHECK_NEAR(q->dot(buf, z, 64), q->dot_ref(buf, z, 64), 1e-5); /* the vector kernel vs the loop */
    }
    kd_lm_qtype t;
    CHECK(kd_lm_qtype_parse(&t, "q5", &err) == KD_STATUS_BAD_ARG);
    kd_lm_free(m);
}

typedef struct collect {
    int tok[200];
    int n;
} collect;

static int take(void *ctx, int tok) {
    collect *c = ctx;
    c->tok[c->n++] = tok;
    return 0;
}

static void test_generate(void) {
    kd_lm *m = tiny(2, 13);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 4.f;
    kd_error err;
    kd_lm_infer *inf = NULL;
    CHECK(kd_lm_infer_create(&inf, m, KD_LM_F32, &err) == KD_STATUS_OK);
    const uint8_t prompt[] = "the lord";
    kd_lm_sample_config sc = {0.9f, 0, 1.f, 42};
    collect a = {{0}, 0}, b = {{0}, 0}, c = {{0}, 0};
    /* 80 tokens after an 8-byte prompt run past ctx 32: the sliding window is exercised too */
    CHECK(kd_lm_generate(inf, prompt, 8, 80, &sc, take, &a, &err) == KD_STATUS_OK);
    CHECK(kd_lm_generate(inf, prompt, 8, 80, &sc, take, &b, &err) == KD_STATUS_OK);
    CHECK(a.n == 80 && b.n == 80 && !memcmp(a.tok, b.tok, sizeof a.tok));
    sc.seed = 43;
    CHECK(kd_lm_generate(inf, prompt, 8, 80, &sc, take, &c, &err) == KD_STATUS_OK);
    CHECK(memcmp(a.tok, c.tok, sizeof a.tok) != 0);
    /* top-k 1 is greedy; top-p keeps at least the most likely token */
    collect g = {{0}, 0}, k1 = {{0}, 0}, p0 = {{0}, 0};
    kd_lm_sample_config greedy = {0.f, 0, 1.f, 1}, topk = {1.f, 1, 1.f, 7}, topp = {1.f, 0, 1e-6f, 9};
    CHECK(kd_lm_generate(inf, prompt, 8, 40, &greedy, take, &g, &err) == KD_STATUS_OK);
    CHECK(kd_lm_generate(inf, prompt, 8, 40, &topk, take, &k1, &err) == KD_STATUS_OK);
    CHECK(kd_lm_generate(inf, prompt, 8, 40, &topp, take, &p0, &err) == KD_STATUS_OK);
    CHECK(!memcmp(g.tok, k1.tok, 40 * sizeof(int)) && !memcmp(g.tok, p0.tok, 40 * sizeof(int)));
    kd_lm_infer_free(inf);
    kd_lm_free(m);
}

static void test_text_errors(const char *text_path) {
    kd_lm_text t;
    kd_error err;
    CHECK(kd_lm_text_load(&t, "/nonexistent/corpus.txt", 0.05, 32, &err) != KD_STATUS_OK &&
          strstr(err.msg, "/nonexistent/corpus.txt"));
    char p[512];
    path_in(p, sizeof p, "short.txt");
    CHECK(kd_write_file_atomic(p, "In the beginning", 16, &err) == KD_STATUS_OK);
    CHECK(kd_lm_text_load(&t, p, 0.05, 32, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "too short"));
    CHECK(kd_lm_text_load(&t, text_path, 0.9, 32, &err) == KD_STATUS_BAD_ARG);
    /* --mix: more training text goes between the training split and the held-out tail */
    CHECK(kd_lm_text_load(&t, text_path, 0.05, 32, &err) == KD_STATUS_OK);
    size_t n0 = t.n, tr0 = t.n_train;
    uint8_t *held = malloc(n0 - tr0);
    memcpy(held, t.data + tr0, n0 - tr0);
    CHECK(kd_lm_text_add_train(&t, p, &err) == KD_STATUS_OK);
    CHECK(t.n == n0 + 16 && t.n_train == tr0 + 16 && !memcmp(t.data + tr0, "In the beginning", 16) &&
          !memcmp(t.data + t.n_train, held, n0 - tr0));
    CHECK(kd_lm_text_add_train(&t, "/nonexistent/synth.txt", &err) != KD_STATUS_OK && strstr(err.msg, "/nonexistent/synth.txt"));
    char e[512];
    path_in(e, sizeof e, "empty.txt");
    CHECK(kd_write_file_atomic(e, "", 0, &err) == KD_STATUS_OK);
    CHECK(kd_lm_text_add_train(&t, e, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "empty.txt"));
    CHECK(t.n == n0 + 16);
    free(held);
    kd_lm_text_free(&t);
}

static int sh(const char *cmd) {
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void test_cli(const char *text_path) {
    char c[2048], out[512];
    const char *subs[] = {"", "train ", "kd ", "eval ", "generate "};
    for (int i = 0; i < 5; i++) {
        snprintf(c, sizeof c, "%s lm %s--help > /dev/null", KD_CLI_PATH, subs[i]);
        CHECK_MSG(sh(c) == 0, "%s", c);
    }
    snprintf(c, sizeof c, "%s lm train --bogus 2> /dev/null", KD_CLI_PATH);
    CHECK(sh(c) == 2);
    snprintf(c, sizeof c, "%s lm kd --text %s 2> /dev/null", KD_CLI_PATH, text_path); /* no --teacher */
    CHECK(sh(c) == 2);
    snprintf(c, sizeof c, "%s lm eval -m /nonexistent.safetensors --text %s 2> /dev/null", KD_CLI_PATH, text_path);
    CHECK(sh(c) == 1);
    /* a real run: train 8 steps, evaluate q4, generate reproducibly */
    path_in(out, sizeof out, "cli.safetensors");
    snprintf(c, sizeof c, "%s lm train --text %s --layers 1 --dim 32 --heads 2 --ctx 16 --steps 8 -b 2 -q -o %s > /dev/null",
             KD_CLI_PATH, text_path, out);
    CHECK(sh(c) == 0);
    snprintf(c, sizeof c, "%s lm eval -m %s --text %s --quant q4 | grep -q 'bits/byte'", KD_CLI_PATH, out, text_path);
    CHECK(sh(c) == 0);
    snprintf(c, sizeof c, "cd %s && %s lm generate -m %s --prompt ab --tokens 30 --seed 5 -q > g1.txt && "
             "%s lm generate -m %s --prompt ab --tokens 30 --seed 5 -q > g2.txt && cmp -s g1.txt g2.txt",
             dir, KD_CLI_PATH, out, KD_CLI_PATH, out);
    CHECK(sh(c) == 0);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/test_lm_tmp", KD_BINARY_DIR);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) return 1;
    char text[512];
    path_in(text, sizeof text, "text.txt");
    write_text(text, 30000, 1);
    test_checkpoint();
    test_train_resume(text);
    test_kd(text);
    test_infer_quant();
    test_generate();
    test_text_errors(text);
    test_cli(text);
    TEST_DONE();
}
