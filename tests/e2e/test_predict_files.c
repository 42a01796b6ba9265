/* `distill predict MODEL FILE...` (issue 14): image files are decoded, converted to the model's
 * channels and normalised with the model's own per-channel normalisation (or --mean/--std for a
 * model without one); the class and probability printed per file equal the model's computed here
 * on the same pixels. Refusals: a model without a normalisation and no --mean/--std, a corrupt or
 * missing file (named), file and data-set options mixed. Fixtures: tiny PPM/PGM files written here
 * (the decoders' own tests are the images part's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_run.h"
#include "distill/distill.h"

static const char rgb_yaml[] =
    "name: rgb\ninput: [3, 8, 8]\nnormalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n"
    "layers:\n  - {type: conv2d, out: 4, kernel: 3, pad: 1}\n  - {type: relu}\n  - {type: flatten}\n"
    "  - {type: linear, out: 5}\n";

static char dir[512];

/* An 8x8 PPM (c = 3) or PGM (c = 1) of pattern `seed`; px gets the model's CHW pixels (grey
 * replicated to the 3 channels). */
static void write_image(const char *name, int c, int seed, uint8_t *px) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fprintf(f, "P%d\n8 8\n255\n", c == 3 ? 6 : 5);
    for (int i = 0; i < 64; i++)
        for (int k = 0; k < c; k++) {
            uint8_t v = (uint8_t)((i * (7 + seed) + k * 91 + seed * 37) % 256);
            fputc(v, f);
            for (int ch = (c == 1 ? 0 : k); ch < (c == 1 ? 3 : k + 1); ch++) px[ch * 64 + i] = v;
        }
    fclose(f);
}

/* The line predict prints for pixels px with --top 1: "NAME  class K  P%". */
static void expected_line(kd_model *m, const char *name, uint8_t *px, const float *mean, const float *std,
                          char *line, size_t n) {
    int32_t lab = 0, idx = 0, y;
    kd_dataset one = {.n = 1, .c = 3, .h = 8, .w = 8, .n_classes = 5, .pixels = px, .labels = &lab, .std = 1.f};
    float x[192], p[5];
    kd_error err;
    CHECK(kd_model_set_batch(m, 1, 1, &err) == KD_STATUS_OK);
    kd_batch_fill(x, &y, &one, mean, std, &idx, 1);
    kd_softmax_forward(p, kd_model_forward(m, x, 1, 0, NULL), 1, 5, 1.f);
    int b = kd_argmax(p, 5);
    snprintf(line, n, "%s  class %d %5.1f%%\n", name, b, 100 * p[b]);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/test_predict_files.d", KD_BINARY_DIR);
    mkdir(dir, 0755);
    cli_dir = dir;
    write_file("rgb.yaml", rgb_yaml);
    const char *raw = strstr(rgb_yaml, "layers:");
    char raw_yaml[512];
    snprintf(raw_yaml, sizeof raw_yaml, "name: raw\ninput: [3, 8, 8]\n%s", raw);
    write_file("raw.yaml", raw_yaml);
    write_file("bad.ppm", "P6\n8 8\n255\nshort");
    uint8_t a[192], b[192];
    write_image("a.ppm", 3, 1, a);
    write_image("b.pgm", 1, 2, b);

    kd_model *m = NULL;
    kd_error err;
    CHECK_MSG(kd_model_from_yaml(&m, rgb_yaml, "rgb.yaml", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    if (!m) TEST_DONE();
    char want[256], want2[256];
    /* the model's own normalisation, per channel; a grey file converted to RGB */
    expected_line(m, "a.ppm", a, m->norm_mean, m->norm_std, want, sizeof want);
    expected_line(m, "b.pgm", b, m->norm_mean, m->norm_std, want2, sizeof want2);
    EXPECT("predict rgb.yaml a.ppm b.pgm --top 1", 0, want);
    CHECK_MSG(strstr(out, want2), "expected '%s' in:\n%s", want2, out);
    kd_model_free(m);

    /* a model without one: refused, unless --mean/--std say it (one value or one per channel) */
    EXPECT("predict raw.yaml a.ppm", 2, "has no normalisation of its own");
    EXPECT("predict raw.yaml a.ppm --mean 0.5 --std 0.25,0.5", 2, "--std has 2 values; the input has 3 channels (give 1 value or 3)");
    m = NULL;
    CHECK_MSG(kd_model_from_yaml(&m, raw_yaml, "raw.yaml", 1, &err) == KD_STATUS_OK, "%s", err.msg);
    if (m) {
        const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.25f, 0.25f, 0.2f};
        expected_line(m, "a.ppm", a, mean, std, want, sizeof want);
        EXPECT("predict raw.yaml a.ppm --mean 0.5,0.4,0.3 --std 0.25,0.25,0.2 -k 1", 0, want);
        kd_model_free(m);
    }
    /* files named in errors; options of the two modes not mixed */
    static const cli_case refused[] = {
        {NULL, NULL, "predict rgb.yaml a.ppm bad.ppm", 1, "bad.ppm"},
        {NULL, NULL, "predict rgb.yaml missing.png", 1, "missing.png"},
        {NULL, NULL, "predict rgb.yaml a.ppm --count 3", 2, "do not go together"},
        {NULL, NULL, "predict rgb.yaml --mean 0.5 --std 0.5", 2, "are for image files"},
        {NULL, NULL, "predict rgb.yaml a.ppm --fit sideways", 2, "crop, pad or stretch"},
    };
    EXPECT_CASES(refused);
    TEST_DONE();
}
