/* Internal to the fp32 ops (src/nn): the team size of an op's OpenMP loops. Every parallel op
 * takes its thread count from its caller (the model's n_threads), never from OpenMP's
 * process-wide default, so two models with different counts can run in one process. */
#ifndef KD_NN_OPS_INTERNAL_H
#define KD_NN_OPS_INTERNAL_H

/* threads >= 1 as given; anything smaller runs on one thread (num_threads needs a positive count). */
static inline int kd_op_threads(int threads) { return threads > 0 ? threads : 1; }

#endif
