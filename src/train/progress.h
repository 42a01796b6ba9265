/* Progress display for long jobs: one updating line on a terminal, plain periodic lines otherwise. */
#ifndef KD_PROGRESS_H
#define KD_PROGRESS_H
#include <stdio.h>
#include "distill/train.h"

typedef struct kd_progress {
    FILE *out;
    int enabled, tty;
    int epoch, epochs, steps, first_step;
    double t_epoch, t_last_print;
    int line_open;
} kd_progress;

void kd_progress_init(kd_progress *p, FILE *out, int enabled);
void kd_progress_epoch_start(kd_progress *p, int epoch, int epochs, int steps, int first_step);
void kd_progress_step(kd_progress *p, int step, double loss, double acc, long seen, float lr);
void kd_progress_epoch_end(kd_progress *p, double loss, double acc, const kd_eval_result *val, double sps,
                           double seconds);
void kd_progress_end_line(kd_progress *p);
#endif
