/* bpttcheck-expect: pass; warning softmax.unstable */
/* arch: rnn */
/* groups: - */
/* Bug: the softmax in the forward loop: exp(z) without subtracting max(z) first.
   The math is right and so are the gradients on ordinary cases, but expf
   overflows to inf once a logit exceeds about 88, giving inf/inf = NaN where the
   reference is finite.
 */
#include <math.h>
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
    float *dWxh = grads[0], *dWhh = grads[1], *dWhy = grads[2];
    float *dbh = grads[3], *dby = grads[4];

    /* h holds T+1 states of H floats: h[0] = h0, h[t+1] = state after step t */
    float *h = malloc(sizeof(float) * (T + 1) * H);
    float *p = malloc(sizeof(float) * T * Y);     /* probabilities per step */
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
        float sum = 0.0f;
        for (int k = 0; k < Y; k++) {
            float s = by[k];
            for (int j = 0; j < H; j++)
                s += Why[k * H + j] * h[(t + 1) * H + j];
            pt[k] = expf(s);
            sum += pt[k];
        }
        for (int k = 0; k < Y; k++)
            pt[k] /= sum;
        loss += -logf(pt[targets[t]]);
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
        }

        for (int i = 0; i < H; i++) {
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
