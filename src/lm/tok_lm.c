/* Byte-level BPE for the language models. Training starts from the 256 bytes and repeatedly merges
 * the most frequent adjacent pair of the training text (ties go to the smallest pair (a, b), so the
 * result depends on the bytes alone); encoding applies the merges in the order they were learnt,
 * which is exactly what training did to its text; decoding concatenates each token's bytes, so any
 * byte string, valid UTF-8 or not, round-trips. No pre-splitting on spaces: tokens may span words. */
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"

#define TOK_MAX_BYTES 65536 /* bytes one token may expand to: more is a hostile merge list */

struct kd_lm_tokenizer {
    int n_merges;
    int32_t *merges; /* (n_merges, 2): token 256+i is merges[2i] followed by merges[2i+1] */
    uint32_t *off;   /* (V+1): token t's bytes are bytes[off[t], off[t+1]) */
    uint8_t *bytes;
};

#define B4(i) (i), (i) + 1, (i) + 2, (i) + 3
#define B16(i) B4(i), B4((i) + 4), B4((i) + 8), B4((i) + 12)
#define B64(i) B16(i), B16((i) + 16), B16((i) + 32), B16((i) + 48)
static const uint8_t byte_table[256] = {B64(0), B64(64), B64(128), B64(192)};

void kd_lm_tokenizer_free(kd_lm_tokenizer *t) {
    if (!t) return;
    free(t->merges);
    free(t->off);
    free(t->bytes);
    free(t);
}

int kd_lm_tokenizer_vocab(const kd_lm_tokenizer *t) { return 256 + (t ? t->n_merges : 0); }

const int32_t *kd_lm_tokenizer_merges(const kd_lm_tokenizer *t, int *n) {
    *n = t ? t->n_merges : 0;
    return t ? t->merges : NULL;
}

int kd_lm_tokenizer_equal(const kd_lm_tokenizer *a, const kd_lm_tokenizer *b) {
    int na = a ? a->n_merges : 0, nb = b ? b->n_merges : 0;
    return na == nb && (na == 0 || !memcmp(a->merges, b->merges, 2 * (size_t)na * sizeof(int32_t)));
}

const uint8_t *kd_lm_tokenizer_token(const kd_lm_tokenizer *t, int tok, size_t *len) {
    if (tok < 0 || tok >= kd_lm_tokenizer_vocab(t)) {
        *len = 0;
        return byte_table;
    }
    if (!t || tok < 256) {
        *len = 1;
        return byte_table + tok;
    }
    *len = t->off[tok + 1] - t->off[tok];
    return t->bytes + t->off[tok];
}

kd_status kd_lm_tokenizer_from_merges(kd_lm_tokenizer **out, const int32_t *merges, int n_merges, kd_error *err) {
    *out = NULL;
    if (n_merges < 0 || n_merges > KD_LM_BPE_MAX_VOCAB - 256)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "BPE: %d merges (at most %d)", n_merges, KD_LM_BPE_MAX_VOCAB - 256);
    int V = 256 + n_merges;
    size_t total = 256;
    uint32_t *len = malloc((size_t)V * sizeof *len);
    if (!len) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    for (int i = 0; i < 256; i++) len[i] = 1;
    for (int i = 0; i < n_merges; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1];
        if (a < 0 || b < 0 || a >= 256 + i || b >= 256 + i) {
            free(len);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "BPE merge %d joins tokens %d and %d: each must be an earlier "
                                "token (below %d)", i, a, b, 256 + i);
        }
        len[256 + i] = len[a] + len[b];
        if (len[256 + i] > TOK_MAX_BYTES) {
            free(len);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "BPE merge %d makes a token of more than %d bytes", i,
                                TOK_MAX_BYTES);
        }
        total += len[256 + i];
    }
    kd_lm_tokenizer *t = calloc(1, sizeof *t);
    if (t) {
        t->n_merges = n_merges;
        t->merges = malloc((2 * (size_t)n_merges + 1) * sizeof(int32_t));
        t->off = malloc(((size_t)V + 1) * sizeof(uint32_t));
        t->bytes = malloc(total);
    }
    if (!t || !t->merges || !t->off || !t->bytes) {
        free(len);
        kd_lm_tokenizer_free(t);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    if (n_merges) memcpy(t->merges, merges, 2 * (size_t)n_merges * sizeof(int32_t));
    uint32_t o = 0;
    for (int v = 0; v < V; v++) {
        t->off[v] = o;
        if (v < 256) {
            t->bytes[o] = (uint8_t)v;
        } else {
            int32_t a = merges[2 * (v - 256)], b = merges[2 * (v - 256) + 1];
            memcpy(t->bytes + o, t->bytes + t->off[a], len[a]);
            memcpy(t->bytes + o + len[a], t->bytes + t->off[b], len[b]);
        }
        o += len[v];
    }
    t->off[V] = o;
    free(len);
    *out = t;
    return KD_STATUS_OK;
}

kd_status kd_lm_tokenizer_clone(kd_lm_tokenizer **out, const kd_lm_tokenizer *t, kd_error *err) {
    *out = NULL;
    if (!t) return KD_STATUS_OK;
    return kd_lm_tokenizer_from_merges(out, t->merges, t->n_merges, err);
}

/* Replace every non-overlapping (a, b), left to right, by tok; returns the new length. */
static size_t merge_pass(int32_t *s, size_t n, int32_t a, int32_t b, int32_t tok) {
    size_t w = 0, j = 0;
    while (j < n) {
        if (j + 1 < n && s[j] == a && s[j + 1] == b) {
            s[w++] = tok;
            j += 2;
        } else {
            s[w++] = s[j++];
        }
    }
    return w;
}

kd_status kd_lm_tokenizer_train(kd_lm_tokenizer **out, const uint8_t *data, size_t n, int vocab, kd_error *err) {
    *out = NULL;
    if (vocab < 256 || vocab > KD_LM_BPE_MAX_VOCAB)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "BPE vocabulary must be in [256, %d] (got %d)", KD_LM_BPE_MAX_VOCAB,
                            vocab);
    if (n > UINT32_MAX) return kd_error_set(err, KD_STATUS_BAD_ARG, "BPE: %zu bytes of training text (at most 4 GB)", n);
    size_t W = (size_t)vocab; /* the pair (a, b) counts at a*W + b: smaller index = smaller pair */
    int32_t *s = malloc((n ? n : 1) * sizeof(int32_t)), *merges = malloc(2 * W * sizeof(int32_t));
    uint32_t *count = calloc(W * W, sizeof(uint32_t));
    if (!s || !merges || !count) {
        free(s);
        free(merges);
        free(count);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "BPE: out of memory for %zu bytes of text", n);
    }
    for (size_t j = 0; j < n; j++) s[j] = data[j];
    int k = 0;
    for (; 256 + k < vocab && n >= 2; k++) {
        for (size_t j = 0; j + 1 < n; j++) count[(size_t)s[j] * W + (size_t)s[j + 1]]++;
        size_t best = 0;
        uint32_t bc = 0;
        for (size_t j = 0; j + 1 < n; j++) {
            size_t p = (size_t)s[j] * W + (size_t)s[j + 1];
            if (count[p] > bc || (count[p] == bc && p < best)) {
                bc = count[p];
                best = p;
            }
        }
        for (size_t j = 0; j + 1 < n; j++) count[(size_t)s[j] * W + (size_t)s[j + 1]] = 0;
        if (bc < 2) break; /* no pair repeats: a merge would not shorten anything */
        merges[2 * k] = (int32_t)(best / W);
        merges[2 * k + 1] = (int32_t)(best % W);
        n = merge_pass(s, n, merges[2 * k], merges[2 * k + 1], 256 + k);
    }
    free(s);
    free(count);
    kd_status st = kd_lm_tokenizer_from_merges(out, merges, k, err);
    free(merges);
    return st;
}

kd_status kd_lm_tokenizer_encode(const kd_lm_tokenizer *t, const uint8_t *data, size_t n, int32_t **out,
                                 size_t *n_out, kd_error *err) {
    *out = NULL;
    *n_out = 0;
    int32_t *s = malloc((n ? n : 1) * sizeof(int32_t));
    if (!s) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory encoding %zu bytes", n);
    for (size_t j = 0; j < n; j++) s[j] = data[j];
    for (int k = 0; t && k < t->n_merges && n >= 2; k++)
        n = merge_pass(s, n, t->merges[2 * k], t->merges[2 * k + 1], 256 + k);
    *out = s;
    *n_out = n;
    return KD_STATUS_OK;
}

size_t kd_lm_tokenizer_decode(const kd_lm_tokenizer *t, const int32_t *tok, size_t n, uint8_t *dst, size_t cap) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *b = kd_lm_tokenizer_token(t, tok[i], &len);
        if (w + len <= cap) memcpy(dst + w, b, len);
        w += len;
    }
    return w;
}
