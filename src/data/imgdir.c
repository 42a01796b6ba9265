/* Image folders: DIR/train/<class>/ and DIR/test/<class>/ (or val/), or one DIR/<class>/ tree split
 * by kd_split_stratified. Classes are the training split's folder names sorted bytewise, files are
 * sorted bytewise within a class, so every machine reads the same samples in the same order. Each
 * file of the split is decoded once (image.c) into the dataset's uint8 array, by the OpenMP threads. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/image.h"
#include "distill/fileio.h"

/* More files than this in one folder tree is refused (a wrong --data, not a data set). */
#define IMGDIR_MAX_FILES 10000000

typedef struct file_list {
    char **path;    /* malloc'd paths */
    int32_t *label; /* class index of each */
    int n, cap;
} file_list;

static void list_free(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    free(l->label);
    memset(l, 0, sizeof *l);
}

static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 2);
    if (s) {
        memcpy(s, a, na);
        s[na] = '/';
        memcpy(s + na + 1, b, nb + 1);
    }
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name) {
    static const char *const ext[] = {"png", "jpg", "jpeg", "pgm", "ppm", "bmp"};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot + 1, ext[i])) return 1;
    return 0;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The entries of dir, sorted bytewise: its sub-directories (want_dirs) or its other entries; the
 * rest and hidden ones (".*") are left out and counted in *others. */
static kd_status list_dir(const char *dir, int want_dirs, char ***out, int *n_out, int *others, kd_error *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return kd_error_set(err, KD_STATUS_IO, "%s: cannot open the folder", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    kd_status st = KD_STATUS_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = join(dir, e->d_name);
        if (!p) {
            st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        int dir_entry = kd_is_dir(p);
        free(p);
        if (e->d_name[0] == '.' || dir_entry != want_dirs) {
            ++*others;
            continue;
        }
        if (n >= IMGDIR_MAX_FILES) {
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: more than %d entries", dir, IMGDIR_MAX_FILES);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **g = realloc(names, sizeof *names * (size_t)cap);
            if (!g) {
                st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
                break;
            }
            names = g;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (st) {
        free_names(names, n);
        return st;
    }
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    *n_out = n;
    return KD_STATUS_OK;
}

/* Appends path (taken over) of a file of folder dir. */
static kd_status list_add(file_list *l, const char *dir, char *path, int32_t label, kd_error *err) {
    if (l->n >= IMGDIR_MAX_FILES) {
        free(path);
        return kd_error_set(err, KD_STATUS_BAD_FILE, "%s: more than %d image files in the data set", dir,
                            IMGDIR_MAX_FILES);
    }
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->path, sizeof *p * (size_t)cap);
        if (p) l->path = p;
        int32_t *q = p ? realloc(l->label, sizeof *q * (size_t)cap) : NULL;
        if (q) l->label = q;
        if (!q) {
            free(path);
            return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        }
        l->cap = cap;
    }
    l->path[l->n] = path;
    l->label[l->n++] = label;
    return KD_STATUS_OK;
}

/* The image files of the class folders of root (every folder of `classes`, or each folder of root
 * that is one of them, when `sub` is set: a test split may lack a class but not add one), appended
 * to l with their class index. */
static kd_status list_tree(const char *root, char **classes, int n_classes, int sub, file_list *l, int *ignored,
                           kd_error *err) {
    char **dirs = NULL;
    int n_dirs = 0;
    kd_status st = KD_STATUS_OK;
    if (sub) {
        st = list_dir(root, 1, &dirs, &n_dirs, ignored, err);
        if (st) return st;
        for (int i = 0; i < n_dirs && !st; i++) {
            void *hit = bsearch(&dirs[i], classes, (size_t)n_classes, sizeof *classes, cmp_str);
            if (!hit)
                st = kd_error_set(err, KD_STATUS_BAD_FILE,
                                  "%s/%s: class '%s' is not a class of the training split (no such folder there)",
                                  root, dirs[i], dirs[i]);
        }
    }
    for (int k = 0; k < (sub ? n_dirs : n_classes) && !st; k++) {
        const char *name = sub ? dirs[k] : classes[k];
        int32_t label = (int32_t)((char **)bsearch(&name, classes, (size_t)n_classes, sizeof *classes, cmp_str) - classes);
        char *cdir = join(root, name), **files = NULL;
        int n_files = 0;
        if (!cdir) {
            st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        st = list_dir(cdir, 0, &files, &n_files, ignored, err);
        int images = 0;
        for (int i = 0; i < n_files && !st; i++) {
            if (!is_image_name(files[i])) {
                ++*ignored;
                continue;
            }
            char *p = join(cdir, files[i]);
            st = p ? list_add(l, cdir, p, label, err) : kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
            images++;
        }
        if (!st && !images)
            st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: class folder has no images (png, jpg, jpeg, pgm, ppm, bmp)",
                              cdir);
        free_names(files, n_files);
        free(cdir);
    }
    free_names(dirs, n_dirs);
    return st;
}

/* The files that failed a probe or a decode; of each split (0 train, 1 test), the error of the
 * lowest index is kept, so the message does not depend on the threads' timing. */
typedef struct bad_files {
    uint8_t *bad;        /* per file */
    const uint8_t *part; /* per file: its split */
    int first[2];        /* lowest failed index, or INT32_MAX */
    kd_error err[2];
} bad_files;

static void note_bad(bad_files *b, int i, const kd_error *e) {
    b->bad[i] = 1;
    int s = b->part[i];
#pragma omp critical(kd_imgdir_bad)
    if (i < b->first[s]) {
        b->first[s] = i;
        b->err[s] = *e;
    }
}

/* Learn channels and size from the headers of every file (both splits, so they agree), read by
 * the OpenMP threads; the first bad file in list order is the error (without skip_bad). */
static kd_status probe_all(const char *spec, const file_list *all, const kd_data_opts *opts, bad_files *bad, int *c,
                           int *h, int *w, kd_error *err) {
    int32_t *dims = malloc(sizeof *dims * 3 * (size_t)(all->n ? all->n : 1));
    if (!dims) return kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < all->n; i++) {
        kd_error e;
        if (kd_image_probe(all->path[i], &dims[3 * i], &dims[3 * i + 1], &dims[3 * i + 2], &e)) note_bad(bad, i, &e);
    }
    int first_bad = bad->first[0] < bad->first[1] ? 0 : 1;
    if (bad->first[first_bad] != INT32_MAX && !opts->skip_bad) {
        free(dims);
        if (err) *err = bad->err[first_bad];
        return bad->err[first_bad].status;
    }
    int grey = 1, first = -1;
    kd_status st = KD_STATUS_OK;
    for (int i = 0; i < all->n && !st; i++) {
        if (bad->bad[i]) continue;
        const int32_t *d = dims + 3 * i, *f = dims + 3 * (first < 0 ? i : first);
        grey &= d[0] == 1;
        if (first < 0) first = i;
        else if (!opts->size_h && (d[1] != f[1] || d[2] != f[2]))
            st = kd_error_set(err, KD_STATUS_BAD_FILE,
                              "%s: images of different sizes (%s is %dx%d, %s is %dx%d, height x width): choose one "
                              "with --size HxW",
                              spec, all->path[first], f[1], f[2], all->path[i], d[1], d[2]);
    }
    if (!st && first < 0)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no readable image (all %d skipped; the first: %s)", spec,
                          all->n, bad->err[first_bad].msg);
    *c = opts->channels ? opts->channels : grey ? 1 : 3;
    *h = opts->size_h ? opts->size_h : first >= 0 ? dims[3 * first + 1] : 0;
    *w = opts->size_w ? opts->size_w : first >= 0 ? dims[3 * first + 2] : 0;
    free(dims);
    return st;
}

kd_status kd_dataset_load_images(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                                 kd_error *err) {
    memset(ds, 0, sizeof *ds);
    kd_data_opts def = kd_data_opts_default();
    if (!opts) opts = &def;
    int test = !strcmp(split, "test") || !strcmp(split, "val");
    if (!test && strcmp(split, "train"))
        return kd_error_set(err, KD_STATUS_BAD_ARG, "unknown split '%s' (train or test)", split);
    if (opts->channels != 0 && opts->channels != 1 && opts->channels != 3)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "%d channels: an image folder gives 1 (grey) or 3 (RGB)",
                            opts->channels);
    if ((opts->size_h != 0) != (opts->size_w != 0) || opts->size_h < 0 || opts->size_w < 0)
        return kd_error_set(err, KD_STATUS_BAD_ARG, "image size %dx%d: give both height and width", opts->size_h,
                            opts->size_w);
    if (!kd_is_dir(spec)) return kd_error_set(err, KD_STATUS_NOT_FOUND, "%s: not a folder", spec);

    /* The layout, and the file list of both splits in a fixed order (train first). */
    char *train_dir = join(spec, "train"), *test_dir = join(spec, "test"), *val_dir = join(spec, "val");
    char **classes = NULL;
    int n_classes = 0, ignored = 0, n_train = 0;
    file_list all = {0};
    uint8_t *is_test = NULL;
    bad_files bad = {.first = {INT32_MAX, INT32_MAX}};
    uint8_t *pixels = NULL;
    int32_t *labels = NULL;
    kd_status st = train_dir && test_dir && val_dir ? KD_STATUS_OK : kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    int two = !st && kd_is_dir(train_dir);
    const char *other = kd_is_dir(test_dir) ? test_dir : val_dir;
    if (!st && two && !kd_is_dir(other))
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: has train/ but neither test/ nor val/", spec);
    const char *class_root = two ? train_dir : spec;
    if (!st) st = list_dir(class_root, 1, &classes, &n_classes, &ignored, err);
    if (!st && !n_classes)
        st = kd_error_set(err, KD_STATUS_BAD_FILE, "%s: no class folders (expected %s/<class>/ folders of images)",
                          class_root, class_root);
    if (!st) st = list_tree(class_root, classes, n_classes, 0, &all, &ignored, err);
    n_train = all.n;
    if (!st && two) st = list_tree(other, classes, n_classes, 1, &all, &ignored, err);
    if (!st) {
        is_test = calloc((size_t)all.n, 1);
        bad.bad = calloc((size_t)all.n, 1);
        bad.part = is_test;
        if (!is_test || !bad.bad) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
    }
    if (!st && two) memset(is_test + n_train, 1, (size_t)(all.n - n_train));
    if (!st && !two) st = kd_split_stratified(all.label, all.n, n_classes, opts->test_fraction, opts->split_seed, is_test, err);

    /* Shape: from the options, else from the headers of every file (both splits agree on it). */
    int c = opts->channels, h = opts->size_h, w = opts->size_w;
    if (!st && (!c || !h)) st = probe_all(spec, &all, opts, &bad, &c, &h, &w, err);
    int n = 0;
    for (int i = 0; !st && i < all.n; i++) n += is_test[i] == test && !bad.bad[i];
    if (!st) st = kd_dataset_check_size(spec, n, c, h, w, 1, opts->max_bytes, err);
    int32_t *pick = NULL;
    if (!st) {
        size_t img = (size_t)c * h * w;
        pixels = malloc(img * (size_t)(n ? n : 1));
        labels = malloc(sizeof *labels * (size_t)(n ? n : 1));
        pick = malloc(sizeof *pick * (size_t)(n ? n : 1));
        if (!pixels || !labels || !pick) st = kd_error_set(err, KD_STATUS_NO_MEMORY, "out of memory");
        for (int i = 0, j = 0; !st && i < all.n; i++)
            if (is_test[i] == test && !bad.bad[i]) pick[j++] = i;
        if (!st) {
#pragma omp parallel for schedule(dynamic, 8)
            for (int j = 0; j < n; j++) {
                kd_error e;
                int i = pick[j];
                labels[j] = all.label[i];
                if (kd_image_load(all.path[i], c, h, w, opts->fit, pixels + img * (size_t)j, &e)) note_bad(&bad, i, &e);
            }
        }
        /* Without skip_bad the first bad file (in list order) is the error; with it, the bad ones go. */
        if (!st && bad.first[test] != INT32_MAX && !opts->skip_bad) {
            if (err) *err = bad.err[test];
            st = bad.err[test].status;
        }
        int m = 0;
        for (int j = 0; !st && j < n; j++) {
            if (bad.bad[pick[j]]) continue;
            if (m != j) {
                memcpy(pixels + img * (size_t)m, pixels + img * (size_t)j, img);
                labels[m] = labels[j];
            }
            m++;
        }
        n = m;
    }
    free(pick);
    if (!st) {
        *ds = (kd_dataset){.n = n, .c = c, .h = h, .w = w, .n_classes = n_classes, .type = KD_DATA_U8, .pixels = pixels,
                           .labels = labels, .n_ignored = ignored};
        for (int i = 0; i < all.n; i++) ds->n_skipped += bad.bad[i] && is_test[i] == test;
        if (ds->n_skipped) snprintf(ds->skip_note, sizeof ds->skip_note, "%s", bad.err[test].msg);
        snprintf(ds->labels_path, sizeof ds->labels_path, "%s", two ? (test ? other : train_dir) : spec);
        pixels = NULL;
        labels = NULL;
        st = kd_dataset_set_class_names(ds, (const char *const *)classes, n_classes, err);
        if (st && err) { /* say which folder (class I counts the folders in sorted order, from 0) */
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            kd_error_set(err, st, "%s: %s (a class folder's name)", spec, m);
        }
        if (st) {
            kd_dataset_free(ds);
            memset(ds, 0, sizeof *ds);
        }
    }
    free(pixels);
    free(labels);
    free(bad.bad);
    free(is_test);
    list_free(&all);
    free_names(classes, n_classes);
    free(train_dir);
    free(test_dir);
    free(val_dir);
    return st;
}
