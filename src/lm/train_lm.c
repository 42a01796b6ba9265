/* Training and distillation of the language models: text corpora split into training text and a
 * held-out tail, random windows as batches, the shared optimizer (src/train/optim.c: AdamW,
 * decoupled weight decay, torch semantics) with global-norm clipping and its warmup + cosine
 * schedule (kd_schedule_lr, in steps), the loss list (CE, forward/reverse KL, hidden-state cosine),
 * checkpoints with resume, divergence checks, the shared progress display, held-out bits per byte. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
#include "distill/fileio.h"
#include "distill/lm.h"
#include "train/data_parallel.h"
#include "train/progress.h"

/* ---------------------------------------------------------------- loss terms */

static const char *const kind_names[] = {"ce", "fkl", "rkl", "cosine"};

/* The keys of each kind, for the shared "KIND:key=value" parser (src/core/spec.c). */
#define N_KINDS (int)(sizeof kind_names / sizeof kind_names[0])
static const kd_spec_key term_keys[] = {
    {"weight", (1u << N_KINDS) - 1, KD_SPEC_FLOAT, offsetof(kd_lm_loss_term, weight), 0, 1e6, 0},
    {"T", 1u << KD_LM_LOSS_FKL | 1u << KD_LM_LOSS_RKL, KD_SPEC_FLOAT, offsetof(kd_lm_loss_term, T), 0.05, 100, 0},
};

static void term_defaults(void *out, int kind) {
    kd_lm_loss_term *t = out;
    memset(t, 0, sizeof *t);
    t->kind = (kd_lm_loss_kind)kind;
    t->weight = 1.f;
    t->T = 1.f;
}

static const kd_spec_table term_spec = {"loss", kind_names, N_KINDS, term_keys,
                                        (int)(sizeof term_keys / sizeof term_keys[0]), "see distill lm kd --help",
                                        term_defaults};

kd_status kd_lm_loss_term_parse(kd_lm_loss_term *t, const char *spec, kd_error *err) {
    return kd_spec_parse(&term_spec, spec, t, err);
}

void kd_lm_loss_term_format(const kd_lm_loss_term *t, char *buf, size_t n) {
    if (t->kind == KD_LM_LOSS_FKL || t->kind == KD_LM_LOSS_RKL)
        snprintf(buf, n, "%s:T=%g,weight=%g", kind_names[t->kind], (double)t->T, (double)t->weight);
    else
        snprintf(buf, n, "%s:weight=%g", kind_names[t->kind], (double)t->weight);
}

/* ---------------------------------------------------------------- text */

kd_status kd_lm_text_load(kd_lm_text *t, const char *path, double holdout, int ctx, kd_error *err) {
    memset(t, 0, sizeof *t);
    if (!(holdout >= 0 && holdout <= 0.5))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "held-out fraction must be in [0, 0.5] (got %g)", holdout);
    char *d = NULL;
    size_t n = 0;
    kd_status s = kd_read_file(path, &d, &n, err);
    if (s) return s;
    size_t n_val = (size_t)((double)n * holdout);
    if (n < 2 || n - n_val < (size_t)ctx + 2) {
        free(d);
        return kd_error_set(err, KD_STATUS_BAD_FILE,
                            "%s: %zu bytes of text, %zu for training after the held-out %.0f%%: too short for "
                            "a context of %d (needs at least %d)", path, n, n - n_val, 100 * holdout, ctx, ctx + 2);
    }
    if (holdout > 0 && n_val < 2) n_val = 2;
    t->data = (uint8_t *)d;
    t->n = n;
    t->n_train = n - n_val;
    return KD_STATUS_OK;
}

kd_status kd_lm_text_add_train(kd_lm_text *t, const char *path, kd_error *err) {
    char *d = NULL;
    size_t n = 0;
    kd_status s = kd_read_file(path, &d, &n, err);
    if (s) return s;
    if (n == 0) {
        free(d);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: empty text", path);
    }
    uint8_t *nd = realloc(t->data, t->n + n);
    if (!nd) {
        free(d);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory for %zu more bytes of text", path, n);
    }
    /* training | new | held out */
    memmove(nd + t->n_train + n, nd + t->n_train, t->n - t->n_train);
    memcpy(nd + t->n_train, d, n);
    free(d);
    t->data = nd;
    t->n += n;
    t->n_train += n;
    return KD_STATUS_OK;
}

void kd_lm_text_free(kd_lm_text *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- evaluation */

kd_status kd_lm_evaluate(kd_lm *m, const uint8_t *bytes, size_t n, int batch, int seq, kd_lm_eval *res, kd_error *err) {
    memset(res, 0, sizeof *res);
    if (seq > m->cfg.ctx) /* refused, as training refuses it, rather than quietly evaluated at ctx */
        return kd_error_set(err, KD_STATUS_BAD_ARG, "sequence %d is longer than the model's context %d", seq, m->cfg.ctx);
    if (seq <= 0) seq = m->cfg.ctx;
    if (batch < 1) batch = 1;
    if (n < 2) return kd_error_set(err, KD_STATUS_BAD_ARG, "no held-out text to evaluate (%zu bytes)", n);
    kd_status s = kd_lm_prepare(m, batch, seq, m->grads != NULL, err);
    if (s) return s;
    double t0 = kd_now(), total = 0;
    long long count = 0;
    int32_t *data = NULL; /* the tokens of the bytes */
    size_t n_bytes = n;
    s = kd_lm_tokenizer_encode(m->tok, bytes, n_bytes, &data, &n, err);
    if (s) return s;
    if (n < 2) {
        free(data);
        return kd_error_set(err, KD_STATUS_BAD_ARG, "no held-out text to evaluate (%zu bytes, %zu token)", n_bytes, n);
    }
    int32_t *x = malloc((size_t)batch * seq * sizeof(int32_t)), *y = malloc((size_t)batch * seq * sizeof(int32_t));
    if (!x || !y) {
        free(x);
        free(y);
        free(data);
        return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    size_t pos = 0;
    /* under mpirun the batches are dealt round-robin to the ranks and the sums reduced */
    int rank = kd_dist_rank(), ranks = kd_dist_size();
    long long bi = 0;
    while (pos + 1 < n) {
        size_t left = n - 1 - pos; /* predictable positions */
        int T = left >= (size_t)seq ? seq : (int)left;
        int B = 0;
        /* full windows share a batch; a last, shorter window goes alone */
        while (B < batch && pos + 1 < n && n - 1 - pos >= (size_t)T) {
            for (int t = 0; t < T; t++) {
                x[B * T + t] = data[pos + t];
                y[B * T + t] = data[pos + t + 1];
            }
            pos += (size_t)T;
            B++;
            if (T < seq) break;
        }
        if (bi++ % ranks != rank) continue;
        kd_lm_forward(m, x, B, T);
        double l = kd_lm_crossentropy_forward(m->a.probs, m->a.logits, y, B * T, m->cfg.vocab, m->threads);
        total += l * B * T;
        count += (long long)B * T;
    }
    if (ranks > 1) {
        double sums[2] = {total, (double)count};
        if ((s = kd_dist_sum_f64(sums, 2, err))) {
            free(x); free(y); free(data);
            return s;
        }
        total = sums[0], count = (long long)sums[1];
    }
    size_t first;
    kd_lm_tokenizer_token(m->tok, data[0], &first); /* the one token nothing predicts */
    free(x);
    free(y);
    free(data);
    res->tokens = count;
    res->bytes = (long long)(n_bytes - first);
    res->loss = total / (double)count;
    res->bpb = total / log(2.0) / (double)res->bytes;
    res->ppl = exp(res->loss);
    res->seconds = kd_now() - t0;
    if (!isfinite(res->loss))
        return kd_error_set(err, KD_STATUS_DIVERGED, "evaluation: the held-out loss is %g (the model holds NaN or inf?)",
                            res->loss);
    return KD_STATUS_OK;
}

/* ---------------------------------------------------------------- init from teacher */

kd_status kd_lm_init_from_teacher(kd_lm *s, const kd_lm *t, kd_error *err) {
    const kd_lm_config *a = &s->cfg, *b = &t->cfg;
    if (a->vocab != b->vocab || a->dim != b->dim || a->heads != b->heads || a->ctx > b->ctx || a->layers > b->layers)
        return kd_error_set(err, KD_STATUS_MISMATCH,
                            "--init-from-teacher needs the same vocab, dim and heads, ctx and layers at most the "
                            "teacher's (student vocab %d dim %d heads %d ctx %d layers %d; teacher %d %d %d %d %d)",
                            a->vocab, a->dim, a->heads, a->ctx, a->layers, b->vocab, b->dim, b->heads, b->ctx, b->layers);
    if (!kd_lm_tokenizer_equal(s->tok, t->tok))
        return kd_error_set(err, KD_STATUS_MISMATCH, "--init-from-teacher needs the teacher's tokenizer (its embeddings "
                            "are of its tokens)");
    int k = b->layers / a->layers;
    memcpy(s->params + s->tensors[0].off, t->params + t->tensors[0].off, s->tensors[0].n * sizeof(float));
    memcpy(s->params + s->tensors[1].off, t->params + t->tensors[1].off, s->tensors[1].n * sizeof(float)); /* first ctx rows */
    for (int l = 0; l < a->layers; l++) {
        kd_lm_layer ps, pt;
        kd_lm_layer_ptrs(s, s->params, l, &ps);
        kd_lm_layer_ptrs(t, t->params, l * k, &pt);
        for (int j = 0; j < KD_LM_NLT; j++)
            memcpy(ps.w[j], pt.w[j], s->tensors[2 + j].n * sizeof(float));
    }
    for (int j = 1; j <= 2; j++)
        memcpy(s->params + s->tensors[s->n_tensors - j].off, t->params + t->tensors[t->n_tensors - j].off,
               s->tensors[s->n_tensors - j].n * sizeof(float));
    return KD_STATUS_OK;
}

/* ---------------------------------------------------------------- training */

void kd_lm_train_config_default(kd_lm_train_config *c) {
    *c = (kd_lm_train_config){.steps = 1000, .batch = 16, .threads = 1, .seed = 1, .warmup_steps = 100,
                              .clip = 1.f, .ckpt_every = 500, .eval_bytes = 65536, .progress = 1};
    /* AdamW as GPT-style models are trained: beta2 0.95, decay 0.1, cosine down to 1e-4 */
    kd_optim_config_default(&c->optim);
    c->optim.type = KD_OPT_ADAMW, c->optim.lr = 1e-3f, c->optim.min_lr = 1e-4f;
    c->optim.beta1 = 0.9f, c->optim.beta2 = 0.95f, c->optim.weight_decay = 0.1f;
    c->optim.sched = KD_SCHED_COSINE;
}

kd_status kd_lm_train(kd_lm *m, const kd_lm_text *text, const kd_lm_train_config *cfg, kd_lm_train_result *res,
                      kd_error *err) {
    memset(res, 0, sizeof *res);
    res->resumed_step = -1;
    int B = cfg->batch, T = cfg->seq > 0 ? cfg->seq : m->cfg.ctx, V = m->cfg.vocab, C = m->cfg.dim;
    if (T > m->cfg.ctx) return kd_error_set(err, KD_STATUS_BAD_ARG, "sequence %d is longer than the context %d", T, m->cfg.ctx);
    if (cfg->steps < 1 || B < 1) return kd_error_set(err, KD_STATUS_BAD_ARG, "steps and batch must be >= 1");
    if (V < kd_lm_tokenizer_vocab(m->tok))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "the tokenizer has %d tokens, the model's vocabulary %d",
                            kd_lm_tokenizer_vocab(m->tok), V);
    if (!(cfg->optim.lr > 0) || !isfinite(cfg->optim.lr))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "learning rate must be > 0 (got %g)", (double)cfg->optim.lr);
    int need_teacher = 0, need_hidden = 0;
    for (int i = 0; i < cfg->n_terms; i++) {
        if (cfg->terms[i].kind != KD_LM_LOSS_CE) need_teacher = 1;
        if (cfg->terms[i].kind == KD_LM_LOSS_COSINE) need_hidden = 1;
    }
    kd_lm *tm = cfg->teacher;
    if (need_teacher && !tm) return kd_error_set(err, KD_STATUS_BAD_ARG, "the loss list needs a teacher");
    if (tm && (tm->cfg.vocab != V || tm->cfg.ctx < T))
        return kd_error_set(err, KD_STATUS_MISMATCH, "teacher (vocab %d, ctx %d) does not fit the student (vocab %d, "
                            "sequence %d)", tm->cfg.vocab, tm->cfg.ctx, V, T);
    if (tm && !kd_lm_tokenizer_equal(tm->tok, m->tok))
        return kd_error_set(err, KD_STATUS_MISMATCH, "teacher and student must share the tokenizer: the teacher's is %s "
                            "(%d tokens), the student's %s (%d tokens)", tm->tok ? "BPE" : "bytes",
                            kd_lm_tokenizer_vocab(tm->tok), m->tok ? "BPE" : "bytes", kd_lm_tokenizer_vocab(m->tok));
    /* the training split as tokens (the held-out tail is encoded by kd_lm_evaluate, on its own) */
    int32_t *d = NULL;
    size_t n_tok = 0;
    kd_status s = kd_lm_tokenizer_encode(m->tok, text->data, text->n_train, &d, &n_tok, err);
    if (s) return s;
    if (n_tok < (size_t)T + 2) {
        free(d);
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%zu bytes of training text (%zu tokens): too short for sequence %d",
                            text->n_train, n_tok, T);
    }
    /* the progress line shows the training CE in bits per byte: bits per token * tokens per byte */
    double tok_per_byte = (double)n_tok / (double)text->n_train;
    res->bytes_per_token = 1.0 / tok_per_byte;

    if (need_hidden && tm->cfg.dim != C) {
        free(d);
        return kd_error_set(err, KD_STATUS_MISMATCH, "the cosine loss compares hidden states of equal size: student dim "
                            "%d, teacher dim %d", C, tm->cfg.dim);
    }
    /* the run's thread count on both models' ops, theirs again afterwards */
    int old_threads = m->threads, old_teacher_threads = tm ? tm->threads : 0;
    if (cfg->threads > 0) {
        kd_lm_set_threads(m, cfg->threads);
        if (tm) kd_lm_set_threads(tm, cfg->threads);
    }
    s = kd_lm_prepare(m, B, T, 1, err);
    if (!s && tm && need_teacher) s = kd_lm_prepare(tm, B, T, 0, err);
    size_t N = (size_t)B * T;
    int32_t *x = malloc(N * sizeof(int32_t)), *y = malloc(N * sizeof(int32_t));
    float *pt = need_teacher ? malloc(N * (size_t)V * sizeof(float)) : NULL;
    float *dh = need_hidden ? malloc(N * (size_t)C * sizeof(float)) : NULL;
    kd_optimizer opt = {0};
    if (!s) s = kd_optimizer_init_n(&opt, &cfg->optim, m->n_params, err);
    if (!s && (!x || !y || (need_teacher && !pt) || (need_hidden && !dh)))
        s = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    /* kd_schedule_lr counts in its caller's unit (epochs for kd_train): here optimizer steps, so the
     * warmup is warmup_steps long */
    kd_optim_config sched = cfg->optim;
    sched.warmup_epochs = cfg->warmup_steps;
    kd_lm_state st = {0};
    kd_rng_seed(&st.rng, cfg->seed, 0x7478);
    if (!s && cfg->resume && cfg->ckpt_path && access(cfg->ckpt_path, F_OK) == 0) {
        int has = 0;
        s = kd_lm_load_into(cfg->ckpt_path, m, &opt, &st, &has, err);
        if (!s && !has)
            s = kd_error_set(err, KD_STATUS_MISMATCH, "%s: holds no training state to resume", cfg->ckpt_path);
        if (!s) res->resumed_step = st.step;
    }
    kd_progress pr;
    kd_progress_init(&pr, cfg->out ? cfg->out : stderr, cfg->progress && kd_dist_rank() == 0);
    if (!s && res->resumed_step >= 0)
        kd_progress_message(&pr, "resumed from %s at step %lld\n", cfg->ckpt_path, st.step);
    long long first = st.step;
    kd_progress_run_start(&pr, first, cfg->steps);
    kd_dist_barrier(); /* the ranks' loading is not training time */
    double tokens = 0, t_start = kd_now(), last_ce = 0, comm0 = kd_dist_comm_seconds();
    size_t span = n_tok - (size_t)T - 1; /* window starts in [0, span] */
    size_t eval_n = text->n - text->n_train;
    if (cfg->eval_bytes && eval_n > cfg->eval_bytes) eval_n = cfg->eval_bytes;
    /* Data parallelism (mpirun): every rank draws all B window starts of the global batch and
     * trains on its contiguous share [lo, lo + Bl) of them; the share's gradients, scaled by Bl / B
     * (the losses are means over its tokens), are summed over the ranks (src/train/data_parallel.h). */
    int ranks = kd_dist_size(), lo = 0, Bl = B;
    if (ranks > 1) kd_dp_share(B, &lo, &Bl);
    size_t Nl = (size_t)Bl * T; /* this rank's tokens per step */
    if (!s && ranks > 1 && Bl < 1)
        s = kd_error_set(err, KD_STATUS_BAD_ARG, "--batch %d is the global batch, shared by the %d ranks: it needs at "
                         "least one sequence per rank", B, ranks);
    while (!s && st.step < cfg->steps) {
        for (int b = 0; b < B; b++) {
            size_t o = span ? (size_t)kd_rng_u32(&st.rng) % (span + 1) : 0;
            if (span > UINT32_MAX) o = (((size_t)kd_rng_u32(&st.rng) << 32) | kd_rng_u32(&st.rng)) % (span + 1);
            if (b < lo || b >= lo + Bl) continue;
            for (int t = 0; t < T; t++) {
                x[(b - lo) * T + t] = d[o + t];
                y[(b - lo) * T + t] = d[o + t + 1];
            }
        }
        kd_lm_forward(m, x, Bl, T);
        if (need_teacher) kd_lm_forward(tm, x, Bl, T);
        memset(m->g.dlogits, 0, Nl * V * sizeof(float));
        double ce = kd_lm_crossentropy_forward(m->a.probs, m->a.logits, y, (int)Nl, V, m->threads), loss = 0;
        float pt_T = -1.f;
        for (int i = 0; i < cfg->n_terms; i++) {
            const kd_lm_loss_term *lt = &cfg->terms[i];
            switch (lt->kind) {
            case KD_LM_LOSS_CE:
                kd_lm_crossentropy_backward(m->g.dlogits, m->a.probs, y, (int)Nl, V, lt->weight, m->threads);
                loss += lt->weight * ce;
                break;
            case KD_LM_LOSS_FKL:
            case KD_LM_LOSS_RKL:
                if (pt_T != lt->T) kd_lm_softmax(pt, tm->a.logits, (int)Nl, V, lt->T, m->threads);
                pt_T = lt->T;
                loss += lt->weight * (lt->kind == KD_LM_LOSS_FKL
                                          ? kd_lm_forward_kl(m->g.dlogits, m->a.logits, pt, (int)Nl, V, lt->T, lt->weight)
                                          : kd_lm_reverse_kl(m->g.dlogits, m->a.logits, pt, (int)Nl, V, lt->T, lt->weight));
                break;
            case KD_LM_LOSS_COSINE:
                memset(dh, 0, Nl * C * sizeof(float));
                loss += lt->weight * kd_lm_cosine_loss(dh, m->a.lnf, tm->a.lnf, (int)Nl, C, lt->weight);
                break;
            }
        }
        if (cfg->n_terms == 0) {
            kd_lm_crossentropy_backward(m->g.dlogits, m->a.probs, y, (int)Nl, V, 1.f, m->threads);
            loss = ce;
        }
        kd_lm_zero_grad(m);
        kd_lm_backward(m, need_hidden ? dh : NULL);
        int stop = cfg->stop && *cfg->stop;
        if (ranks > 1) {
            double stats[3] = {loss * Bl, ce * Bl, stop};
            if ((s = kd_dp_sum_grads(m->grads, m->n_params, (float)Bl / (float)B, stats, 3, err))) break;
            loss = stats[0] / B, ce = stats[1] / B, stop = stats[2] > 0;
        }
        double norm2 = 0;
        for (size_t i = 0; i < m->n_params; i++) norm2 += (double)m->grads[i] * m->grads[i];
        double norm = sqrt(norm2);
        float lr = kd_schedule_lr(&sched, (double)st.step + 1, cfg->steps);
        if (!isfinite(loss) || !isfinite(norm)) {
            kd_progress_end_line(&pr);
            s = kd_error_set(err, KD_STATUS_DIVERGED,
                             "training diverged at step %lld: loss %g, gradient norm %g (lr %.3g)%s%s; try a lower "
                             "--lr or --clip", st.step + 1, loss, norm, (double)lr,
                             cfg->ckpt_path ? "; the last good state is in " : "", cfg->ckpt_path ? cfg->ckpt_path : "");
            break;
        }
        if (cfg->clip > 0 && norm > cfg->clip) {
            float k = (float)(cfg->clip / norm);
            for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= k;
        }
        kd_optimizer_begin_step(&opt); /* AdamW, decoupled decay on the tensors marked decay */
        for (int i = 0; i < m->n_tensors; i++)
            kd_optimizer_update(&opt, m->params, m->grads, m->tensors[i].off, m->tensors[i].n, m->tensors[i].decay, lr);
        st.step++;
        tokens += (double)N;
        last_ce = ce;
        res->last_loss = loss;
        kd_progress_run_step(&pr, st.step, tokens, "tok", "loss %.4f  ce %.4f (%.3f bits/byte)  lr %.2e", loss, ce,
                             ce * tok_per_byte / log(2.0), (double)lr);
        int save = cfg->ckpt_path && (stop || st.step == cfg->steps || (cfg->ckpt_every > 0 && st.step % cfg->ckpt_every == 0));
        if (save && ranks > 1) s = kd_dp_check_same(m->params, m->n_params, "the language model", err);
        if (!s && save && kd_dist_rank() == 0) /* the ranks' states are identical: one writer */
            s = kd_lm_save(cfg->ckpt_path, m, &opt, &st, err);
        if (!s && cfg->eval_every > 0 && st.step % cfg->eval_every == 0 && st.step != cfg->steps && eval_n >= 2) {
            kd_lm_eval ev;
            s = kd_lm_evaluate(m, text->data + text->n_train, eval_n, B, T, &ev, err);
            if (!s)
                kd_progress_message(&pr, "step %lld: held-out %.4f bits/byte (perplexity %.3f) on %lld bytes\n",
                                    st.step, ev.bpb, ev.ppl, ev.tokens);
        }
        if (!s && stop) {
            kd_progress_end_line(&pr);
            s = kd_error_set(err, KD_STATUS_INTERRUPTED, "interrupted at step %lld%s%s", st.step,
                             cfg->ckpt_path ? "; state saved to " : "", cfg->ckpt_path ? cfg->ckpt_path : "");
        }
    }
    (void)last_ce;
    res->seconds = kd_now() - t_start;
    res->comm_seconds = kd_dist_comm_seconds() - comm0;
    res->steps_run = st.step - first;
    res->tokens_per_sec = res->seconds > 0 ? tokens / res->seconds : 0;
    res->ms_per_step = res->steps_run ? 1e3 * res->seconds / (double)res->steps_run : 0;
    kd_progress_end_line(&pr);
    if (!s && eval_n >= 2) {
        s = kd_lm_evaluate(m, text->data + text->n_train, text->n - text->n_train, B, T, &res->val, err);
    }
    free(d);
    free(x);
    free(y);
    free(pt);
    free(dh);
    kd_optimizer_free(&opt);
    m->threads = old_threads;
    if (tm) tm->threads = old_teacher_threads;
    return s;
}
