/* The data options every command with --data takes (--data-format, --channels, --size, --fit,
 * --test-fraction, --split-seed, --label-column, --skip-bad), parsed here once into a kd_data_opts,
 * and the one loader of a data split the commands share (kd_cli_load_data). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int kd_cli_parse_data_opt(const char *cmd, int c, const char *arg, kd_data_opts *o) {
    const char *where = kd_cli_config_where(arg);
    switch (c) {
    case KD_CLI_O_DATA_FORMAT: {
        kd_data_format f = kd_data_format_parse(arg);
        if (f == KD_DATA_FORMAT_COUNT)
            return kd_cli_usage_error(cmd, "%s--data-format must be auto, idx, images, cifar, numpy or csv, got '%s'",
                                      where, arg), -1;
        o->format = f;
        return 1;
    }
    case KD_CLI_O_CHANNELS:
        if (strcmp(arg, "1") && strcmp(arg, "3"))
            return kd_cli_usage_error(cmd, "%s--channels must be 1 (grey) or 3 (RGB), got '%s'", where, arg), -1;
        o->channels = arg[0] - '0';
        return 1;
    case KD_CLI_O_SIZE: {
        char *end = NULL;
        errno = 0;
        long h = strtol(arg, &end, 10), w = h;
        if (end != arg && (*end == 'x' || *end == 'X')) {
            const char *s = end + 1;
            w = strtol(s, &end, 10);
            if (end == s) end = (char *)s - 1; /* "32x": no width */
        }
        if (end == arg || *end || errno || h < 1 || h > 4096 || w < 1 || w > 4096)
            return kd_cli_usage_error(cmd, "%s--size expects HxW (or N for NxN), each in [1, 4096], got '%s'", where,
                                      arg), -1;
        o->size_h = (int)h;
        o->size_w = (int)w;
        return 1;
    }
    case KD_CLI_O_FIT:
        if (!strcmp(arg, "crop")) o->fit = KD_IMAGE_FIT_CROP;
        else if (!strcmp(arg, "pad")) o->fit = KD_IMAGE_FIT_PAD;
        else if (!strcmp(arg, "stretch")) o->fit = KD_IMAGE_FIT_STRETCH;
        else return kd_cli_usage_error(cmd, "%s--fit must be crop, pad or stretch, got '%s'", where, arg), -1;
        return 1;
    case KD_CLI_O_TEST_FRACTION: {
        char *end = NULL;
        double v = strtod(arg, &end);
        if (!*arg || *end || !(v > 0.0 && v < 1.0))
            return kd_cli_usage_error(cmd, "%s--test-fraction expects a number between 0 and 1 (both excluded), got '%s'",
                                      where, arg), -1;
        o->test_fraction = (float)v;
        return 1;
    }
    case KD_CLI_O_SPLIT_SEED: {
        int seed;
        if (!kd_cli_int(cmd, "--split-seed", arg, 0, 2147483647, &seed)) return -1;
        o->split_seed = (uint64_t)seed;
        return 1;
    }
    case KD_CLI_O_LABEL_COLUMN:
        if (!*arg || strlen(arg) >= sizeof o->label_column)
            return kd_cli_usage_error(cmd, "%s--label-column expects a column name or 0-based index of 1 to %zu "
                                           "characters, got '%.40s'", where, sizeof o->label_column - 1, arg), -1;
        snprintf(o->label_column, sizeof o->label_column, "%s", arg);
        return 1;
    case KD_CLI_O_SKIP_BAD: o->skip_bad = 1; return 1;
    default: return 0;
    }
}

int kd_cli_data_opt(const char *cmd, int c, const char *arg, kd_data_opts *o) {
    int r = kd_cli_parse_data_opt(cmd, c, arg, o);
    if (r > 0) return 0;
    if (r == 0) kd_cli_usage_error(cmd, "unknown option");
    return KD_EXIT_USAGE;
}

void kd_cli_data_fit(const char *spec, kd_data_opts *o, int in_c, int in_h, int in_w) {
    if ((o->format ? o->format : kd_data_format_detect(spec)) != KD_DATA_FORMAT_IMAGES) return;
    /* An image folder is read at the model's shape (as predict's files are) unless --channels /
     * --size say otherwise: a model trained with --size needs no --size to be evaluated. */
    if (!o->channels && (in_c == 1 || in_c == 3)) o->channels = in_c;
    if (!o->size_h) o->size_h = in_h, o->size_w = in_w;
}

int kd_cli_load_data(const char *cmd, const char *spec, const char *split, const kd_data_opts *opts, const kd_model *m,
                     kd_dataset *ds) {
    kd_error err;
    kd_dataset train = {0};
    kd_data_opts fitted = opts ? *opts : kd_data_opts_default();
    if (m) kd_cli_data_fit(spec, &fitted, m->in_c, m->in_h, m->in_w);
    opts = &fitted;
    if (kd_dataset_load_ex(ds, spec, split, opts, &err)) return kd_cli_fail_about(cmd, spec, &err);
    if (ds->n_skipped) /* --skip-bad: never silent */
        kd_cli_note("distill %s: %s: skipped %d unreadable image%s of the %s split (--skip-bad); the first: %s\n",
                cmd, spec, ds->n_skipped, ds->n_skipped > 1 ? "s" : "", split, ds->skip_note);
    if (ds->n_ignored)
        kd_cli_note("distill %s: %s: %d file%s of the %s split ignored (hidden, or not png/jpg/jpeg/pgm/ppm/bmp)\n",
                cmd, spec, ds->n_ignored, ds->n_ignored > 1 ? "s" : "", split);
    if (m && kd_model_check_data(m, ds, &err)) {
        kd_dataset_free(ds);
        return kd_cli_fail_in(cmd, spec, &err);
    }
    if (strcmp(split, "train") != 0 && !(m && m->norm_mean && m->norm_std)) {
        /* The training set's statistics, as a model without its own normalisation was trained
         * (a model trained since issue 14 carries its own: docs/DATA.md). */
        if (kd_dataset_load_ex(&train, spec, "train", opts, &err)) {
            kd_dataset_free(ds);
            return kd_cli_fail_about(cmd, spec, &err);
        }
        ds->mean = train.mean;
        ds->std = train.std;
        kd_dataset_free(&train);
    }
    return 0;
}
