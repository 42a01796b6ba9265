/* Decode throughput of the image-folder reader (src/data/imgdir.c), run by bench/imgdir_decode.sh:
 * the first epoch is kd_dataset_load_ex (every file's header read, then every file decoded once into
 * the uint8 array, on the OpenMP threads); the second epoch is in memory -- batches copied out of that
 * array by kd_batch_pixels, no file is read or decoded again.
 * Usage: imgdir_decode DIR [SPLIT (train)] [CHANNELS (0 = from the files)] [SIZE (0 = the files')] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/data.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [SPLIT] [CHANNELS] [SIZE]\n", argv[0]);
        return 2;
    }
    kd_data_opts o = kd_data_opts_default();
    o.format = KD_DATA_FORMAT_IMAGES;
    const char *split = argc > 2 ? argv[2] : "train";
    o.channels = argc > 3 ? atoi(argv[3]) : 0;
    o.size_h = o.size_w = argc > 4 ? atoi(argv[4]) : 0;
    kd_dataset ds;
    kd_error err;
    double t0 = now();
    if (kd_dataset_load_ex(&ds, argv[1], split, &o, &err)) {
        fprintf(stderr, "imgdir_decode: %s\n", err.msg);
        return 1;
    }
    double t1 = now();
    enum { B = 256 };
    size_t sb = kd_dataset_sample_bytes(&ds);
    uint8_t *px = malloc(sb * B);
    int32_t idx[B], y[B];
    unsigned sum = 0;
    for (int i = 0; i < ds.n; i += B) {
        int n = ds.n - i < B ? ds.n - i : B;
        for (int j = 0; j < n; j++) idx[j] = i + j;
        kd_batch_pixels(px, y, &ds, idx, n, NULL, NULL);
        sum += px[0];
    }
    double t2 = now();
    printf("imgdir_decode: %s %s: %d images %dx%dx%d, %d classes\n", argv[1], split, ds.n, ds.c, ds.h, ds.w,
           ds.n_classes);
    printf("  first epoch (decode):      %.2f s, %.0f images/s\n", t1 - t0, ds.n / (t1 - t0));
    printf("  second epoch (in memory):  %.4f s, %.0f images/s (checksum %u)\n", t2 - t1, ds.n / (t2 - t1 + 1e-12),
           sum);
    free(px);
    kd_dataset_free(&ds);
    return 0;
}
