/* Attack (a) in C: the float ABI, no backward at all. The forward runs in double on a double
 * copy of the parameters; every gradient is a central difference of it, returned as float
 * (float's tolerances accept finite differences' error). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bpttcheck.h"

static double forward(const bptt_dims *d, double *const *p, const int *inputs,
                      const int *targets, const float *h0, float *h_last)
{
    const int T = d->T, X = d->X, H = d->H, Y = d->Y;
    double h[64], hn[64], z[64], loss = 0.0;
    for (int i = 0; i < H; i++) h[i] = h0[i];
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < H; i++) {
            double a = p[3][i] + p[0][i * X + inputs[t]];
            for (int j = 0; j < H; j++) a += p[1][i * H + j] * h[j];
            hn[i] = tanh(a);
        }
        memcpy(h, hn, sizeof(double) * H);
        double zmax = -INFINITY, s = 0.0;
        for (int k = 0; k < Y; k++) {
            z[k] = p[4][k];
            for (int j = 0; j < H; j++) z[k] += p[2][k * H + j] * h[j];
            if (z[k] > zmax) zmax = z[k];
        }
        for (int k = 0; k < Y; k++) s += exp(z[k] - zmax);
        loss += zmax + log(s) - z[targets[t]];
    }
    if (h_last) for (int i = 0; i < H; i++) h_last[i] = (float)h[i];
    return loss;
}

float bptt_rnn_loss_and_grads(const bptt_dims *d, const float *const *params,
                              const int *inputs, const int *targets, const float *h0,
                              float *const *grads, float *h_last)
{
    const int sizes[5] = {d->H * d->X, d->H * d->H, d->Y * d->H, d->H, d->Y};
    double *p[5];
    for (int g = 0; g < 5; g++) {
        p[g] = malloc(sizeof(double) * sizes[g]);
        for (int i = 0; i < sizes[g]; i++) p[g][i] = params[g][i];
    }
    double loss = forward(d, p, inputs, targets, h0, h_last);
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < sizes[g]; i++) {
            double old = p[g][i];
            p[g][i] = old + 1e-5;
            double up = forward(d, p, inputs, targets, h0, NULL);
            p[g][i] = old - 1e-5;
            double down = forward(d, p, inputs, targets, h0, NULL);
            p[g][i] = old;
            grads[g][i] = (float)((up - down) / 2e-5);
        }
    }
    for (int g = 0; g < 5; g++) free(p[g]);
    return (float)loss;
}
