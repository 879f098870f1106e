/*
 * gru.c -- reference GRU with backpropagation through time, single precision,
 * in the bpttcheck C ABI (see bpttcheck.h), bpttcheck's GRU convention:
 *
 *     v  = [h[t]; onehot(x[t])]                          (hidden part first)
 *     zg = sig(Wz v + bz)                                 update gate
 *     r  = sig(Wr v + br)                                 reset gate
 *     n  = tanh(Wn [r * h[t]; onehot(x[t])] + bn)         candidate
 *     h[t+1] = (1 - zg) * n + zg * h[t]                   zg keeps the OLD state
 *     z[t]   = Wy h[t+1] + by
 *     loss   = sum_t -log softmax(z[t])[target[t]]
 *
 * params/grads order: Wz, Wr, Wn (H,H+X), bz, br, bn (H), Wy (Y,H), by (Y).
 *
 * Build: gcc -O2 -shared -fPIC -Wall -I<dir of bpttcheck.h> gru.c -o gru.so -lm
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

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

/* out += W^T a */
static void matTvec_add(const float *W, const float *a, int rows, int cols, float *out)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[c] += W[r * cols + c] * a[r];
}

/* dW += a v^T */
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

float bptt_gru_loss_and_grads(const bptt_dims *d,
                              const float *const *params,
                              const int *inputs, const int *targets,
                              const float *h0,
                              float *const *grads,
                              float *h_last)
{
    const int T = d->T, X = d->X, H = d->H, Y = d->Y;
    const int V = H + X;
    const float *Wz = params[0], *Wr = params[1], *Wn = params[2];
    const float *bz = params[3], *br = params[4], *bn = params[5];
    const float *Wy = params[6], *by = params[7];
    float *dWz = grads[0], *dWr = grads[1], *dWn = grads[2];
    float *dbz = grads[3], *dbr = grads[4], *dbn = grads[5];
    float *dWy = grads[6], *dby = grads[7];

    /*
     * Work memory.  hs: T+1 states (row 0 = h0, row t+1 = after step t).
     * zs, rs, ns: gate outputs of every step, needed by the backward pass.
     */
    size_t steps = (size_t)T * H;
    float *hs = malloc(sizeof(float) * (size_t)(T + 1) * H);
    float *zs = malloc(sizeof(float) * steps);
    float *rs = malloc(sizeof(float) * steps);
    float *ns = malloc(sizeof(float) * steps);
    float *ps = malloc(sizeof(float) * (size_t)T * Y);
    float *v = malloc(sizeof(float) * V);
    float *u = malloc(sizeof(float) * V);        /* [r*h; onehot(x)] */
    float *z = malloc(sizeof(float) * Y);
    float *dy = malloc(sizeof(float) * Y);
    float *dh = malloc(sizeof(float) * H);
    float *dn_raw = malloc(sizeof(float) * H);
    float *dz_raw = malloc(sizeof(float) * H);
    float *dr_raw = malloc(sizeof(float) * H);
    float *du = malloc(sizeof(float) * V);
    float *dv = malloc(sizeof(float) * V);
    float *dh_next = malloc(sizeof(float) * H);
    float *buffers[] = { hs, zs, rs, ns, ps, v, u, z, dy, dh, dn_raw, dz_raw,
                         dr_raw, du, dv, dh_next };
    const int nbuf = (int)(sizeof buffers / sizeof buffers[0]);
    for (int k = 0; k < nbuf; k++) {
        if (!buffers[k]) {
            for (int m = 0; m < nbuf; m++)
                free(buffers[m]);
            return NAN;
        }
    }

    /* ---------------- forward ---------------- */
    memcpy(hs, h0, sizeof(float) * H);
    float loss = 0.0f;
    for (int t = 0; t < T; t++) {
        const float *h_prev = hs + (size_t)t * H;
        float *h_cur = hs + (size_t)(t + 1) * H;
        float *zg = zs + (size_t)t * H, *r = rs + (size_t)t * H, *n = ns + (size_t)t * H;

        build_v(v, h_prev, inputs[t], H, X);
        memcpy(zg, bz, sizeof(float) * H);
        matvec_add(Wz, v, H, V, zg);
        memcpy(r, br, sizeof(float) * H);
        matvec_add(Wr, v, H, V, r);
        for (int j = 0; j < H; j++) {
            zg[j] = sigmoidf(zg[j]);
            r[j] = sigmoidf(r[j]);
        }

        /* The candidate sees the previous state only through the reset gate. */
        build_v(u, h_prev, inputs[t], H, X);
        for (int j = 0; j < H; j++)
            u[j] *= r[j];
        memcpy(n, bn, sizeof(float) * H);
        matvec_add(Wn, u, H, V, n);
        for (int j = 0; j < H; j++) {
            n[j] = tanhf(n[j]);
            h_cur[j] = (1.0f - zg[j]) * n[j] + zg[j] * h_prev[j];
        }

        memcpy(z, by, sizeof(float) * Y);
        matvec_add(Wy, h_cur, Y, H, z);
        float lse = softmax_logsumexp(z, ps + (size_t)t * Y, Y);
        loss += lse - z[targets[t]];
    }
    if (h_last)
        memcpy(h_last, hs + (size_t)T * H, sizeof(float) * H);

    /* ---------------- backward ---------------- */
    memset(dWz, 0, sizeof(float) * (size_t)H * V);
    memset(dWr, 0, sizeof(float) * (size_t)H * V);
    memset(dWn, 0, sizeof(float) * (size_t)H * V);
    memset(dbz, 0, sizeof(float) * H);
    memset(dbr, 0, sizeof(float) * H);
    memset(dbn, 0, sizeof(float) * H);
    memset(dWy, 0, sizeof(float) * (size_t)Y * H);
    memset(dby, 0, sizeof(float) * Y);
    memset(dh_next, 0, sizeof(float) * H);

    for (int t = T - 1; t >= 0; t--) {
        const float *h_prev = hs + (size_t)t * H;
        const float *h_cur = hs + (size_t)(t + 1) * H;
        const float *zg = zs + (size_t)t * H, *r = rs + (size_t)t * H, *n = ns + (size_t)t * H;
        const float *p = ps + (size_t)t * Y;

        memcpy(dy, p, sizeof(float) * Y);
        dy[targets[t]] -= 1.0f;
        outer_add(dWy, dy, h_cur, Y, H);
        for (int k = 0; k < Y; k++)
            dby[k] += dy[k];

        memcpy(dh, dh_next, sizeof(float) * H);
        matTvec_add(Wy, dy, Y, H, dh);

        /*
         * h' = (1 - zg) n + zg h.  Three paths: to n, to zg (through n and h
         * with opposite signs), and straight to h (scaled by zg).
         */
        memset(dh_next, 0, sizeof(float) * H);
        for (int j = 0; j < H; j++) {
            float d_n = dh[j] * (1.0f - zg[j]);
            float d_z = dh[j] * (h_prev[j] - n[j]);
            dh_next[j] = dh[j] * zg[j];
            dn_raw[j] = d_n * (1.0f - n[j] * n[j]);        /* tanh' from output */
            dz_raw[j] = d_z * zg[j] * (1.0f - zg[j]);       /* sigmoid' from output */
        }

        /* n = tanh(Wn u + bn), u = [r*h; onehot(x)]. */
        build_v(u, h_prev, inputs[t], H, X);
        for (int j = 0; j < H; j++)
            u[j] *= r[j];
        outer_add(dWn, dn_raw, u, H, V);
        for (int j = 0; j < H; j++)
            dbn[j] += dn_raw[j];
        memset(du, 0, sizeof(float) * V);
        matTvec_add(Wn, dn_raw, H, V, du);
        /* u_j = r_j h_j for j < H: product rule splits du between r and h. */
        for (int j = 0; j < H; j++) {
            float d_r = du[j] * h_prev[j];
            dr_raw[j] = d_r * r[j] * (1.0f - r[j]);
            dh_next[j] += du[j] * r[j];
        }

        /* The two gates read v = [h; onehot(x)]. */
        build_v(v, h_prev, inputs[t], H, X);
        outer_add(dWz, dz_raw, v, H, V);
        outer_add(dWr, dr_raw, v, H, V);
        for (int j = 0; j < H; j++) {
            dbz[j] += dz_raw[j];
            dbr[j] += dr_raw[j];
        }
        memset(dv, 0, sizeof(float) * V);
        matTvec_add(Wz, dz_raw, H, V, dv);
        matTvec_add(Wr, dr_raw, H, V, dv);
        for (int j = 0; j < H; j++)
            dh_next[j] += dv[j];                            /* hidden part of dv */
    }

    for (int k = 0; k < nbuf; k++)
        free(buffers[k]);
    return loss;
}
