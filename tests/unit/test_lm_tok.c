/* The BPE tokenizer of the language models: encode/decode round trips on arbitrary bytes (invalid
 * UTF-8 included), deterministic training and its tie-breaking, hostile merge lists, the tokenizer
 * kept by checkpoints (and refused when a resume or a file disagrees), teacher and student sharing
 * it, and bits per byte counted in bytes whatever the tokenization. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdint.h>

#include "distill/fileio.h"
#include "distill/lm.h"
#include "test.h"

static char dir[256];
static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* Sentences from a small vocabulary: repeated words for BPE to find. */
static size_t make_text(uint8_t *buf, size_t bytes, uint64_t seed) {
    static const char *words[] = {"the", "lord", "said", "unto", "moses", "and", "it", "came", "to", "pass",
                                  "that", "he", "went", "up", "into", "mountain", "of", "god", "land", "water"};
    kd_rng r;
    kd_rng_seed(&r, seed, 3);
    size_t n = 0;
    while (n + 20 < bytes) {
        const char *w = words[kd_rng_below(&r, 20)];
        size_t l = strlen(w);
        memcpy(buf + n, w, l);
        n += l;
        buf[n++] = kd_rng_below(&r, 8) ? ' ' : '\n';
    }
    return n;
}

static int round_trip(const kd_lm_tokenizer *t, const uint8_t *b, size_t n) {
    int32_t *tok;
    size_t nt;
    kd_error err;
    if (kd_lm_tokenizer_encode(t, b, n, &tok, &nt, &err)) return 0;
    uint8_t *back = malloc(n + 1);
    size_t m = kd_lm_tokenizer_decode(t, tok, nt, back, n);
    int ok = m == n && !memcmp(back, b, n) && nt <= n;
    for (size_t i = 0; i < nt; i++) ok = ok && tok[i] >= 0 && tok[i] < kd_lm_tokenizer_vocab(t);
    free(tok);
    free(back);
    return ok;
}

static void test_train_encode(const uint8_t *text, size_t n) {
    kd_lm_tokenizer *t = NULL, *t2 = NULL;
    kd_error err;
    CHECK(kd_lm_tokenizer_train(&t, text, n, 400, &err) == KD_STATUS_OK);
    CHECK(kd_lm_tokenizer_vocab(t) == 400);
    /* deterministic: the same bytes give the same merges */
    CHECK(kd_lm_tokenizer_train(&t2, text, n, 400, &err) == KD_STATUS_OK && kd_lm_tokenizer_equal(t, t2));
    kd_lm_tokenizer_free(t2);
    /* a prefix of the merge list is what a smaller vocabulary learns */
    CHECK(kd_lm_tokenizer_train(&t2, text, n, 300, &err) == KD_STATUS_OK);
    int n1, n2;
    const int32_t *m1 = kd_lm_tokenizer_merges(t, &n1), *m2 = kd_lm_tokenizer_merges(t2, &n2);
    CHECK(n2 == 44 && !memcmp(m1, m2, (size_t)n2 * 2 * sizeof(int32_t)));
    CHECK(!kd_lm_tokenizer_equal(t, t2) && !kd_lm_tokenizer_equal(t, NULL) && kd_lm_tokenizer_equal(NULL, NULL));
    kd_lm_tokenizer_free(t2);
    /* the text compresses, and round-trips */
    int32_t *tok;
    size_t nt;
    CHECK(kd_lm_tokenizer_encode(t, text, n, &tok, &nt, &err) == KD_STATUS_OK);
    CHECK_MSG(nt * 2 < n, "%zu tokens for %zu bytes", nt, n);
    free(tok);
    CHECK(round_trip(t, text, n));
    /* arbitrary bytes: every byte value, invalid UTF-8 (lone continuation bytes, truncated and
     * overlong sequences, 0xff), NULs, random bytes, the empty string and one byte */
    uint8_t bin[4096];
    for (int i = 0; i < 256; i++) bin[i] = (uint8_t)(255 - i);
    const uint8_t bad[] = {0x80, 0xbf, 0xc3, 't', 'h', 'e', ' ', 0xe2, 0x82, 0xc0, 0xaf, 0xff, 0xfe, 0, 0, 'l', 'o', 'r', 'd'};
    memcpy(bin + 256, bad, sizeof bad);
    kd_rng r;
    kd_rng_seed(&r, 9, 1);
    for (size_t i = 256 + sizeof bad; i < sizeof bin; i++) bin[i] = (uint8_t)kd_rng_u32(&r);
    CHECK(round_trip(t, bin, sizeof bin));
    CHECK(round_trip(t, bin, 0) && round_trip(t, bin + 300, 1));
    CHECK(round_trip(t, text + 7, 1000));
    CHECK(round_trip(NULL, bin, sizeof bin)); /* the byte tokenizer */
    /* the bytes of a merged token are its pair's bytes */
    size_t l;
    const uint8_t *b = kd_lm_tokenizer_token(t, 256, &l);
    size_t la, lb;
    const uint8_t *ba = kd_lm_tokenizer_token(t, m1[0], &la), *bb = kd_lm_tokenizer_token(t, m1[1], &lb);
    CHECK(l == la + lb && !memcmp(b, ba, la) && !memcmp(b + la, bb, lb));
    kd_lm_tokenizer_token(t, 400, &l);
    CHECK(l == 0);
    kd_lm_tokenizer_free(t);

    /* tie-breaking: in "aabbaabb" the pairs aa, ab and bb occur twice each: the smallest, (a, a), wins;
     * then no pair repeats... except (aa, b) and (b, b)? "aa b b aa b b": (256,b) and (b,b) twice,
     * (b,256) once: (b, b) = (98, 98) < (256, 98) */
    CHECK(kd_lm_tokenizer_train(&t, (const uint8_t *)"aabbaabb", 8, 300, &err) == KD_STATUS_OK);
    const int32_t *mg = kd_lm_tokenizer_merges(t, &n1);
    CHECK(n1 >= 2 && mg[0] == 'a' && mg[1] == 'a' && mg[2] == 'b' && mg[3] == 'b');
    kd_lm_tokenizer_free(t);
    /* nothing repeats: no merges, the byte vocabulary */
    CHECK(kd_lm_tokenizer_train(&t, (const uint8_t *)"abcdefg", 7, 300, &err) == KD_STATUS_OK &&
          kd_lm_tokenizer_vocab(t) == 256);
    kd_lm_tokenizer_free(t);
    CHECK(kd_lm_tokenizer_train(&t, text, n, 100, &err) == KD_STATUS_BAD_ARG && !t);
    CHECK(kd_lm_tokenizer_train(&t, text, n, KD_LM_BPE_MAX_VOCAB + 1, &err) == KD_STATUS_BAD_ARG);

    /* hostile merge lists: a pair naming a later token, a negative token, a token of > 64 KB */
    int32_t later[] = {'a', 'b', 258, 'c'}, neg[] = {-1, 'a'};
    CHECK(kd_lm_tokenizer_from_merges(&t, later, 2, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "earlier token"));
    CHECK(kd_lm_tokenizer_from_merges(&t, neg, 1, &err) == KD_STATUS_BAD_FILE);
    int32_t dbl[2 * 20];
    dbl[0] = dbl[1] = 'a';
    for (int i = 1; i < 20; i++) dbl[2 * i] = dbl[2 * i + 1] = 255 + i; /* token 256+i: 2^(i+1) bytes */
    CHECK(kd_lm_tokenizer_from_merges(&t, dbl, 20, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "bytes"));
    CHECK(kd_lm_tokenizer_from_merges(&t, dbl, 10, &err) == KD_STATUS_OK);
    kd_lm_tokenizer_free(t);
}

static kd_lm *model_with(const kd_lm_tokenizer *t, int ctx, uint64_t seed) {
    kd_lm_config c = {kd_lm_tokenizer_vocab(t), ctx, 1, 16, 2};
    kd_lm *m = NULL;
    kd_lm_tokenizer *own = NULL;
    kd_error err;
    if (kd_lm_create(&m, &c, seed, &err) || kd_lm_tokenizer_clone(&own, t, &err) || kd_lm_set_tokenizer(m, own, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return m;
}

/* Replace the first occurrence of `from` in a file by `to` (same length: the header keeps its size). */
static int patch(const char *path, const char *from, const char *to) {
    char *d;
    size_t n;
    kd_error err;
    if (kd_read_file(path, &d, &n, &err)) return 0;
    char *p = memmem(d, n, from, strlen(from));
    if (p) memcpy(p, to, strlen(to));
    int ok = p && !kd_write_file_atomic(path, d, n, &err);
    free(d);
    return ok;
}

static void test_checkpoint(const uint8_t *text, size_t n) {
    kd_lm_tokenizer *t = NULL, *t2 = NULL;
    kd_error err;
    CHECK(kd_lm_tokenizer_train(&t, text, n, 320, &err) == KD_STATUS_OK);
    kd_lm *m = model_with(t, 16, 1), *l = NULL;
    char p[512], q[512];
    path_in(p, sizeof p, "bpe.safetensors");
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(p, &l, &err) == KD_STATUS_OK);
    CHECK(l && l->cfg.vocab == 320 && kd_lm_tokenizer_equal(l->tok, t));
    CHECK(l && !memcmp(l->params, m->params, m->n_params * sizeof(float)));
    kd_lm_free(l);
    /* a byte model stays version 1 and loads without a tokenizer */
    kd_lm *mb = model_with(NULL, 16, 1);
    path_in(q, sizeof q, "bytes.safetensors");
    CHECK(kd_lm_save(q, mb, NULL, NULL, &err) == KD_STATUS_OK);
    CHECK(kd_lm_load(q, &l, &err) == KD_STATUS_OK && l && !l->tok && l->cfg.vocab == 256);
    kd_lm_free(l);
    kd_lm_free(mb);
    /* loading into a model with another tokenizer of the same size is refused */
    const int32_t *mg;
    int nm;
    mg = kd_lm_tokenizer_merges(t, &nm);
    int32_t *other = malloc((size_t)nm * 2 * sizeof(int32_t));
    memcpy(other, mg, (size_t)nm * 2 * sizeof(int32_t));
    other[2 * (nm - 1)] = 'z';
    other[2 * (nm - 1) + 1] = 'q';
    CHECK(kd_lm_tokenizer_from_merges(&t2, other, nm, &err) == KD_STATUS_OK);
    free(other);
    kd_lm *m2 = model_with(t2, 16, 1);
    CHECK(kd_lm_load_into(p, m2, NULL, NULL, NULL, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "tokenizer"));
    /* a teacher and a student with different tokenizers do not train together */
    kd_lm_text tx = {(uint8_t *)malloc(n), n, n - n / 10};
    memcpy(tx.data, text, n);
    kd_lm_train_config tc;
    kd_lm_train_config_default(&tc);
    tc.steps = 2;
    tc.batch = 2;
    tc.progress = 0;
    tc.teacher = m;
    kd_lm_loss_term term;
    kd_lm_loss_term_parse(&term, "fkl", &err);
    tc.terms = &term;
    tc.n_terms = 1;
    kd_lm_train_result res;
    CHECK(kd_lm_train(m2, &tx, &tc, &res, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "share the tokenizer"));
    CHECK(kd_lm_init_from_teacher(m2, m, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "tokenizer"));
    /* the same tokenizer: distillation runs, and a resume checks the tokenizer of the checkpoint */
    kd_lm *s = model_with(t, 16, 2);
    char ck[512];
    path_in(ck, sizeof ck, "bpe.ckpt");
    tc.ckpt_path = ck;
    CHECK(kd_lm_train(s, &tx, &tc, &res, &err) == KD_STATUS_OK);
    CHECK(res.bytes_per_token > 1.5 && res.val.bytes > 0);
    tc.teacher = NULL;
    tc.n_terms = 0;
    tc.resume = 1;
    tc.steps = 3;
    CHECK(kd_lm_train(m2, &tx, &tc, &res, &err) == KD_STATUS_MISMATCH && strstr(err.msg, "tokenizer"));
    kd_lm_free(s);
    kd_lm_free(m2);
    kd_lm_tokenizer_free(t2);

    /* hostile version-2 files: a merge list shorter than the vocabulary says, a malformed one, no
     * tokenizer, version 3 */
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK && patch(p, "vocab=320", "vocab=330"));
    CHECK(kd_lm_load(p, &l, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "merges") && strstr(err.msg, p) && !l);
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK && patch(p, "\"merges\":\"", "\"merges\":\"x"));
    CHECK(kd_lm_load(p, &l, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "token pairs"));
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK && patch(p, "\"tokenizer\":\"bpe\"", "\"tokenizer\":\"xyz\""));
    CHECK(kd_lm_load(p, &l, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "tokenizer"));
    CHECK(kd_lm_save(p, m, NULL, NULL, &err) == KD_STATUS_OK && patch(p, "\"version\":\"2\"", "\"version\":\"3\""));
    CHECK(kd_lm_load(p, &l, &err) == KD_STATUS_BAD_FILE && strstr(err.msg, "version 3"));
    kd_lm_free(m);
    kd_lm_text_free(&tx);
    kd_lm_tokenizer_free(t);
}

/* Bits per byte: total bits over the BYTES predicted. A model whose weights are all zero predicts
 * the uniform distribution, ln V nats per token: (tokens - 1) * log2 V bits over the bytes after the
 * first token. With bytes that is exactly 8; with BPE more bits per token but fewer tokens. */
static void test_bits_per_byte(const uint8_t *text, size_t n) {
    kd_lm_tokenizer *t = NULL;
    kd_error err;
    CHECK(kd_lm_tokenizer_train(&t, text, n / 2, 512, &err) == KD_STATUS_OK);
    const uint8_t *held = text + n / 2;
    size_t nh = 3001;
    for (int bpe = 0; bpe < 2; bpe++) {
        kd_lm *m = model_with(bpe ? t : NULL, 32, 1);
        memset(m->params, 0, m->n_params * sizeof(float));
        kd_lm_eval ev;
        CHECK(kd_lm_evaluate(m, held, nh, 4, 32, &ev, &err) == KD_STATUS_OK);
        int32_t *tok;
        size_t nt, l0;
        kd_lm_tokenizer_encode(m->tok, held, nh, &tok, &nt, &err);
        kd_lm_tokenizer_token(m->tok, tok[0], &l0);
        free(tok);
        int V = m->cfg.vocab;
        CHECK(ev.tokens == (long long)nt - 1 && ev.bytes == (long long)(nh - l0));
        CHECK_NEAR(ev.loss, log((double)V), 1e-5);
        CHECK_NEAR(ev.bpb, (double)(nt - 1) * log2((double)V) / (double)(nh - l0), 1e-5);
        if (!bpe) CHECK_NEAR(ev.bpb, 8.0, 1e-5);
        if (bpe) CHECK(nt * 2 < nh);
        kd_lm_free(m);
    }
    /* a trained model: the sum over windows, recomputed by hand with one window per forward */
    kd_lm *m = model_with(t, 32, 3);
    kd_lm_eval ev;
    CHECK(kd_lm_evaluate(m, held, nh, 3, 32, &ev, &err) == KD_STATUS_OK);
    int32_t *tok;
    size_t nt;
    kd_lm_tokenizer_encode(t, held, nh, &tok, &nt, &err);
    double bits = 0;
    for (size_t pos = 0; pos + 1 < nt; pos += 32) {
        int T = nt - 1 - pos >= 32 ? 32 : (int)(nt - 1 - pos);
        kd_lm_forward(m, tok + pos, 1, T);
        bits += T * kd_lm_crossentropy_forward(m->a.probs, m->a.logits, tok + pos + 1, T, m->cfg.vocab, 1) / log(2.0);
    }
    CHECK_NEAR(ev.bpb, bits / (double)ev.bytes, 1e-4);
    free(tok);
    kd_lm_free(m);
    kd_lm_tokenizer_free(t);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/test_lm_tok_tmp", KD_BINARY_DIR);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) return 1;
    static uint8_t text[40000];
    size_t n = make_text(text, sizeof text, 1);
    test_train_encode(text, n);
    test_checkpoint(text, n);
    test_bits_per_byte(text, n);
    TEST_DONE();
}
