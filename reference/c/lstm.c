/*
 * lstm.c -- reference LSTM with backpropagation through time, single
 * precision, in the bpttcheck C ABI (see bpttcheck.h).
 *
 *     v = [h[t]; onehot(x[t])]                      (hidden part first, H+X)
 *     f = sig(Wf v + bf)   i = sig(Wi v + bi)   g = tanh(Wg v + bg)   o = sig(Wo v + bo)
 *     c[t+1] = f * c[t] + i * g
 *     h[t+1] = o * tanh(c[t+1])
 *     z[t]   = Wy h[t+1] + by
 *     loss   = sum_t -log softmax(z[t])[target[t]]
 *
 * params/grads order: Wf, Wi, Wg, Wo (H,H+X), bf, bi, bg, bo (H), Wy (Y,H), by (Y).
 *
 * Build: gcc -O2 -shared -fPIC -Wall -I<dir of bpttcheck.h> lstm.c -o lstm.so -lm
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

enum { GATE_F, GATE_I, GATE_G, GATE_O, NGATES };

static float sigmoidf(float a)
{
    return 1.0f / (1.0f + expf(-a));
}

/* out[r] += sum_c W[r, c] * v[c] for a row-major (rows, cols) matrix W. */
static void matvec_add(const float *W, const float *v, int rows, int cols, float *out)
{
    for (int r = 0; r < rows; r++) {
        float s = 0.0f;
        for (int c = 0; c < cols; c++)
            s += W[r * cols + c] * v[c];
        out[r] += s;
    }
}

/* out[c] += sum_r W[r, c] * a[r], i.e. out += W^T a. */
static void matTvec_add(const float *W, const float *a, int rows, int cols, float *out)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[c] += W[r * cols + c] * a[r];
}

/* dW[r, c] += a[r] * v[c]: the gradient of W in y = W v, given dy = a. */
static void outer_add(float *dW, const float *a, const float *v, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dW[r * cols + c] += a[r] * v[c];
}

/* Stable softmax (largest logit subtracted); returns log sum_j exp(z_j). */
static float softmax_logsumexp(const float *z, float *p, int n)
{
    float zmax = z[0];
    for (int k = 1; k < n; k++)
        if (z[k] > zmax)
            zmax = z[k];
    float denom = 0.0f;
    for (int k = 0; k < n; k++) {
        p[k] = expf(z[k] - zmax);
        denom += p[k];
    }
    for (int k = 0; k < n; k++)
        p[k] /= denom;
    return zmax + logf(denom);
}

/* v = [h; onehot(x)] */
static void build_v(float *v, const float *h, int x, int H, int X)
{
    memcpy(v, h, sizeof(float) * H);
    memset(v + H, 0, sizeof(float) * X);
    v[H + x] = 1.0f;
}

float bptt_lstm_loss_and_grads(const bptt_dims *d,
                               const float *const *params,
                               const int *inputs, const int *targets,
                               const float *h0, const float *c0,
                               float *const *grads,
                               float *h_last, float *c_last)
{
    const int T = d->T, X = d->X, H = d->H, Y = d->Y;
    const int V = H + X;                       /* length of v */
    const float *W[NGATES] = { params[0], params[1], params[2], params[3] };
    const float *b[NGATES] = { params[4], params[5], params[6], params[7] };
    const float *Wy = params[8], *by = params[9];
    float *dW[NGATES] = { grads[0], grads[1], grads[2], grads[3] };
    float *db[NGATES] = { grads[4], grads[5], grads[6], grads[7] };
    float *dWy = grads[8], *dby = grads[9];

    /*
     * Work memory.  hs and cs hold T+1 states each: row 0 is the initial
     * state, row t+1 the state produced by step t.  act[gate] keeps each
     * gate's OUTPUT (after its nonlinearity) for every step; the backward
     * pass builds the derivatives from those outputs.
     */
    size_t states = (size_t)(T + 1) * H, steps = (size_t)T * H;
    float *hs = malloc(sizeof(float) * states);
    float *cs = malloc(sizeof(float) * states);
    float *act = malloc(sizeof(float) * NGATES * steps);
    float *ps = malloc(sizeof(float) * (size_t)T * Y);
    float *v = malloc(sizeof(float) * V);
    float *z = malloc(sizeof(float) * Y);
    float *dy = malloc(sizeof(float) * Y);
    float *dh = malloc(sizeof(float) * H);
    float *dc = malloc(sizeof(float) * H);
    float *draw = malloc(sizeof(float) * NGATES * H);  /* pre-activation grads */
    float *dv = malloc(sizeof(float) * V);
    float *dh_next = malloc(sizeof(float) * H);
    float *dc_next = malloc(sizeof(float) * H);
    float *buffers[] = { hs, cs, act, ps, v, z, dy, dh, dc, draw, dv, dh_next, dc_next };
    const int nbuf = (int)(sizeof buffers / sizeof buffers[0]);
    for (int k = 0; k < nbuf; k++) {
        if (!buffers[k]) {
            for (int m = 0; m < nbuf; m++)
                free(buffers[m]);
            return NAN;
        }
    }
#define ACT(gate, t) (act + ((size_t)(gate) * T + (t)) * H)

    /* ---------------- forward ---------------- */
    memcpy(hs, h0, sizeof(float) * H);
    memcpy(cs, c0, sizeof(float) * H);
    float loss = 0.0f;
    for (int t = 0; t < T; t++) {
        const float *c_prev = cs + (size_t)t * H;
        float *h_cur = hs + (size_t)(t + 1) * H;
        float *c_cur = cs + (size_t)(t + 1) * H;
        build_v(v, hs + (size_t)t * H, inputs[t], H, X);

        for (int k = 0; k < NGATES; k++) {
            float *a = ACT(k, t);
            memcpy(a, b[k], sizeof(float) * H);
            matvec_add(W[k], v, H, V, a);
            for (int j = 0; j < H; j++)
                a[j] = (k == GATE_G) ? tanhf(a[j]) : sigmoidf(a[j]);
        }
        const float *f = ACT(GATE_F, t), *ig = ACT(GATE_I, t);
        const float *g = ACT(GATE_G, t), *o = ACT(GATE_O, t);
        for (int j = 0; j < H; j++) {
            c_cur[j] = f[j] * c_prev[j] + ig[j] * g[j];
            h_cur[j] = o[j] * tanhf(c_cur[j]);
        }

        memcpy(z, by, sizeof(float) * Y);
        matvec_add(Wy, h_cur, Y, H, z);
        float lse = softmax_logsumexp(z, ps + (size_t)t * Y, Y);
        loss += lse - z[targets[t]];
    }
    if (h_last)
        memcpy(h_last, hs + (size_t)T * H, sizeof(float) * H);
    if (c_last)
        memcpy(c_last, cs + (size_t)T * H, sizeof(float) * H);

    /* ---------------- backward ---------------- */
    /* Shared parameters: every step adds into zeroed accumulators. */
    for (int k = 0; k < NGATES; k++) {
        memset(dW[k], 0, sizeof(float) * (size_t)H * V);
        memset(db[k], 0, sizeof(float) * H);
    }
    memset(dWy, 0, sizeof(float) * (size_t)Y * H);
    memset(dby, 0, sizeof(float) * Y);
    /* Both recurrent paths (h and c) carry nothing into the last step. */
    memset(dh_next, 0, sizeof(float) * H);
    memset(dc_next, 0, sizeof(float) * H);

    for (int t = T - 1; t >= 0; t--) {
        const float *h_prev = hs + (size_t)t * H;
        const float *c_prev = cs + (size_t)t * H;        /* c[t]   */
        const float *h_cur = hs + (size_t)(t + 1) * H;   /* h[t+1] */
        const float *c_cur = cs + (size_t)(t + 1) * H;   /* c[t+1] */
        const float *f = ACT(GATE_F, t), *ig = ACT(GATE_I, t);
        const float *g = ACT(GATE_G, t), *o = ACT(GATE_O, t);
        const float *p = ps + (size_t)t * Y;

        /* Softmax + cross-entropy: dz = p - onehot(target). */
        memcpy(dy, p, sizeof(float) * Y);
        dy[targets[t]] -= 1.0f;

        /* Output layer reads the CURRENT hidden state h[t+1]. */
        outer_add(dWy, dy, h_cur, Y, H);
        for (int k = 0; k < Y; k++)
            dby[k] += dy[k];

        /* h[t+1] feeds the output and the next step. */
        memcpy(dh, dh_next, sizeof(float) * H);
        matTvec_add(Wy, dy, Y, H, dh);

        float *df = draw + GATE_F * H, *di = draw + GATE_I * H;
        float *dg = draw + GATE_G * H, *dout = draw + GATE_O * H;
        for (int j = 0; j < H; j++) {
            float tc = tanhf(c_cur[j]);
            /* h = o * tanh(c): two paths, to o and (through tanh) to c.  The
             * cell also receives dc_next from the following step. */
            float d_o = dh[j] * tc;
            dc[j] = dh[j] * o[j] * (1.0f - tc * tc) + dc_next[j];

            /* c[t+1] = f * c[t] + i * g */
            float d_f = dc[j] * c_prev[j];
            float d_i = dc[j] * g[j];
            float d_g = dc[j] * ig[j];

            /* Back through the gate nonlinearities.  f, i, g, o already hold
             * the OUTPUTS, so sigmoid' = s (1 - s) and tanh' = 1 - g^2. */
            df[j] = d_f * f[j] * (1.0f - f[j]);
            di[j] = d_i * ig[j] * (1.0f - ig[j]);
            dg[j] = d_g * (1.0f - g[j] * g[j]);
            dout[j] = d_o * o[j] * (1.0f - o[j]);

            /* The cell path to the previous step goes through the forget gate. */
            dc_next[j] = dc[j] * f[j];
        }

        /* Each gate is W v + b with the same v; all four add into dv. */
        build_v(v, h_prev, inputs[t], H, X);
        memset(dv, 0, sizeof(float) * V);
        for (int k = 0; k < NGATES; k++) {
            const float *a = draw + (size_t)k * H;
            outer_add(dW[k], a, v, H, V);
            for (int j = 0; j < H; j++)
                db[k][j] += a[j];
            matTvec_add(W[k], a, H, V, dv);
        }
        /* v = [h[t]; onehot(x)]: the hidden part is the first H entries. */
        memcpy(dh_next, dv, sizeof(float) * H);
    }
#undef ACT

    for (int k = 0; k < nbuf; k++)
        free(buffers[k]);
    return loss;
}
