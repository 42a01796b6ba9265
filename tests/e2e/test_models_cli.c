/* `distill models` (issue 14): every built-in model with its parameters and MACs at an input shape
 * and class count, its description, and the models that cannot take that input saying why; --show
 * prints a model's YAML; bad options are usage errors. */
#include "cli_run.h"

int main(void) {
    EXPECT("models", 0, "at input 1x28x28, 10 classes");
    CHECK_MSG(strstr(out, "\ncnn-t           1701610       30735360  the default teacher for 28x28 grey images") &&
                  strstr(out, "\nmobilenet-s") && strstr(out, "\nmlp-tab ") && strstr(out, "\ncnn-t-wide "), "%s", out);
    /* the counts follow the input and the classes (resnet-8: PyTorch's count at 10 classes,
     * tests/golden/resnet, plus 65 x 90 for the linear layer's 90 more outputs) */
    EXPECT("models --input 3x32x32 --classes 100", 0, "\nresnet-8          83892       12507392  a CIFAR-style ResNet-8");
    /* a model that cannot take the input says why; the others are listed */
    EXPECT("models -i 3x4x4", 0, "\ncnn-t-wide   cannot take 3x4x4: layer pool3: window 2 is larger than the 1x1 input");
    CHECK_MSG(strstr(out, "\nresnet-20        272474"), "%s", out);
    EXPECT("models --input 12 --classes 3", 0, "\nmlp-tab            5187           5056  an MLP for tables");
    static const cli_case cases[] = {
        {NULL, NULL, "models --show mlp-tab", 0, "name: mlp-tab\ninput: auto\n"},
        {NULL, NULL, "models --help", 0, "--input CxHxW"},
        {NULL, NULL, "models --input 3x32", 2, "--input expects CxHxW"},
        {NULL, NULL, "models --input 0x28x28", 2, "--input expects CxHxW"},
        {NULL, NULL, "models --classes 0", 2, "--classes"},
        {NULL, NULL, "models --show resnet-9", 2, "'resnet-9' is not a built-in model"},
        {NULL, NULL, "models extra", 2, "takes no arguments"},
    };
    EXPECT_CASES(cases);
    TEST_DONE();
}
