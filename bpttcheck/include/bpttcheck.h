/*
 * bpttcheck.h -- the C ABI that bpttcheck uses to call hand-written
 * backpropagation-through-time code.
 *
 * A submission defines one or more of the functions declared below (any
 * subset: the checker looks up the symbols it needs for the architecture it
 * is checking).  `bpttcheck run model.c` compiles the file itself, roughly
 *
 *     cc -O2 -shared -fPIC -I<dir of this header> model.c -o model.so -lm
 *
 * and a prebuilt `model.so` is loaded as given.
 *
 * ---------------------------------------------------------------------------
 * Conventions shared by every function
 * ---------------------------------------------------------------------------
 *
 * Sizes.  `d` describes one case: T time steps (T >= 1), X input classes,
 * H hidden units, Y output classes.
 *
 * Inputs and targets.  `inputs[t]` (0 <= inputs[t] < X) is the index of the
 * one-hot input at step t; `targets[t]` (0 <= targets[t] < Y) is the index of
 * the correct output class at step t.  Both arrays have T entries.  For
 * character models X == Y (the vocabulary).
 *
 * Matrices.  Every matrix is a contiguous row-major array of float (or double
 * for the _f64 variants): a matrix of shape (R, C) has element (r, c) at
 * offset r * C + c.  Vectors (biases, states) are contiguous arrays.
 *
 * params.  An array of pointers, one per parameter, in the fixed order given
 * for each architecture below.  The callee must not modify the parameters,
 * the inputs, the targets or the initial state.
 *
 * grads.  An array of pointers in exactly the same order and with exactly the
 * same shapes as params.  The caller allocates the buffers; their contents on
 * entry are unspecified (they may hold the result of a previous call, or
 * garbage).  The callee FULLY OVERWRITES every element: on return grads[k]
 * holds d(loss)/d(params[k]) for the loss this call returned.  Accumulating
 * into the caller's buffers without first zeroing them is a bug.
 *
 * Return value.  The loss, summed over time steps:
 *
 *     loss = sum_t -log softmax(z[t])[targets[t]]
 *
 * where z[t] (Y entries) are the output logits at step t.  (bpttcheck detects
 * a mean-over-time loss from the value returned; the gradients must then be
 * those of the mean too.)
 *
 * h_last / c_last.  Buffers of H elements, allocated by the caller, that
 * receive the hidden state (and for the LSTM the cell state) after the last
 * step, i.e. h[T] (and c[T]).
 *
 * Ownership.  The caller allocates and owns everything passed in.  The callee
 * keeps no pointer to any of it after returning, and whatever work memory it
 * allocates it frees before returning.  A call must not depend on an earlier
 * call: the same arguments give the same results every time.
 *
 * ---------------------------------------------------------------------------
 * Architectures (state index convention: h[0] = h0, step t maps the state
 * h[t] to h[t+1]; onehot(k) is the unit vector with a 1 at index k)
 * ---------------------------------------------------------------------------
 *
 * Vanilla RNN:
 *     h[t+1] = tanh(Wxh @ onehot(inputs[t]) + Whh @ h[t] + bh)
 *     z[t]   = Why @ h[t+1] + by
 *   params: Wxh (H,X), Whh (H,H), Why (Y,H), bh (H), by (Y)
 *
 * LSTM, gates acting on v = [h[t]; onehot(inputs[t])] (hidden part first,
 * length H+X); sig is the logistic sigmoid:
 *     f = sig(Wf @ v + bf)     i = sig(Wi @ v + bi)
 *     g = tanh(Wg @ v + bg)    o = sig(Wo @ v + bo)
 *     c[t+1] = f * c[t] + i * g
 *     h[t+1] = o * tanh(c[t+1])
 *     z[t]   = Wy @ h[t+1] + by
 *   params: Wf, Wi, Wg, Wo (H,H+X), bf, bi, bg, bo (H), Wy (Y,H), by (Y)
 *
 * GRU (the bpttcheck convention: the reset gate multiplies the previous state
 * before the candidate's matrix product, and the update gate zg keeps the
 * OLD state):
 *     v  = [h[t]; onehot(inputs[t])]
 *     zg = sig(Wz @ v + bz)
 *     r  = sig(Wr @ v + br)
 *     n  = tanh(Wn @ [r * h[t]; onehot(inputs[t])] + bn)
 *     h[t+1] = (1 - zg) * n + zg * h[t]
 *     z[t]   = Wy @ h[t+1] + by
 *   params: Wz, Wr, Wn (H,H+X), bz, br, bn (H), Wy (Y,H), by (Y)
 */
#ifndef BPTTCHECK_H
#define BPTTCHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the calling convention described above. */
#define BPTTCHECK_ABI_VERSION 1

/* Sizes of one case: time steps, input classes, hidden units, output classes. */
typedef struct {
    int T, X, H, Y;
} bptt_dims;

/* Positions in the params[] / grads[] arrays, per architecture. */
enum { BPTT_RNN_WXH, BPTT_RNN_WHH, BPTT_RNN_WHY, BPTT_RNN_BH, BPTT_RNN_BY,
       BPTT_RNN_NPARAMS };
enum { BPTT_LSTM_WF, BPTT_LSTM_WI, BPTT_LSTM_WG, BPTT_LSTM_WO,
       BPTT_LSTM_BF, BPTT_LSTM_BI, BPTT_LSTM_BG, BPTT_LSTM_BO,
       BPTT_LSTM_WY, BPTT_LSTM_BY, BPTT_LSTM_NPARAMS };
enum { BPTT_GRU_WZ, BPTT_GRU_WR, BPTT_GRU_WN,
       BPTT_GRU_BZ, BPTT_GRU_BR, BPTT_GRU_BN,
       BPTT_GRU_WY, BPTT_GRU_BY, BPTT_GRU_NPARAMS };

/* ---- single precision ---------------------------------------------------- */

/* Vanilla RNN.  params/grads: Wxh, Whh, Why, bh, by.  h0, h_last: H floats. */
float bptt_rnn_loss_and_grads(const bptt_dims *d,
                              const float *const *params,
                              const int *inputs, const int *targets,
                              const float *h0,
                              float *const *grads,
                              float *h_last);

/* LSTM.  params/grads: Wf, Wi, Wg, Wo, bf, bi, bg, bo, Wy, by.
 * h0, c0, h_last, c_last: H floats each. */
float bptt_lstm_loss_and_grads(const bptt_dims *d,
                               const float *const *params,
                               const int *inputs, const int *targets,
                               const float *h0, const float *c0,
                               float *const *grads,
                               float *h_last, float *c_last);

/* GRU (convention above).  params/grads: Wz, Wr, Wn, bz, br, bn, Wy, by.
 * h0, h_last: H floats. */
float bptt_gru_loss_and_grads(const bptt_dims *d,
                              const float *const *params,
                              const int *inputs, const int *targets,
                              const float *h0,
                              float *const *grads,
                              float *h_last);

/* ---- double precision: identical, with double wherever float is above ---- */

double bptt_rnn_loss_and_grads_f64(const bptt_dims *d,
                                   const double *const *params,
                                   const int *inputs, const int *targets,
                                   const double *h0,
                                   double *const *grads,
                                   double *h_last);

double bptt_lstm_loss_and_grads_f64(const bptt_dims *d,
                                    const double *const *params,
                                    const int *inputs, const int *targets,
                                    const double *h0, const double *c0,
                                    double *const *grads,
                                    double *h_last, double *c_last);

double bptt_gru_loss_and_grads_f64(const bptt_dims *d,
                                   const double *const *params,
                                   const int *inputs, const int *targets,
                                   const double *h0,
                                   double *const *grads,
                                   double *h_last);

/* Function-pointer types, for loaders written in C. */
typedef float (*bptt_rnn_fn)(const bptt_dims *, const float *const *,
                             const int *, const int *, const float *,
                             float *const *, float *);
typedef float (*bptt_lstm_fn)(const bptt_dims *, const float *const *,
                              const int *, const int *, const float *,
                              const float *, float *const *, float *, float *);
typedef float (*bptt_gru_fn)(const bptt_dims *, const float *const *,
                             const int *, const int *, const float *,
                             float *const *, float *);
typedef double (*bptt_rnn_f64_fn)(const bptt_dims *, const double *const *,
                                  const int *, const int *, const double *,
                                  double *const *, double *);
typedef double (*bptt_lstm_f64_fn)(const bptt_dims *, const double *const *,
                                   const int *, const int *, const double *,
                                   const double *, double *const *, double *,
                                   double *);
typedef double (*bptt_gru_f64_fn)(const bptt_dims *, const double *const *,
                                  const int *, const int *, const double *,
                                  double *const *, double *);

#ifdef __cplusplus
}
#endif

#endif /* BPTTCHECK_H */
