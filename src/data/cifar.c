/* CIFAR-10 and CIFAR-100 binary batches: records of label byte(s) + 3072 pixel bytes (1024 red,
 * 1024 green, 1024 blue, rows of 32). CIFAR-10: 1 label byte, data_batch_1.bin .. data_batch_5.bin
 * (train) and test_batch.bin; CIFAR-100: 2 label bytes (coarse, fine: the fine one is used),
 * train.bin and test.bin. The spec is the directory (or the one that holds cifar-10-batches-bin/ or
 * cifar-100-binary/), or a list of batch files "a.bin,b.bin" split by test_fraction. docs/DATA.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image.h"
#include "distill/data.h"
#include "distill/fileio.h"

#define CIFAR_PIXELS 3072
#define CIFAR_MAX_FILES 64

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};

static int exists(const char *p) { return kd_input_size(p, NULL) >= 0; } /* a regular file */

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The files of this split and the kind (10 or 100); *split_files = 1 when the spec is a file list
 * (split by test_fraction). dir receives the directory holding the class names file. */
static kd_status cifar_files(const char *spec, int test, char files[][1024], int *nf, int *kind, int *list, char *dir,
                             kd_error *err) {
    *nf = 0;
    *list = 0;
    if (kd_is_dir(spec)) {
        char d[1024];
        snprintf(d, sizeof d, "%s", spec);
        char p[1100];
        const char *sub[2] = {"cifar-10-batches-bin", "cifar-100-binary"};
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof p, "%s/%s", spec, sub[i]);
            if (kd_is_dir(p)) snprintf(d, sizeof d, "%.1000s/%s", spec, sub[i]);
        }
        snprintf(dir, 1024, "%s", d);
        snprintf(p, sizeof p, "%s/data_batch_1.bin", d);
        if (exists(p)) {
            *kind = 10;
            if (test) {
                snprintf(files[(*nf)++], 1024, "%.1000s/test_batch.bin", d);
            } else {
                for (int b = 1; b <= 5; b++) { /* data_batch_1.bin, 2, ... up to the first one missing */
                    snprintf(p, sizeof p, "%s/data_batch_%d.bin", d, b);
                    if (!exists(p)) break;
                    snprintf(files[(*nf)++], 1024, "%.1000s/data_batch_%d.bin", d, b);
                }
            }
            return KD_STATUS_OK;
        }
        snprintf(p, sizeof p, "%s/train.bin", d);
        if (exists(p)) {
            *kind = 100;
            snprintf(files[(*nf)++], 1024, "%.1000s/%s", d, test ? "test.bin" : "train.bin");
            return KD_STATUS_OK;
        }
        return kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: no CIFAR batches (data_batch_1.bin or train.bin) in it or in "
                            "cifar-10-batches-bin/ or cifar-100-binary/", spec);
    }
    /* A list of batch files: all of it is the data, split by test_fraction. */
    *list = 1;
    *kind = 0;
    for (const char *p = spec; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (*nf == CIFAR_MAX_FILES || l >= 1024)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: more than %d files or too long a name", spec, CIFAR_MAX_FILES);
        memcpy(files[*nf], p, l);
        files[*nf][l] = 0;
        const char *b = base_name(files[*nf]);
        int k = !strncmp(b, "data_batch", 10) || !strcmp(b, "test_batch.bin") ? 10
              : !strcmp(b, "train.bin") || !strcmp(b, "test.bin") ? 100 : 0;
        if (!k)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: not a CIFAR batch name (data_batch_*.bin or test_batch.bin "
                                "for CIFAR-10, train.bin or test.bin for CIFAR-100)", files[*nf]);
        if (*kind && k != *kind)
            return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: mixes CIFAR-10 and CIFAR-100 files", spec);
        *kind = k;
        (*nf)++;
        p += l + (e ? 1 : 0);
        if (e && !*p) break;
    }
    if (!*nf) return kd_error_set(err, KD_STATUS_BAD_ARG, "empty CIFAR spec");
    snprintf(dir, 1024, "%.*s", (int)(base_name(files[0]) - files[0]), files[0]);
    if (!dir[0]) snprintf(dir, 1024, ".");
    return KD_STATUS_OK;
}

/* Class names from batches.meta.txt (CIFAR-10) or fine_label_names.txt (CIFAR-100) in dir, one per
 * line (blank lines skipped); CIFAR-10's known names when the file is absent. */
static kd_status cifar_class_names(kd_dataset *ds, const char *dir, int kind, kd_error *err) {
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", dir, kind == 10 ? "batches.meta.txt" : "fine_label_names.txt");
    if (!exists(p))
        return kind == 10 ? kd_dataset_set_class_names(ds, cifar10_names, 10, err) : KD_STATUS_OK;
    char *buf;
    size_t len;
    kd_status st = kd_read_file_max(p, 1 << 20, "a class names file", &buf, &len, err);
    if (st) return st;
    const char *names[100];
    int n = 0;
    for (char *s = buf, *save = NULL, *tok; (tok = strtok_r(s, "\r\n", &save)); s = NULL) {
        char *e = tok + strlen(tok);
        while (e > tok && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        while (*tok == ' ' || *tok == '\t') tok++;
        if (!*tok) continue;
        if (n == kind) {
            n++;
            break;
        }
        names[n++] = tok;
    }
    if (n != kind)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %s class names, CIFAR-%d has %d", p, n > kind ? "more than" : "only",
                          kind, kind);
    else st = kd_dataset_set_class_names(ds, names, n, err);
    if (st && strncmp(err ? err->msg : "", p, strlen(p))) {
        char m[512];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        kd_error_set(err, st, "%s: %s", p, m);
    }
    free(buf);
    return st;
}

/* Read the records of files[0..nf) (every file a whole number of records) into ds, grey when
 * opts->channels is 1. */
static kd_status cifar_read(kd_dataset *ds, const char *spec, char files[][1024], int nf, int kind,
                            const kd_data_opts *opts, kd_error *err) {
    int lb = kind == 10 ? 1 : 2, rec = lb + CIFAR_PIXELS, grey = opts->channels == 1;
    long long total = 0, sizes[CIFAR_MAX_FILES];
    for (int i = 0; i < nf; i++) {
        sizes[i] = kd_input_size(files[i], err);
        if (sizes[i] < 0) return err ? err->status : KD_STATUS_IO;
        if (sizes[i] == 0 || sizes[i] % rec)
            return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: %lld bytes is not a whole number of CIFAR-%d records of %d "
                                "bytes", files[i], sizes[i], kind, rec);
        total += sizes[i] / rec;
    }
    int c = grey ? 1 : 3;
    if (total > INT32_MAX - 1) total = INT32_MAX; /* refused by the size check */
    kd_status st = kd_dataset_check_size(spec, total, c, 32, 32, 1, opts->max_bytes, err);
    if (st) return st;
    ds->pixels = malloc((size_t)total * (size_t)c * 1024);
    ds->labels = malloc(sizeof(int32_t) * (size_t)total);
    if (!ds->pixels || !ds->labels) return kd_error_set(err, KD_STATUS_NO_MEMORY, "%s: out of memory", spec);
    ds->n = (int)total;
    ds->c = c;
    ds->h = ds->w = 32;
    ds->n_classes = kind;
    ds->type = KD_DATA_U8;
    unsigned char r[2 + CIFAR_PIXELS];
    int i = 0;
    for (int f = 0; !st && f < nf; f++) {
        FILE *fp = kd_fopen_input(files[f], err);
        if (!fp) {
            st = err ? err->status : KD_STATUS_IO;
            break;
        }
        for (long long k = 0; k < sizes[f] / rec; k++, i++) {
            if (fread(r, 1, (size_t)rec, fp) != (size_t)rec) {
                st = kd_error_set(err, KD_STATUS_IO, "%s: read failed at record %lld", files[f], k);
                break;
            }
            int label = r[lb - 1]; /* CIFAR-100: the fine label, after the coarse one */
            if (label >= kind) {
                st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: record %lld has label %d, CIFAR-%d has classes 0 .. %d",
                                  files[f], k, label, kind, kind - 1);
                break;
            }
            ds->labels[i] = label;
            uint8_t *px = ds->pixels + (size_t)i * (size_t)c * 1024;
            const unsigned char *p = r + lb;
            if (!grey) memcpy(px, p, CIFAR_PIXELS);
            else
                for (int j = 0; j < 1024; j++) px[j] = kd_image_luma(p[j], p[1024 + j], p[2048 + j]);
        }
        fclose(fp);
    }
    return st;
}

kd_status kd_dataset_load_cifar(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                kd_error *err) {
    memset(ds, 0, sizeof *ds);
    kd_data_opts def = kd_data_opts_default();
    if (!opts) opts = &def;
    if ((opts->size_h || opts->size_w) && (opts->size_h != 32 || opts->size_w != 32))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: CIFAR images are 32x32 and are not resized (--size %dx%d)", spec,
                            opts->size_h, opts->size_w);
    if (opts->channels != 0 && opts->channels != 1 && opts->channels != 3)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: --channels %d: 1 or 3", spec, opts->channels);
    char (*files)[1024] = malloc(sizeof(char[CIFAR_MAX_FILES][1024])), dir[1024];
    if (!files) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    int nf, kind, list;
    kd_status st = cifar_files(spec, !strcmp(split, "test"), files, &nf, &kind, &list, dir, err);
    if (!st) st = cifar_read(ds, spec, files, nf, kind, opts, err);
    if (!st) snprintf(ds->labels_path, sizeof ds->labels_path, "%.255s", files[0]);
    free(files);
    if (!st) st = cifar_class_names(ds, dir, kind, err);
    if (!st && list) /* a file list: this split's share, stratified and seeded */
        st = kd_dataset_take_split(ds, opts, split, err);
    if (st) {
        kd_dataset_free(ds);
        memset(ds, 0, sizeof *ds);
    }
    return st;
}
