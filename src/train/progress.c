/* Progress display: epoch or step, loss, accuracy or bits per byte, samples/s or tokens/s, and ETA.
 * On a terminal one line is redrawn in place (at most 10 times a second); otherwise a plain line
 * every 15 s and at the end of an epoch or run, so logs stay readable. */
#include "train/progress.h"

#include <stdarg.h>
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

/* Whether a line is due at *now: the last one always, else at most every 0.1 s on a terminal and
 * every 15 s in a log. */
static int due(kd_progress *p, int last, double *now) {
    *now = kd_now();
    if (!last && *now - p->t_last_print < (p->tty ? 0.1 : 15.0)) return 0;
    p->t_last_print = *now;
    return 1;
}

/* "<head> [bar] <body>  R <unit>/s  ETA e", in place on a terminal (left open), else a plain line. */
static void show(kd_progress *p, double now, long long step, const char *head, const char *body, double count,
                 const char *unit) {
    double el = now - p->t_epoch;
    double rate = count / (el > 0 ? el : 1e-9);
    long long done = step - p->first_step;
    double eta_epoch = done > 0 ? el / done * (p->steps - step) : 0;
    double eta = eta_epoch + (p->epochs - p->epoch - 1) * (done > 0 ? el / done * p->steps : 0);
    char etab[32];
    kd_format_duration(etab, sizeof etab, eta);
    char bar[21];
    long long fill = p->steps ? 20 * step / p->steps : 0;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(p->out, "%s%s [%s] %s  %.0f %s/s  ETA %s%s", p->tty ? "\r" : "", head, bar, body, rate, unit, etab,
            p->tty ? "\033[K" : "\n");
    fflush(p->out);
    p->line_open = p->tty;
}

void kd_progress_step(kd_progress *p, int step, double loss, double acc, long seen, float lr) {
    double now;
    if (!p->enabled || !due(p, step == p->steps, &now)) return;
    char head[64], body[160];
    snprintf(head, sizeof head, "epoch %d/%d", p->epoch + 1, p->epochs);
    snprintf(body, sizeof body, "step %d/%lld  loss %.4f  acc %5.2f%%  lr %.3g", step, p->steps, loss, 100 * acc,
             (double)lr);
    show(p, now, step, head, body, (double)seen, "samples");
}

void kd_progress_run_start(kd_progress *p, long long first_step, long long steps) {
    p->epoch = 0;
    p->epochs = 1;
    p->steps = steps;
    p->first_step = first_step;
    p->t_epoch = kd_now();
    p->t_last_print = 0;
}

void kd_progress_run_step(kd_progress *p, long long step, double count, const char *unit, const char *fmt, ...) {
    double now;
    if (!p->enabled || !due(p, step == p->steps, &now)) return;
    char head[64], body[256];
    snprintf(head, sizeof head, "step %lld/%lld", step, p->steps);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    show(p, now, step, head, body, count, unit);
}

void kd_progress_message(kd_progress *p, const char *fmt, ...) {
    if (!p->enabled) return;
    kd_progress_end_line(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fflush(p->out);
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
