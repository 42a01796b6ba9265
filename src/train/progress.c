/* Progress display: epoch, step, loss, accuracy, samples/s and ETA. On a terminal one line is
 * redrawn in place (at most 10 times a second); otherwise a plain line every 15 s and per epoch,
 * so logs stay readable. */
#include "train/progress.h"

#include <stdio.h>
#include <unistd.h>

void kd_format_duration(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void kd_progress_init(kd_progress *p, FILE *out, int enabled) {
    p->out = out;
    p->enabled = enabled;
    p->tty = enabled && isatty(fileno(out));
    p->line_open = 0;
}

void kd_progress_epoch_start(kd_progress *p, int epoch, int epochs, int steps, int first_step) {
    p->epoch = epoch;
    p->epochs = epochs;
    p->steps = steps;
    p->first_step = first_step;
    p->t_epoch = p->t_last_print = kd_now();
}

void kd_progress_step(kd_progress *p, int step, double loss, double acc, long seen, float lr) {
    if (!p->enabled) return;
    double now = kd_now();
    int last = step == p->steps;
    if (!last && now - p->t_last_print < (p->tty ? 0.1 : 15.0)) return;
    p->t_last_print = now;
    double el = now - p->t_epoch;
    double sps = seen / (el > 0 ? el : 1e-9);
    int done = step - p->first_step;
    double eta_epoch = done > 0 ? el / done * (p->steps - step) : 0;
    double eta = eta_epoch + (p->epochs - p->epoch - 1) * (done > 0 ? el / done * p->steps : 0);
    char etab[32];
    kd_format_duration(etab, sizeof etab, eta);
    char bar[21];
    int fill = p->steps ? 20 * step / p->steps : 0;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(p->out, "%sepoch %d/%d [%s] step %d/%d  loss %.4f  acc %5.2f%%  lr %.3g  %.0f samples/s  ETA %s%s",
            p->tty ? "\r" : "", p->epoch + 1, p->epochs, bar, step, p->steps, loss, 100 * acc, (double)lr, sps, etab,
            p->tty ? "\033[K" : "\n");
    fflush(p->out);
    p->line_open = p->tty;
}

void kd_progress_end_line(kd_progress *p) {
    if (p->line_open) fputc('\n', p->out);
    p->line_open = 0;
}

void kd_progress_epoch_end(kd_progress *p, double loss, double acc, const kd_eval_result *val, double sps,
                           double seconds) {
    if (!p->enabled) return;
    if (p->tty) fputc('\r', p->out);
    fprintf(p->out, "epoch %d/%d  train loss %.4f  acc %5.2f%%", p->epoch + 1, p->epochs, loss, 100 * acc);
    if (val) fprintf(p->out, "  |  val loss %.4f  acc %5.2f%%", val->loss, 100 * val->accuracy);
    fprintf(p->out, "  |  %.0f samples/s  %.1fs%s\n", sps, seconds, p->tty ? "\033[K" : "");
    fflush(p->out);
    p->line_open = 0;
}
