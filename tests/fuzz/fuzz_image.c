/* libFuzzer target for the image decoders and the image-folder reader (src/data/image.c, imgdir.c:
 * magic bytes; PNG through libpng and JPEG through libjpeg with their errors caught; PGM/PPM and
 * BMP headers, sizes, maxval, palettes, truncation; the header probe). The input is one image file:
 * it is decoded and fitted to 3x8x8 (crop) and to 1x5x7 (pad), then read as the only image of a
 * one-class folder, whose reader probes its header and decodes it at its own size. Built and run by
 * scripts/fuzz.sh; tests/unit/test_fuzz_corpus.c replays tests/fuzz/corpus/image. */
#include <stdlib.h>
#include <sys/stat.h>

#include "distill/data.h"
#include "fuzz_file.h"

static int fuzz_image(const uint8_t *data, size_t size) {
    uint8_t out[3 * 8 * 8];
    kd_error err;
    const char *path = fuzz_file("image", data, size);
    if (!path) return 0;
    int ok = kd_image_load(path, 3, 8, 8, KD_IMAGE_FIT_CROP, out, &err) == KD_STATUS_OK;
    ok &= kd_image_load(path, 1, 5, 7, KD_IMAGE_FIT_PAD, out, &err) == KD_STATUS_OK;
    unlink(path);
    /* The folder: DIR/a/x.png (the name's extension does not choose the decoder). */
    char dir[300], cls[320], file[340];
    snprintf(dir, sizeof dir, "%s.d", path);
    snprintf(cls, sizeof cls, "%s/a", dir);
    snprintf(file, sizeof file, "%s/x.png", cls);
    mkdir(dir, 0700);
    mkdir(cls, 0700);
    FILE *f = fopen(file, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
        kd_data_opts o = kd_data_opts_default();
        kd_dataset ds;
        if (kd_dataset_load_images(&ds, dir, "train", &o, &err) == KD_STATUS_OK) kd_dataset_free(&ds);
        else ok = 0;
        unlink(file);
    }
    rmdir(cls);
    rmdir(dir);
    return ok;
}

KD_FUZZ_TARGET(fuzz_image)
