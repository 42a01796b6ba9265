/* libFuzzer target for the CIFAR reader (kd_dataset_load_cifar: record size against the file
 * size, label range, the stratified split of a file list). The input is one batch file, named
 * data_batch_1.bin (CIFAR-10) when its size is a whole number of 3073-byte records, else train.bin
 * (CIFAR-100). Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays
 * tests/fuzz/corpus/cifar. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_data.h"
#include "fuzz_file.h"

static int fuzz_cifar(const uint8_t *data, size_t size) {
    const char *tmp = fuzz_file("cifar", data, size);
    if (!tmp) return 0;
    char dir[300], path[340];
    snprintf(dir, sizeof dir, "%s.d", tmp);
    snprintf(path, sizeof path, "%s/%s", dir, size % 3073 == 0 ? "data_batch_1.bin" : "train.bin");
    mkdir(dir, 0700);
    int ok = rename(tmp, path) == 0;
    ok = ok && fuzz_data_splits(kd_dataset_load_cifar, path);
    unlink(path);
    unlink(tmp);
    rmdir(dir);
    return ok;
}

KD_FUZZ_TARGET(fuzz_cifar)
