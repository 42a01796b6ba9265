/* Language-model checkpoints, a client of the safetensors layer (src/format/safetensors.h, which
 * does the framing, the tensor table and its validation): here only what is the LM's own, its
 * tensors (F32, the size table's names) and metadata keys (configuration, BPE merges, training
 * state); optimizer moments are extra tensors. A failed load leaves the model untouched. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/lm.h"
#include "format/safetensors.h"

kd_status kd_lm_save(const char *path, const kd_lm *m, const kd_optimizer *opt, const kd_lm_state *st, kd_error *err) {
    if (!path || !m) return kd_error_set(err, KD_STATUS_BAD_ARG, "kd_lm_save: no path or no model");
    if (opt && (opt->n != m->n_params || !opt->m || !opt->v))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: the optimizer does not belong to this model", path);
    int nblk = opt ? 3 : 1;
    const float *blk[3] = {m->params, opt ? opt->m : NULL, opt ? opt->v : NULL};
    const char *prefix[3] = {"", "optim.m.", "optim.v."};
    for (int b = 0; b < nblk; b++) {
        size_t i = kd_st_first_nonfinite(blk[b], m->n_params);
        if (i < m->n_params) {
            const char *tn = "?";
            for (int k = 0; k < m->n_tensors; k++)
                if (i >= m->tensors[k].off && i < m->tensors[k].off + m->tensors[k].n) tn = m->tensors[k].name;
            return kd_error_set(err, KD_STATUS_DIVERGED, "%s: refusing to write a checkpoint: %s%s holds %g", path,
                                prefix[b], tn, (double)blk[b][i]);
        }
    }
    kd_st_writer *w = kd_st_writer_create();
    if (!w) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    const kd_lm_config *c = &m->cfg;
    int n_merges = 0;
    const int32_t *merges = kd_lm_tokenizer_merges(m->tok, &n_merges);
    kd_st_meta(w, "format", "distill-lm");
    kd_st_meta(w, "version", n_merges ? "2" : "1");
    kd_st_metaf(w, "config", "vocab=%d,ctx=%d,layers=%d,dim=%d,heads=%d", c->vocab, c->ctx, c->layers, c->dim, c->heads);
    if (n_merges) { /* "a b a b ...": at most 11 characters per number */
        char *ms = malloc(24 * (size_t)n_merges + 1), *pos = ms;
        if (!ms) {
            kd_st_writer_free(w);
            return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
        }
        *pos = 0;
        for (int i = 0; i < 2 * n_merges; i++) pos += sprintf(pos, "%s%d", i ? " " : "", (int)merges[i]);
        kd_st_meta(w, "tokenizer", "bpe");
        kd_st_meta(w, "merges", ms);
        free(ms);
    }
    if (opt && st) {
        kd_st_metaf(w, "step", "%lld", st->step);
        kd_st_metaf(w, "rng_state", "%" PRIu64, st->rng.state);
        kd_st_metaf(w, "rng_inc", "%" PRIu64, st->rng.inc);
        kd_st_metaf(w, "adam_t", "%lld", opt->t);
    }
    for (int b = 0; b < nblk; b++)
        for (int i = 0; i < m->n_tensors; i++) {
            const kd_lm_tensor *t = &m->tensors[i];
            char name[64];
            int64_t shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
            snprintf(name, sizeof name, "%s%s", prefix[b], t->name);
            kd_st_add(w, name, "F32", t->ndim, shape, blk[b] + t->off);
        }
    kd_status s = kd_st_write(w, path, err);
    kd_st_writer_free(w);
    return s;
}

/* ---------------------------------------------------------------- reading */


/* "a b a b ...": 2 * n_merges integers, validated by kd_lm_tokenizer_from_merges. */
static kd_status parse_merges(const char *path, const char *s, int n_merges, kd_lm_tokenizer **tok, kd_error *err) {
    int32_t *mg = malloc((2 * (size_t)n_merges + 1) * sizeof(int32_t));
    if (!mg) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    int k = 0;
    while (*s && k < 2 * n_merges) {
        uint64_t v;
        const char *end = kd_st_parse_u64(s, KD_LM_BPE_MAX_VOCAB - 1, &v);
        if (!end || (*end && *end != ' ')) break;
        mg[k++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    kd_status st;
    kd_error e2;
    if (k != 2 * n_merges || *s)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"merges\" is not %d token pairs (the vocabulary "
                          "of the config minus 256)", path, n_merges);
    else if ((st = kd_lm_tokenizer_from_merges(tok, mg, n_merges, &e2)))
        kd_error_set(err, st, "%s: metadata \"merges\": %s", path, e2.msg);
    free(mg);
    return st;
}

/* "vocab=V,ctx=C,layers=L,dim=D,heads=H" as the writer prints it, each a decimal integer that fits
 * an int (kd_st_parse_u64: no wrap-around, so 4294967552 is not read as 256): NULL, or the key
 * that is missing or malformed. */
static const char *parse_config(const char *s, kd_lm_config *c) {
    static const char *const keys[] = {"vocab", "ctx", "layers", "dim", "heads"};
    int *dst[] = {&c->vocab, &c->ctx, &c->layers, &c->dim, &c->heads};
    for (int k = 0; k < 5; k++) {
        size_t n = strlen(keys[k]);
        uint64_t v;
        if ((k && *s++ != ',') || strncmp(s, keys[k], n) != 0 || s[n] != '=' ||
            !(s = kd_st_parse_u64(s + n + 1, INT_MAX, &v)))
            return keys[k];
        *dst[k] = (int)v;
    }
    return *s ? "heads" : NULL;
}

static kd_status lm_file_open(kd_st_file *f, const char *path, kd_lm_config *cfg, kd_lm_tokenizer **tok, kd_error *err) {
    memset(f, 0, sizeof *f);
    *tok = NULL;
    kd_status s = kd_st_read(f, path, err);
    if (s) return s;
    const char *fmt = kd_st_meta_get(f, "format"), *ver = kd_st_meta_get(f, "version"), *cs = kd_st_meta_get(f, "config");
    if (!fmt || strcmp(fmt, "distill-lm") != 0) {
        s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: not a Distill language model (metadata format is %s%s%s)", path,
                         fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "");
        kd_st_close(f);
        return s;
    }
    if (!ver || (strcmp(ver, "1") != 0 && strcmp(ver, "2") != 0)) {
        s = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: language-model format version %s; this build reads versions 1 "
                         "and 2", path, ver ? ver : "(missing)");
        kd_st_close(f);
        return s;
    }
    const char *bad = cs ? parse_config(cs, cfg) : NULL;
    if (!cs || bad) {
        kd_st_close(f);
        if (!cs) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"config\" is missing", path);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"config\": %s is not a decimal integer up to %d "
                            "(vocab=V,ctx=C,layers=L,dim=D,heads=H)", path, bad, INT_MAX);
    }
    kd_error e2;
    if (kd_lm_config_check(cfg, &e2)) {
        kd_st_close(f);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: metadata \"config\": %s", path, e2.msg);
    }
    if (!strcmp(ver, "2")) { /* version 2: a BPE tokenizer */
        const char *tk = kd_st_meta_get(f, "tokenizer"), *mg = kd_st_meta_get(f, "merges");
        if (!tk || strcmp(tk, "bpe") != 0 || !mg) {
            kd_st_close(f);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: version 2 needs metadata \"tokenizer\": \"bpe\" and "
                                "\"merges\"", path);
        }
        if (cfg->vocab <= 256 || cfg->vocab > KD_LM_BPE_MAX_VOCAB) {
            kd_st_close(f);
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: a BPE vocabulary of %d (must be in [257, %d])", path,
                                cfg->vocab, KD_LM_BPE_MAX_VOCAB);
        }
        if ((s = parse_merges(path, mg, cfg->vocab - 256, tok, err))) {
            kd_st_close(f);
            return s;
        }
    }
    return KD_STATUS_OK;
}

/* Copy tensor `name` (expected shape of t) from the file into dst, validating it. */
static kd_status read_tensor(const kd_st_file *f, const char *path, const char *name, const kd_lm_tensor *t, float *dst,
                             kd_error *err) {
    const kd_st_tensor *e = kd_st_find(f, name);
    if (!e) return kd_error_set(err, KD_STATUS_MISMATCH, "%s: missing tensor %s", path, name);
    if (strcmp(e->dtype, "F32") != 0) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s is not F32", path, name);
    int same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same)
        return kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s does not have the shape [%d%s%.0d] of the configuration",
                            path, name, t->shape[0], t->ndim > 1 ? "," : "", t->ndim > 1 ? t->shape[1] : 0);
    size_t k = kd_st_copy_f32(f, e, dst + t->off);
    if (k < t->n) return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: tensor %s holds NaN or inf at element %zu", path, name, k);
    return KD_STATUS_OK;
}

static kd_status load_file(const kd_st_file *f, const char *path, kd_lm *m, kd_optimizer *opt, kd_lm_state *st,
                           int *has_state, kd_error *err) {
    if (has_state) *has_state = 0;
    uint64_t step = 0, at = 0, rs = 0, ri = 0;
    int file_state = kd_st_meta_get(f, "step") != NULL;
    if (file_state && (!kd_st_meta_u64(f, "step", LLONG_MAX, &step) || !kd_st_meta_u64(f, "adam_t", LLONG_MAX, &at) ||
                       !kd_st_meta_u64(f, "rng_state", UINT64_MAX, &rs) ||
                       !kd_st_meta_u64(f, "rng_inc", UINT64_MAX, &ri) || !(ri & 1)))
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: training state in the metadata (step, adam_t, rng_state, "
                            "rng_inc) is malformed", path);
    int want = file_state && opt && st;
    int nblk = file_state ? 3 : 1;
    int n_expected = m->n_tensors * nblk;
    if (f->n != n_expected)
        return kd_error_set(err, KD_STATUS_MISMATCH, "%s: %d tensors, the configuration%s needs %d", path, f->n,
                            file_state ? " with its optimizer state" : "", n_expected);
    float *stage = malloc((size_t)nblk * m->n_params * sizeof(float));
    if (!stage) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", path);
    const char *prefix[3] = {"", "optim.m.", "optim.v."};
    kd_status s = KD_STATUS_OK;
    for (int b = 0; b < nblk && !s; b++)
        for (int i = 0; i < m->n_tensors && !s; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", prefix[b], m->tensors[i].name);
            s = read_tensor(f, path, name, &m->tensors[i], stage + (size_t)b * m->n_params, err);
        }
    if (!s) {
        memcpy(m->params, stage, m->n_params * sizeof(float));
        if (want) {
            memcpy(opt->m, stage + m->n_params, m->n_params * sizeof(float));
            memcpy(opt->v, stage + 2 * m->n_params, m->n_params * sizeof(float));
            opt->t = (long long)at;
            st->step = (long long)step;
            st->rng.state = rs;
            st->rng.inc = ri;
            if (has_state) *has_state = 1;
        }
    }
    free(stage);
    return s;
}

/* Before a model is allocated from the file's configuration: its largest tensors (the embeddings
 * and every layer's MLP matrix) must be in the file, so a few bytes of metadata cannot make the
 * loader allocate and initialise gigabytes. */
static kd_status check_config_tensors(const kd_st_file *f, const char *path, const kd_lm_config *c, kd_error *err) {
    for (int l = -2; l < c->layers; l++) {
        char name[64];
        int64_t rows = l == -2 ? c->vocab : l == -1 ? c->ctx : 4 * (int64_t)c->dim;
        if (l >= 0) snprintf(name, sizeof name, "h.%d.mlp.fc.weight", l);
        else snprintf(name, sizeof name, "%s", l == -2 ? "wte" : "wpe");
        const kd_st_tensor *t = kd_st_find(f, name);
        if (!t || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != c->dim)
            return kd_error_set(err, KD_STATUS_MISMATCH, "%s: tensor %s [%lld,%d] of the configuration is %s", path,
                                name, (long long)rows, c->dim, t ? "of another shape" : "missing");
    }
    return KD_STATUS_OK;
}

kd_status kd_lm_load(const char *path, kd_lm **out, kd_error *err) {
    *out = NULL;
    kd_st_file f;
    kd_lm_config c;
    kd_lm_tokenizer *tok = NULL;
    kd_status s = lm_file_open(&f, path, &c, &tok, err);
    if (s) return s;
    kd_lm *m = NULL;
    s = check_config_tensors(&f, path, &c, err);
    if (!s) s = kd_lm_create(&m, &c, 0, err);
    if (!s) s = load_file(&f, path, m, NULL, NULL, NULL, err);
    if (!s) s = kd_lm_set_tokenizer(m, tok, err);
    kd_st_close(&f);
    if (s) {
        kd_lm_tokenizer_free(tok);
        kd_lm_free(m);
        return s;
    }
    *out = m;
    return KD_STATUS_OK;
}

kd_status kd_lm_load_into(const char *path, kd_lm *m, kd_optimizer *opt, kd_lm_state *st, int *has_state,
                          kd_error *err) {
    kd_st_file f;
    kd_lm_config c;
    kd_lm_tokenizer *tok = NULL;
    kd_status s = lm_file_open(&f, path, &c, &tok, err);
    if (s) return s;
    int same_tok = kd_lm_tokenizer_equal(tok, m->tok);
    kd_lm_tokenizer_free(tok);
    if (memcmp(&c, &m->cfg, sizeof c) == 0 && !same_tok) {
        kd_st_close(&f);
        return kd_error_set(err, KD_STATUS_MISMATCH, "%s: holds a model with another tokenizer (other BPE merges) than "
                            "this run's", path);
    }
    if (memcmp(&c, &m->cfg, sizeof c) != 0) {
        kd_st_close(&f);
        return kd_error_set(err, KD_STATUS_MISMATCH,
                            "%s: holds a model with vocab %d, ctx %d, layers %d, dim %d, heads %d; this run has "
                            "vocab %d, ctx %d, layers %d, dim %d, heads %d", path, c.vocab, c.ctx, c.layers, c.dim,
                            c.heads, m->cfg.vocab, m->cfg.ctx, m->cfg.layers, m->cfg.dim, m->cfg.heads);
    }
    if (opt && (!opt->m || !opt->v || opt->n != m->n_params)) {
        kd_st_close(&f);
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: the optimizer does not belong to this model", path);
    }
    s = load_file(&f, path, m, opt, st, has_state, err);
    kd_st_close(&f);
    return s;
}
