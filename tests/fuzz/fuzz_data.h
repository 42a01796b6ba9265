/* For the fuzz targets of the data readers (fuzz_cifar, fuzz_npz, fuzz_csv): load both splits of
 * spec with one reader, within 64 MB, freeing what loaded; 1 when both loaded. */
#ifndef KD_FUZZ_DATA_H
#define KD_FUZZ_DATA_H
#include "distill/data.h"

typedef kd_status (*fuzz_data_reader)(kd_dataset *, const char *, const char *, const kd_data_opts *, kd_error *);

static inline int fuzz_data_splits(fuzz_data_reader read, const char *spec) {
    kd_data_opts o = kd_data_opts_default();
    o.max_bytes = (size_t)64 << 20;
    int ok = 1;
    for (int t = 0; ok && t < 2; t++) {
        kd_dataset ds;
        kd_error err;
        ok = read(&ds, spec, t ? "test" : "train", &o, &err) == KD_STATUS_OK;
        if (ok) kd_dataset_free(&ds);
    }
    return ok;
}
#endif
