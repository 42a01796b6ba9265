/* libFuzzer target for the IDX reader (kd_dataset_load_idx: raw or gzip, magic, element type,
 * dimensions, sizes, label range; for gzip the members' CRC-32 and length, truncation and bytes
 * after the last member: the corpus has gzip seeds, one of two members). The input is an image
 * file and a label file: the first two bytes (little-endian) give the image file's length, the
 * rest after it is the label file. Built and run by scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c
 * replays tests/fuzz/corpus/idx. */
#include "distill/data.h"
#include "fuzz_file.h"

static int fuzz_idx(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n_img = (size_t)data[0] | (size_t)data[1] << 8;
    if (n_img > size - 2) n_img = size - 2;
    const char *img = fuzz_file("idx_images", data + 2, n_img);
    const char *lbl = fuzz_file("idx_labels", data + 2 + n_img, size - 2 - n_img);
    kd_dataset ds = {0};
    kd_error err;
    int ok = img && lbl && kd_dataset_load_idx(&ds, img, lbl, &err) == KD_STATUS_OK;
    if (ok) kd_dataset_free(&ds);
    if (img) unlink(img);
    if (lbl) unlink(lbl);
    return ok;
}

KD_FUZZ_TARGET(fuzz_idx)
