/* Placeholder of the issue-14 contract commit: replaced by the reader itself. */
#include "distill/data.h"

kd_status kd_dataset_load_numpy(kd_dataset *ds, const char *spec, const char *split, const kd_data_opts *opts,
                             kd_error *err) {
    (void)ds; (void)split; (void)opts;
    return kd_error_set(err, KD_STATUS_BAD_ARG, "%s: this data format is not built yet", spec);
}
