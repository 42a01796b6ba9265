/* libFuzzer target for the language models' text input and byte-level BPE tokenizer (src/lm):
 * the input's first byte picks what the rest is. Even: a text file (`lm train/kd/eval --text`,
 * `--mix`), read with kd_lm_text_load (ctx 8, 5% held out) and kd_lm_text_add_train, then a
 * tokenizer learnt on its training split (kd_lm_tokenizer_train, vocabulary 256 + the second
 * byte % 64). Odd: a merge list (int32 pairs, as a checkpoint's "merges" holds them) through
 * kd_lm_tokenizer_from_merges. Either tokenizer must encode then decode the text back to the same
 * bytes. Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/lm_text. */
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"
#include "fuzz_file.h"

/* Encode then decode data with t: the bytes must come back (a broken tokenizer aborts). */
static void lm_text_roundtrip(const kd_lm_tokenizer *t, const uint8_t *data, size_t n) {
    int32_t *tok = NULL;
    size_t n_tok = 0;
    kd_error err;
    if (kd_lm_tokenizer_encode(t, data, n, &tok, &n_tok, &err) != KD_STATUS_OK) return;
    uint8_t *back = malloc(n ? n : 1);
    if (back) {
        if (kd_lm_tokenizer_decode(t, tok, n_tok, back, n) != n || memcmp(back, data, n) != 0) abort();
        free(back);
    }
    free(tok);
}

static int fuzz_lm_text(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    kd_error err;
    kd_lm_tokenizer *t = NULL;
    if (data[0] & 1) { /* a merge list */
        size_t n_merges = (size - 1) / 8;
        int32_t *merges = malloc(n_merges * 8 + 1);
        if (!merges) return 0;
        memcpy(merges, data + 1, n_merges * 8);
        int ok = kd_lm_tokenizer_from_merges(&t, merges, (int)n_merges, &err) == KD_STATUS_OK;
        free(merges);
        if (ok) {
            static const uint8_t sample[] = "In the beginning God created the heaven and the earth.\n\x00\xff";
            lm_text_roundtrip(t, sample, sizeof sample - 1);
            kd_lm_tokenizer_free(t);
        }
        return ok;
    }
    int vocab = 256 + data[1] % 64;
    const char *path = fuzz_file("lm_text", data + 2, size - 2);
    if (!path) return 0;
    kd_lm_text text;
    int ok = kd_lm_text_load(&text, path, 0.05, 8, &err) == KD_STATUS_OK;
    if (ok) {
        ok = kd_lm_text_add_train(&text, path, &err) == KD_STATUS_OK; /* the same file as --mix */
        if (ok && text.n != 2 * (size - 2)) abort();
        if (ok && kd_lm_tokenizer_train(&t, text.data, text.n_train, vocab, &err) == KD_STATUS_OK) {
            lm_text_roundtrip(t, text.data, text.n);
            kd_lm_tokenizer_free(t);
        }
        kd_lm_text_free(&text);
    }
    unlink(path);
    return ok;
}

KD_FUZZ_TARGET(fuzz_lm_text)
