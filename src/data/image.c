/* Placeholder of the issue-14 contract commit: replaced by the image decoders. */
#include "distill/data.h"

kd_status kd_image_load(const char *path, int c, int h, int w, kd_image_fit fit, uint8_t *out, kd_error *err) {
    (void)c; (void)h; (void)w; (void)fit; (void)out;
    return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: image decoding is not built yet", path);
}
