/* For the fuzz targets whose parser takes a path: the input is written to a file of this process
 * (in /dev/shm when it exists, so no disk is touched) and the parser reads it back. Included by
 * each tests/fuzz/fuzz_<format>.c; test_fuzz_corpus.c includes them all at once. */
#ifndef KD_FUZZ_FILE_H
#define KD_FUZZ_FILE_H
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write data to a per-process file named after `tag`; returns its path (static storage), or NULL. */
static inline const char *fuzz_file(const char *tag, const uint8_t *data, size_t size) {
    static char path[2][256];
    static int which;
    static const char *dir; /* decided once per process: it does not change between inputs */
    struct stat sb;
    if (!dir) dir = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    char *p = path[which++ & 1]; /* two live paths: the IDX target needs an image and a label file */
    snprintf(p, sizeof path[0], "%s/kd_fuzz_%s_%ld", dir, tag, (long)getpid());
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    ok = fclose(f) == 0 && ok;
    return ok ? p : NULL;
}

/* For a parser that takes a path: write the input to a file, run load(path) (whether it loaded; it
 * frees what it made), remove the file. */
static inline int fuzz_load_file(const char *tag, const uint8_t *data, size_t size, int (*load)(const char *path)) {
    const char *path = fuzz_file(tag, data, size);
    if (!path) return 0;
    int ok = load(path);
    unlink(path);
    return ok;
}

/* fuzz_NAME for a loader `kd_status load(const char *path, T **out, kd_error *err)` whose result
 * free_fn releases (NULL-safe), with its libFuzzer entry point. */
#define KD_FUZZ_LOADER_TARGET(name, tag, T, load, free_fn)                                        \
    static int load_##name(const char *path) {                                                   \
        T *x = NULL;                                                                             \
        kd_error err;                                                                            \
        int ok = load(path, &x, &err) == KD_STATUS_OK;                                           \
        free_fn(x);                                                                              \
        return ok;                                                                               \
    }                                                                                            \
    static int fuzz_##name(const uint8_t *data, size_t size) {                                   \
        return fuzz_load_file(tag, data, size, load_##name);                                     \
    }                                                                                            \
    KD_FUZZ_TARGET(fuzz_##name)

/* The libFuzzer entry point of a target whose check is `int fn(const uint8_t *, size_t)` (returns
 * whether the input loaded). test_fuzz_corpus.c defines KD_FUZZ_REPLAY and calls the checks itself. */
#ifdef KD_FUZZ_REPLAY
#define KD_FUZZ_TARGET(fn)
#else
#define KD_FUZZ_TARGET(fn)                                                                       \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                               \
        fn(data, size);                                                                          \
        return 0;                                                                                \
    }
#endif
#endif
