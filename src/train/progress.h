/* Progress display for long jobs: one updating line on a terminal, plain periodic lines otherwise.
 * Epoch runs (kd_train) and step runs (the language models' kd_lm_train) share it. */
#ifndef KD_PROGRESS_H
#define KD_PROGRESS_H
#include <stdio.h>
#include "distill/train.h"

typedef struct kd_progress {
    FILE *out;
    int enabled, tty;
    int epoch, epochs;
    long long steps, first_step; /* of the epoch (epoch runs) or of the whole run (step runs) */
    double t_epoch, t_last_print;
    int line_open;
} kd_progress;

void kd_progress_init(kd_progress *p, FILE *out, int enabled);
void kd_progress_epoch_start(kd_progress *p, int epoch, int epochs, int steps, int first_step);
void kd_progress_step(kd_progress *p, int step, double loss, double acc, long seen, float lr);
void kd_progress_epoch_end(kd_progress *p, double loss, double acc, const kd_eval_result *val, double sps,
                           double seconds);
void kd_progress_end_line(kd_progress *p);

/* Step runs: steps counted over the whole run (resumed at first_step); the first step is shown at once. */
void kd_progress_run_start(kd_progress *p, long long first_step, long long steps);
/* "step S/N [bar] <fmt ...>  R <unit>/s  ETA e", R = count / elapsed (count: tokens so far). */
void kd_progress_run_step(kd_progress *p, long long step, double count, const char *unit, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A message on its own line(s) (fmt ends with its newline), after closing an open progress line. */
void kd_progress_message(kd_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
