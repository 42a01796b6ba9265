/* libFuzzer target for the command line's little languages (src/core/spec.c and its tables): a
 * loss term of `distill kd --loss` and of a run file's loss list (kd_loss_term_parse), whose
 * formatted form (kd_loss_term_format, written to reports and checkpoints) must parse again; a
 * loss term of `distill lm kd --loss` (kd_lm_loss_term_parse); and a layer map of
 * `--init-from-teacher` (kd_init_from_teacher, between two mlp-s). Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/spec. */
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "distill/lm.h"
#include "fuzz_file.h"

static int fuzz_spec(const uint8_t *data, size_t size) {
    char *spec = malloc(size + 1);
    if (!spec) return 0;
    memcpy(spec, data, size);
    spec[size] = 0;
    kd_error err;
    kd_loss_term t;
    int ok = kd_loss_term_parse(&t, spec, &err) == KD_STATUS_OK;
    if (ok) {
        char text[512];
        kd_loss_term again;
        kd_loss_term_format(&t, text, sizeof text);
        if (kd_loss_term_parse(&again, text, &err) != KD_STATUS_OK || again.kind != t.kind) abort();
    }
    kd_lm_loss_term lt;
    ok |= kd_lm_loss_term_parse(&lt, spec, &err) == KD_STATUS_OK;
    static kd_model *student, *teacher; /* built once: the map is what varies */
    if (!student && (kd_model_create(&student, "mlp-s", 1, &err) || kd_model_create(&teacher, "mlp-s", 2, &err)))
        abort();
    char report[256];
    ok |= kd_init_from_teacher(student, teacher, spec, report, sizeof report, &err) == KD_STATUS_OK;
    free(spec);
    return ok;
}

KD_FUZZ_TARGET(fuzz_spec)
