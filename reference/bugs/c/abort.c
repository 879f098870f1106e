/* bpttcheck-expect: error:crash */
/* arch: rnn */
/* groups: - */
/* Bug: work in progress.  The forward pass is written, but the backward pass
   is a stub that prints a message to stderr and calls abort(), so every call
   dies with SIGABRT after the forward pass.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

float bptt_rnn_loss_and_grads(const bptt_dims *d, const float *const *params,
                              const int *inputs, const int *targets,
                              const float *h0, float *const *grads, float *h_last)
{
    int T = d->T, X = d->X, H = d->H, Y = d->Y;
    const float *Wxh = params[0], *Whh = params[1], *Why = params[2];
    const float *bh = params[3], *by = params[4];

    float *h = malloc(sizeof(float) * (T + 1) * H);   /* h[0] = h0 */
    float *p = malloc(sizeof(float) * T * Y);
    float loss = 0.0f;

    memcpy(h, h0, sizeof(float) * H);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < H; i++) {
            float s = bh[i] + Wxh[i * X + inputs[t]];
            for (int j = 0; j < H; j++)
                s += Whh[i * H + j] * h[t * H + j];
            h[(t + 1) * H + i] = tanhf(s);
        }
        float *pt = p + t * Y, zmax = -INFINITY, sum = 0.0f;
        for (int k = 0; k < Y; k++) {
            float s = by[k];
            for (int j = 0; j < H; j++)
                s += Why[k * H + j] * h[(t + 1) * H + j];
            pt[k] = s;
            if (s > zmax)
                zmax = s;
        }
        for (int k = 0; k < Y; k++) {
            pt[k] = expf(pt[k] - zmax);
            sum += pt[k];
        }
        for (int k = 0; k < Y; k++)
            pt[k] /= sum;
        loss += -logf(pt[targets[t]]);
    }
    memcpy(h_last, h + T * H, sizeof(float) * H);

    /* TODO: backward pass into grads[0..4] */
    (void)grads;
    free(h);
    free(p);
    fprintf(stderr, "bptt_rnn_loss_and_grads: backward pass not implemented (loss=%g)\n",
            (double)loss);
    abort();
}
