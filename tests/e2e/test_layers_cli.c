/* An imported-style model (issue 13 layers: dilation, padded ceil_mode pools, concat of three,
 * squeeze-excitation mul, scale, pad, the activations) through the CLI: `distill info` lists a
 * concat's inputs, one epoch of training on a little data, prediction, and use as a teacher. */
#include <stdio.h>

#include "cli_run.h"

int main(void) {
    write_file("lay.yaml", "name: lay\ninput: [1, 28, 28]\nlayers:\n"
                           "  - {name: c1, type: conv2d, out: 8, kernel: 3, pad: 2, dilation: 2}\n"
                           "  - {name: p1, type: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: true}\n"
                           "  - {name: h1, type: hard_swish}\n"
                           "  - {name: c2, type: conv2d, out: 8, kernel: 1, inputs: [p1]}\n"
                           "  - {name: s2, type: sigmoid}\n"
                           "  - {name: cat, type: concat, inputs: [h1, s2, p1]}\n"
                           "  - {name: g, type: global_avgpool}\n"
                           "  - {name: se, type: mul, inputs: [cat, g]}\n"
                           "  - {name: sc, type: scale}\n"
                           "  - {name: lr, type: leaky_relu}\n"
                           "  - {name: pd, type: pad, pads: [1, 1, 0, 0]}\n"
                           "  - {name: ap, type: avgpool, kernel: 2, stride: 2, pad: 1, count_pad: false}\n"
                           "  - {name: ck, type: clip}\n"
                           "  - {name: hs, type: hard_sigmoid}\n"
                           "  - {type: flatten}\n  - {type: linear, out: 10}\n");
    static const cli_case cases[] = {
        {NULL, NULL, "info lay.yaml", 0, "h1+s2+p1"},
        {NULL, NULL, "info lay.yaml", 0, "[24,15,15]"},
        {NULL, NULL, "train --model lay.yaml --epochs 1 --limit 300 --val 100 --batch 50 -q -o lay.safetensors", 0,
         "wrote lay.safetensors"},
        {NULL, NULL, "predict lay.safetensors --count 3", 0, "correct"},
        {NULL, NULL,
         "kd --teacher lay.safetensors --student mlp-s --epochs 1 --limit 300 --val 100 --batch 50 -q "
         "-o lay_kd.safetensors",
         0, "wrote lay_kd.safetensors"},
    };
    EXPECT_CASES(cases);
    const char *made[] = {"lay.yaml", "lay.safetensors", "lay.safetensors.ckpt", "lay_kd.safetensors",
                          "lay_kd.safetensors.ckpt"};
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) remove(made[i]);
    TEST_DONE();
}
