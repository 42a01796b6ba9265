/* The `distill` command: shared helpers of the subcommands. The CLI is thin: it parses arguments,
 * calls the library, prints results and turns a kd_status into an exit code. */
#ifndef KD_CLI_H
#define KD_CLI_H
#include <stdint.h>
#include <stdio.h>

#include "distill/checkpoint.h"
#include "distill/data.h"
#include "distill/distill.h"
#include "distill/model.h"
#include "distill/train.h"
#include "kdrt_model.h"

/* Exit codes: 0 ok, 1 runtime error (bad file, diverged...), 2 usage error, 130 interrupted. */
enum { KD_EXIT_OK = 0, KD_EXIT_ERROR = 1, KD_EXIT_USAGE = 2, KD_EXIT_INTERRUPTED = 130 };

int kd_cmd_train(int argc, char **argv);
int kd_cmd_kd(int argc, char **argv);
int kd_cmd_eval(int argc, char **argv);
int kd_cmd_info(int argc, char **argv);
int kd_cmd_predict(int argc, char **argv);
int kd_cmd_prune(int argc, char **argv);
int kd_cmd_pipeline(int argc, char **argv);
int kd_cmd_quantize(int argc, char **argv);
int kd_cmd_export(int argc, char **argv);
int kd_cmd_bench(int argc, char **argv);
int kd_cmd_lm(int argc, char **argv);
int kd_cmd_import(int argc, char **argv);
int kd_cmd_models(int argc, char **argv);
/* The long options of train/kd, prune and quantize (getopt tables, for checking a pipeline file's
 * sections); each command also takes --check: parse and check the options, then exit 0. */
struct option;
extern const struct option *const kd_cli_train_options, *const kd_cli_prune_options, *const kd_cli_quantize_options;

/* Print "distill <cmd>: <message>" to stderr and return the exit code for status. */
int kd_cli_fail(const char *cmd, const kd_error *err);
/* An informational line on stderr (what a run found or decided), printed by rank 0 only under
 * mpirun: the other ranks found and decided the same. */
void kd_cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* kd_cli_fail for an error about value, an option's argument: the run file and line it came from
 * (kd_cli_config_where), if it came from one, are named in front. */
int kd_cli_fail_about(const char *cmd, const char *value, const kd_error *err);
/* kd_cli_fail for an error the library could not tie to a file (a model's NaN outputs, an int8
 * model the format refuses): "PATH: " in front. */
int kd_cli_fail_in(const char *cmd, const char *path, const kd_error *err);
int kd_cli_usage_error(const char *cmd, const char *fmt, ...);
/* The n_out files a command will write (NULL entries skipped), checked before it starts its work
 * (kd_check_output_path: a device, FIFO, socket, directory or symbolic link is refused, as is a
 * missing or read-only directory), so a long run is neither wasted nor replaces one. No two
 * outputs may be the same file, and no output may be one of the command's n_in input files (the
 * model, the teacher: `kd --teacher T -o T` would replace the teacher). Returns 0, or
 * KD_EXIT_ERROR after printing the error. */
int kd_cli_check_outputs(const char *cmd, const char *const *outs, int n_out, const char *const *ins, int n_in);

/* Strict number parsing for options: on failure print a usage error and return 0. */
int kd_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);
int kd_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);
/* --mean / --std: one finite number, or one per input channel, comma-separated (--std: each > 0;
 * at most KD_CLI_NORM_MAX). With v and c > 0: into v[0..c) (one value repeated to all c), an error
 * unless the count is 1 or c; with v and c == 0: the values as given into v (KD_CLI_NORM_MAX
 * floats); without v (NULL): only checked. Returns the count given, 0 after a usage error
 * (printed, naming the run file's line when the value came from one). */
#define KD_CLI_NORM_MAX 1024
int kd_cli_norm_list(const char *cmd, const char *opt, const char *arg, float *v, int c);

/* The data options of every command that takes --data (data_opts.c): getopt entries with the codes
 * below (put KD_CLI_DATA_OPTIONS in a command's option table, KD_CLI_DATA_HELP in its --help), and
 * their parser into a kd_data_opts (start from kd_data_opts_default()). */
enum {
    KD_CLI_O_DATA_FORMAT = 1000, KD_CLI_O_CHANNELS, KD_CLI_O_SIZE, KD_CLI_O_FIT, KD_CLI_O_TEST_FRACTION,
    KD_CLI_O_SPLIT_SEED, KD_CLI_O_LABEL_COLUMN, KD_CLI_O_SKIP_BAD
};
#define KD_CLI_DATA_OPTIONS                                                                                   \
    {"data-format", 1, 0, KD_CLI_O_DATA_FORMAT}, {"channels", 1, 0, KD_CLI_O_CHANNELS},                        \
        {"size", 1, 0, KD_CLI_O_SIZE}, {"fit", 1, 0, KD_CLI_O_FIT}, {"test-fraction", 1, 0, KD_CLI_O_TEST_FRACTION}, \
        {"split-seed", 1, 0, KD_CLI_O_SPLIT_SEED}, {"label-column", 1, 0, KD_CLI_O_LABEL_COLUMN},              \
        {"skip-bad", 0, 0, KD_CLI_O_SKIP_BAD}
#define KD_CLI_DATA_HELP                                                                                     \
    "Data (docs/DATA.md):\n"                                                                                 \
    "      --data-format F     auto (default: detected from --data), idx, images, cifar, numpy or csv\n"      \
    "      --channels 1|3      images as grey or RGB (default: as the files are)\n"                          \
    "      --size HxW          resize images to HxW (bilinear; default: as the files are)\n"                 \
    "      --fit crop|pad|stretch  how --size keeps the aspect (default crop: centre crop)\n"                \
    "      --test-fraction F   a folder or file with no test part: this share of each class is the test\n"  \
    "                          split (seeded, stratified; default 0.2)\n"                                    \
    "      --split-seed N      seed of that split (default 1)\n"                                             \
    "      --label-column C    CSV/TSV: the label column, a header name or 0-based index (default: last)\n" \
    "      --skip-bad          skip (and count) unreadable images instead of stopping\n"
/* One data option c with its argument into o: 1 if c is one (and good), 0 if c is not a data
 * option, -1 after printing a usage error. */
int kd_cli_parse_data_opt(const char *cmd, int c, const char *arg, kd_data_opts *o);
/* The same for a command's `default:` branch: 0 if handled, else KD_EXIT_USAGE after printing the
 * error ("unknown option" when c is not a data option). */
int kd_cli_data_opt(const char *cmd, int c, const char *arg, kd_data_opts *o);

/* For a model taking (in_c, in_h, in_w) inputs: an image folder spec is read at those channels
 * (when 1 or 3) and size unless o sets them (kd_cli_load_data with a model; bench with a .kdm). */
void kd_cli_data_fit(const char *spec, kd_data_opts *o, int in_c, int in_h, int in_w);

/* Load the train or test split of a data spec with the data options (kd_dataset_load_ex; NULL =
 * defaults). m, if given, is the model the data is for: an image folder is read at its channels
 * and size unless opts set them, and its shape, input type and classes are checked against the
 * data (kd_model_check_data). A test split gets the training split's scalar
 * statistics (what a model without its own normalisation was trained with) unless m has its own.
 * Returns 0, or an exit code after printing the error. */
int kd_cli_load_data(const char *cmd, const char *spec, const char *split, const kd_data_opts *opts, const kd_model *m,
                     kd_dataset *ds);

/* The one dispatch on a model argument's kind: a checkpoint (.safetensors, .ckpt) or an ONNX file
 * (.onnx, imported without normalisation) is loaded with its weights; anything else is a built-in or
 * YAML model name, freshly initialised from seed. kd_cli_load_model uses seed 1. */
int kd_cli_load_model_seeded(const char *cmd, const char *what, uint64_t seed, kd_model **m);
int kd_cli_load_model(const char *cmd, const char *what, kd_model **m);
/* Whether a model argument names a file with trained weights (checkpoint or ONNX). */
int kd_cli_model_is_trained(const char *what);

/* Human-readable sizes: "1.23 MB", "456 KB". */
void kd_cli_bytes(char *buf, size_t n, double bytes);
const char *kd_cli_class_name(const char *data_spec, int n_classes, int c);

/* A run file (YAML mapping of long option -> value, see config.c) turned into argv: the file's
 * options, then the command line's (argv[1..]), which therefore win. On success *argv is a new
 * array (free with kd_cli_free_args) and *n_from_file counts argv[0] and the file's entries. */
struct option;
int kd_cli_config_args(const char *cmd, const char *path, const struct option *flags, int *argc, char ***argv,
                       int *n_from_file);
/* A YAML file of sections (a pipeline file) read once, through the library's bounded loader; NULL
 * after printing the error ("distill <cmd>: error: ..."). path must outlive the handle and the
 * argv taken from it. */
typedef struct kd_cli_yaml kd_cli_yaml;
kd_cli_yaml *kd_cli_yaml_open(const char *cmd, const char *path);
void kd_cli_yaml_close(kd_cli_yaml *y);
/* Every top-level key is one of known (else an error with its line and the closest name) and every
 * key of required is there. Returns 1, or 0 after printing the error. */
int kd_cli_config_keys(const kd_cli_yaml *y, const char *const *known, const char *const *required);
/* The mapping under `section` as argv: head (NULL-terminated; head[0] names the command) first,
 * then one "--key value" per entry, keys checked against the option tables (a NULL-terminated
 * list; flags take true/false). Returns 1, -1 if the file has no such section (argv = head only),
 * 0 on error (printed). */
int kd_cli_config_section(const kd_cli_yaml *y, const char *section, const struct option *const *tables,
                          const char *const *head, int *argc, char ***argv);
/* A top-level scalar (pointing into the file's document) or def. Returns 0 after printing an error
 * if the key holds a list or mapping. */
int kd_cli_config_scalar(const kd_cli_yaml *y, const char *key, const char *def, const char **value);
/* "FILE:LINE: " if the string s was taken from a YAML file (an argv entry or scalar from the
 * functions above, still alive), else "": what a range check prints before its message. */
const char *kd_cli_config_where(const char *s);
void kd_cli_free_args(int argc, char **argv);
/* A .kdm run through the runtime's public API (cmd_bench.c): loaded, prepared, every image of the
 * test set invoked one at a time (int8 inputs and logits kept for checks), `runs` timed batch-1
 * invocations. Returns 0, or an exit code after printing "distill <cmd>: error: ...". */
typedef struct kd_cli_kdm {
    kdrt_model m;
    uint8_t *bytes, *arena;     /* the model (16-byte aligned copy) and its arena; owned */
    size_t len, arena_bytes, all_acts;
    int n;                      /* test images */
    int8_t *in, *out;           /* (n, input) model inputs, (n, classes) int8 logits */
    double median_us, p99_us, images_per_s, accuracy;
} kd_cli_kdm;
int kd_cli_kdm_run(const char *cmd, const char *path, const kd_dataset *test, int runs, kd_cli_kdm *r);
void kd_cli_kdm_free(kd_cli_kdm *r);

/* OpenMP's process-wide default thread count, the one thread setting the CLI makes: each command
 * sets it once after parsing its options, to its -j (or to 1 where it runs one thread), the count
 * it passes to the library. The library's own loops take their count from the model and never read
 * this default, but oneDNN's sgemm takes no count and uses it outside a parallel region (linear
 * layers, one-thread convolutions; its partition of the sums depends on it), so it must match, as
 * it did when kd_model_set_batch set it. The LM's own ops take their count from the model
 * (kd_lm_set_threads); its matrix products go through kd_sgemm too. n < 1 means 1. */
void kd_cli_threads(int n);

/* Batch-1 forward latency over the first n images, 1 thread (OpenMP's default is 1 while it runs,
 * then restored): median and p99 in microseconds. */
int kd_cli_latency(kd_model *m, const kd_dataset *ds, int n, double *median_us, double *p99_us);

/* The help of `distill train` (kd = 0) and `distill kd` (kd = 1), cli/train_help.c. */
void kd_cli_train_help(int kd);

extern volatile int kd_cli_stop; /* set by SIGINT/SIGTERM */
void kd_cli_install_signals(void);

/* `distill kd --search`'s report (cli/kd_search.c): the plan and a table per rung on stdout as
 * kd_search calls back, then the winner as the options that reproduce it. */
typedef struct kd_cli_search_report {
    int n_val;            /* the validation images that score the candidates */
    int user_epochs;      /* the user's --epochs, which the final run keeps; 0 = the winner's */
    int rung;             /* the rung whose table is open; -1 before the first */
    kd_search_plan plan;  /* as kd_search gave it */
} kd_cli_search_report;
/* Set up r and point sc's callbacks at it. */
void kd_cli_search_report_init(kd_cli_search_report *r, kd_search_config *sc, int n_val, int user_epochs);
/* "search: best (validation ..): --loss .. [--mixup A] [--translate N] --epochs E", the options of
 * the final run: the augmentation where it differs from base, the run's own, and the run's epochs
 * (the user's when given, then with a note of the winner's). */
void kd_cli_search_winner(const kd_cli_search_report *r, const kd_search_result *w, int n_terms,
                          const kd_augment *base);
#endif
