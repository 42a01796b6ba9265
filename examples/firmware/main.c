/* The example firmware: the model (a .kdm image in a const array, `distill export --format c`) is
 * read in place from flash, the arena is a static buffer of exactly MODEL_KDM_ARENA_SIZE bytes in
 * .bss, and the first TEST_IMAGES_N test images (test_images.h, written by gen_images.c) are
 * classified one at a time: load, prepare, then quantize + invoke per image. For each image it
 * prints the label, the predicted class and the int8 logits; no printf (a few bytes of formatting
 * here), no malloc. Output lines starting with '#' are platform-specific (arena and stack sizes);
 * all others are identical on the device and on the host, which scripts/firmware.sh checks. */
#include <stddef.h>
#include <stdint.h>

#include "fw_io.h"
#include "kdrt_model.h"
#include "model_kdm.h"
#include "test_images.h"

static int32_t arena[(MODEL_KDM_ARENA_SIZE + 3) / 4]; /* int32_t: 4-byte aligned, as kdrt_prepare wants */
static int8_t input[TEST_IMAGE_PIXELS];
static int8_t logits[64];   /* n_classes <= 64 */

static char line[64 + 5 * sizeof logits]; /* one output line */
static size_t pos;

static void put_str(const char *s) {
    while (*s && pos + 1 < sizeof line) line[pos++] = *s++;
}

static void put_int(long v) {
    char d[24];
    int n = 0;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    do d[n++] = (char)('0' + u % 10); while (u /= 10);
    if (v < 0) d[n++] = '-';
    while (n > 0 && pos + 1 < sizeof line) line[pos++] = d[--n];
}

static void flush(void) {
    line[pos] = '\0';
    fw_write(line);
    pos = 0;
}

static int fail(const char *what, kdrt_status st) {
    put_str("error: ");
    put_str(what);
    put_str(": ");
    put_str(kdrt_status_string(st));
    put_str("\n");
    flush();
    return 1;
}

int main(void) {
    kdrt_model m;
    kdrt_status st = kdrt_model_load(&m, model_kdm, sizeof model_kdm);
    if (st != KDRT_STATUS_OK) return fail("kdrt_model_load", st);
    if ((st = kdrt_prepare(&m, arena, sizeof arena)) != KDRT_STATUS_OK) return fail("kdrt_prepare", st);
    if ((size_t)m.input_dims.h * m.input_dims.w * m.input_dims.c != TEST_IMAGE_PIXELS ||
        (size_t)m.n_classes > sizeof logits)
        return fail("the test images do not fit the model", KDRT_STATUS_BAD_SHAPE);

    put_str("kdrt firmware: model ");
    put_str(m.name);
    put_str(", ");
    put_int((long)sizeof model_kdm);
    put_str(" bytes, ");
    put_int(TEST_IMAGES_N);
    put_str(" images\n");
    flush();
    put_str("# arena: MODEL_KDM_ARENA_SIZE ");
    put_int((long)MODEL_KDM_ARENA_SIZE);
    put_str(" bytes, kdrt_arena_size ");
    put_int((long)kdrt_arena_size(&m));
    put_str("\n");
    flush();

    int correct = 0;
    for (int i = 0; i < TEST_IMAGES_N; i++) {
        kdrt_quantize_input_u8(&m, input, test_images[i]);
        if ((st = kdrt_invoke(&m, input, logits)) != KDRT_STATUS_OK) return fail("kdrt_invoke", st);
        int32_t cls = kdrt_output_argmax(&m, logits);
        correct += cls == test_labels[i];
        put_str("image ");
        put_int(i);
        put_str(": label ");
        put_int(test_labels[i]);
        put_str(" class ");
        put_int(cls);
        put_str(" logits");
        for (int32_t c = 0; c < m.n_classes; c++) {
            put_str(" ");
            put_int(logits[c]);
        }
        put_str("\n");
        flush();
    }
    put_str("correct ");
    put_int(correct);
    put_str("/");
    put_int(TEST_IMAGES_N);
    put_str("\n");
    flush();
    size_t stack = fw_stack_used();
    if (stack) {
        put_str("# stack used ");
        put_int((long)stack);
        put_str(" bytes\n");
        flush();
    }
    return 0;
}
