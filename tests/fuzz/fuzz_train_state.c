/* libFuzzer target for the resume path of the fp32 checkpoints (kd_checkpoint_load_into with an
 * optimizer and a training state: `distill train/kd --resume` reading OUT.ckpt): tensor names and
 * shapes against a built model, the optimizer's moments and JSON, epoch, step, RNG and best
 * accuracy. The model is fixed (TINY_YAML, 170 parameters, so seeds stay small); the file is
 * loaded into it with an SGD and with an AdamW optimizer. Built and run by scripts/fuzz.sh;
 * tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/train_state (seeds: training states of
 * this model written by `distill train -m` with TINY_YAML). */
#include <stdlib.h>

#include "distill/checkpoint.h"
#include "fuzz_file.h"

#define TINY_YAML                                                                                  \
    "name: tiny\ninput: [1, 28, 28]\nlayers:\n  - {name: pool, type: maxpool, kernel: 7}\n"          \
    "  - {name: flatten, type: flatten}\n  - {name: fc, type: linear, out: 10}\n"

/* Load the file into the tiny model with an optimizer of the given type; returns whether it loaded. */
static int load_state(const char *path, kd_opt_type type) {
    kd_model *m = NULL;
    kd_error err;
    if (kd_model_from_yaml(&m, TINY_YAML, "tiny.yaml", 1, &err) != KD_STATUS_OK) abort(); /* the fixed model must build */
    kd_optim_config c;
    kd_optim_config_default(&c);
    c.type = type;
    kd_optimizer opt = {0};
    kd_train_state st = {0};
    int has_state = 0, ok = 0;
    if (kd_optimizer_init(&opt, &c, m, &err) == KD_STATUS_OK)
        ok = kd_checkpoint_load_into(path, m, &opt, &st, &has_state, &err) == KD_STATUS_OK;
    kd_optimizer_free(&opt);
    kd_model_free(m);
    return ok;
}

static int load_train_state(const char *path) {
    int sgd = load_state(path, KD_OPT_SGD);
    int adamw = load_state(path, KD_OPT_ADAMW);
    return sgd || adamw;
}

static int fuzz_train_state(const uint8_t *data, size_t size) {
    return fuzz_load_file("state", data, size, load_train_state);
}

KD_FUZZ_TARGET(fuzz_train_state)
