/*
 * rnn_f64.c -- reference vanilla RNN (tanh) with backpropagation through time,
 * double precision, in the bpttcheck C ABI (see bpttcheck.h).  Same code as
 * rnn.c with double everywhere; handy as a float64 reference and for finite
 * differences that are not swamped by rounding.
 *
 *     h[t+1] = tanh(Wxh @ onehot(x[t]) + Whh @ h[t] + bh)
 *     z[t]   = Why @ h[t+1] + by
 *     loss   = sum_t -log softmax(z[t])[target[t]]
 *
 * Build: gcc -O2 -shared -fPIC -Wall -I<dir of bpttcheck.h> rnn_f64.c -o rnn_f64.so -lm
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

/*
 * Softmax of n logits into p, with the largest logit subtracted first so
 * that exp never overflows (the largest term becomes exp(0) = 1, so the
 * denominator is also >= 1).  Returns log(sum_j exp(z_j)), which gives the
 * cross-entropy without taking the log of a probability that may have
 * underflowed to zero.
 */
static double softmax_logsumexp(const double *z, double *p, int n)
{
    double zmax = z[0];
    for (int k = 1; k < n; k++)
        if (z[k] > zmax)
            zmax = z[k];

    double denom = 0.0;
    for (int k = 0; k < n; k++) {
        p[k] = exp(z[k] - zmax);
        denom += p[k];
    }
    for (int k = 0; k < n; k++)
        p[k] /= denom;
    return zmax + log(denom);
}

double bptt_rnn_loss_and_grads_f64(const bptt_dims *d,
                                   const double *const *params,
                                   const int *inputs, const int *targets,
                                   const double *h0,
                                   double *const *grads,
                                   double *h_last)
{
    const int T = d->T, X = d->X, H = d->H, Y = d->Y;
    const double *Wxh = params[0], *Whh = params[1], *Why = params[2];
    const double *bh = params[3], *by = params[4];
    double *dWxh = grads[0], *dWhh = grads[1], *dWhy = grads[2];
    double *dbh = grads[3], *dby = grads[4];

    /*
     * Work memory, sized from d.  hs holds T+1 states: hs[0] is a copy of h0
     * and hs[t+1] is the state produced by step t, so "previous" is row t and
     * "current" is row t+1 everywhere below.  ps keeps every step's
     * probabilities because the backward pass needs them.
     */
    double *hs = malloc(sizeof(double) * (size_t)(T + 1) * H);
    double *ps = malloc(sizeof(double) * (size_t)T * Y);
    double *z = malloc(sizeof(double) * Y);
    double *dy = malloc(sizeof(double) * Y);
    double *dh = malloc(sizeof(double) * H);
    double *dh_raw = malloc(sizeof(double) * H);
    double *dh_next = malloc(sizeof(double) * H);
    if (!hs || !ps || !z || !dy || !dh || !dh_raw || !dh_next) {
        free(hs); free(ps); free(z); free(dy); free(dh); free(dh_raw); free(dh_next);
        return NAN;
    }

    /* ---------------- forward ---------------- */
    memcpy(hs, h0, sizeof(double) * H);
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        const double *h_prev = hs + (size_t)t * H;
        double *h_cur = hs + (size_t)(t + 1) * H;

        for (int i = 0; i < H; i++) {
            /* Wxh @ onehot(x) is just column x of Wxh. */
            double a = bh[i] + Wxh[i * X + inputs[t]];
            for (int j = 0; j < H; j++)
                a += Whh[i * H + j] * h_prev[j];
            h_cur[i] = tanh(a);
        }

        for (int k = 0; k < Y; k++) {
            double a = by[k];
            for (int j = 0; j < H; j++)
                a += Why[k * H + j] * h_cur[j];
            z[k] = a;
        }

        /* -log p[target] = logsumexp(z) - z[target] */
        double lse = softmax_logsumexp(z, ps + (size_t)t * Y, Y);
        loss += lse - z[targets[t]];
    }
    if (h_last)
        memcpy(h_last, hs + (size_t)T * H, sizeof(double) * H);

    /* ---------------- backward ---------------- */
    /*
     * The parameters are shared by every step, so each step ADDS its
     * contribution; the accumulators therefore start at zero.  The caller's
     * buffers may hold anything on entry (the ABI says we overwrite them).
     */
    memset(dWxh, 0, sizeof(double) * (size_t)H * X);
    memset(dWhh, 0, sizeof(double) * (size_t)H * H);
    memset(dWhy, 0, sizeof(double) * (size_t)Y * H);
    memset(dbh, 0, sizeof(double) * H);
    memset(dby, 0, sizeof(double) * Y);
    /* Nothing flows back into the last step from the future. */
    memset(dh_next, 0, sizeof(double) * H);

    for (int t = T - 1; t >= 0; t--) {
        const double *h_prev = hs + (size_t)t * H;
        const double *h_cur = hs + (size_t)(t + 1) * H;
        const double *p = ps + (size_t)t * Y;

        /* Softmax + cross-entropy: dloss/dz = p - onehot(target). */
        for (int k = 0; k < Y; k++)
            dy[k] = p[k];
        dy[targets[t]] -= 1.0;

        /* z = Why @ h_cur + by: the output layer sees the CURRENT state. */
        for (int k = 0; k < Y; k++) {
            dby[k] += dy[k];
            for (int j = 0; j < H; j++)
                dWhy[k * H + j] += dy[k] * h_cur[j];
        }

        /* h_cur feeds both this step's output and the next step's recurrence. */
        for (int j = 0; j < H; j++) {
            double s = dh_next[j];
            for (int k = 0; k < Y; k++)
                s += Why[k * H + j] * dy[k];
            dh[j] = s;
        }

        /* Through tanh: d tanh(a)/da = 1 - tanh(a)^2 = 1 - h_cur^2. */
        for (int i = 0; i < H; i++) {
            dh_raw[i] = (1.0 - h_cur[i] * h_cur[i]) * dh[i];
            dbh[i] += dh_raw[i];
        }

        /*
         * Pre-activation a = Wxh @ onehot(x) + Whh @ h_prev + bh.  The input
         * is one-hot, so only column x of dWxh receives anything; Whh
         * multiplied the PREVIOUS state.
         */
        for (int i = 0; i < H; i++) {
            dWxh[i * X + inputs[t]] += dh_raw[i];
            for (int j = 0; j < H; j++)
                dWhh[i * H + j] += dh_raw[i] * h_prev[j];
        }

        /* Gradient reaching h_prev through Whh: Whh^T @ dh_raw. */
        for (int j = 0; j < H; j++) {
            double s = 0.0;
            for (int i = 0; i < H; i++)
                s += Whh[i * H + j] * dh_raw[i];
            dh_next[j] = s;
        }
    }

    free(hs); free(ps); free(z); free(dy); free(dh); free(dh_raw); free(dh_next);
    return loss;
}
