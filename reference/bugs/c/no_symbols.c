/* bpttcheck-expect: error:interface */
/* arch: rnn */
/* groups: - */
/* Bug: the entry point is misnamed.  The file defines rnn_loss_and_grads
   (without the bptt_ prefix) and a helper, but none of the ABI functions
   bptt_{rnn,lstm,gru}_loss_and_grads[_f64], so there is nothing to call.
   The code itself is a correct RNN.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

/* Stable softmax of n logits in place; returns log(sum exp(z)). */
static float softmax_inplace(float *z, int n)
{
    float zmax = z[0], sum = 0.0f;
    for (int k = 1; k < n; k++)
        if (z[k] > zmax)
            zmax = z[k];
    for (int k = 0; k < n; k++) {
        z[k] = expf(z[k] - zmax);
        sum += z[k];
    }
    for (int k = 0; k < n; k++)
        z[k] /= sum;
    return zmax + logf(sum);
}

float rnn_loss_and_grads(const bptt_dims *d, const float *const *params,
                         const int *inputs, const int *targets,
                         const float *h0, float *const *grads, float *h_last)
{
    int T = d->T, X = d->X, H = d->H, Y = d->Y;
    const float *Wxh = params[0], *Whh = params[1], *Why = params[2];
    const float *bh = params[3], *by = params[4];
    float *dWxh = grads[0], *dWhh = grads[1], *dWhy = grads[2];
    float *dbh = grads[3], *dby = grads[4];

    float *h = malloc(sizeof(float) * (T + 1) * H);   /* h[0] = h0 */
    float *p = malloc(sizeof(float) * T * Y);
    float *dy = malloc(sizeof(float) * Y);
    float *dh = malloc(sizeof(float) * H);
    float *dh_raw = malloc(sizeof(float) * H);
    float *dh_next = malloc(sizeof(float) * H);
    float loss = 0.0f;

    memcpy(h, h0, sizeof(float) * H);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < H; i++) {
            float s = bh[i] + Wxh[i * X + inputs[t]];
            for (int j = 0; j < H; j++)
                s += Whh[i * H + j] * h[t * H + j];
            h[(t + 1) * H + i] = tanhf(s);
        }
        float *pt = p + t * Y;
        for (int k = 0; k < Y; k++) {
            float s = by[k];
            for (int j = 0; j < H; j++)
                s += Why[k * H + j] * h[(t + 1) * H + j];
            pt[k] = s;
        }
        float zt = pt[targets[t]];
        loss += softmax_inplace(pt, Y) - zt;
    }
    memcpy(h_last, h + T * H, sizeof(float) * H);

    memset(dWxh, 0, sizeof(float) * H * X);
    memset(dWhh, 0, sizeof(float) * H * H);
    memset(dWhy, 0, sizeof(float) * Y * H);
    memset(dbh, 0, sizeof(float) * H);
    memset(dby, 0, sizeof(float) * Y);
    memset(dh_next, 0, sizeof(float) * H);

    for (int t = T - 1; t >= 0; t--) {
        const float *hprev = h + t * H, *hcur = h + (t + 1) * H;
        for (int k = 0; k < Y; k++)
            dy[k] = p[t * Y + k];
        dy[targets[t]] -= 1.0f;
        for (int k = 0; k < Y; k++) {
            dby[k] += dy[k];
            for (int j = 0; j < H; j++)
                dWhy[k * H + j] += dy[k] * hcur[j];
        }
        for (int j = 0; j < H; j++) {
            float s = dh_next[j];
            for (int k = 0; k < Y; k++)
                s += Why[k * H + j] * dy[k];
            dh[j] = s;
        }
        for (int i = 0; i < H; i++) {
            dh_raw[i] = (1.0f - hcur[i] * hcur[i]) * dh[i];
            dbh[i] += dh_raw[i];
            dWxh[i * X + inputs[t]] += dh_raw[i];
            for (int j = 0; j < H; j++)
                dWhh[i * H + j] += dh_raw[i] * hprev[j];
        }
        for (int j = 0; j < H; j++) {
            float s = 0.0f;
            for (int i = 0; i < H; i++)
                s += Whh[i * H + j] * dh_raw[i];
            dh_next[j] = s;
        }
    }

    free(h); free(p); free(dy); free(dh); free(dh_raw); free(dh_next);
    return loss;
}
