/* bpttcheck-expect: lstm.missing-dh-next */
/* arch: lstm */
/* groups: Wf,Wi,Wg,Wo,bf,bi,bg,bo */
/* Bug: dh starts from 0 instead of dh_next: the gradient reaching h[t+1] from
   step t+1 is computed (and dc_next still carried) but never added to dh.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpttcheck.h"

static float sigmoidf(float a) { return 1.0f / (1.0f + expf(-a)); }

float bptt_lstm_loss_and_grads(const bptt_dims *d, const float *const *params,
                               const int *inputs, const int *targets,
                               const float *h0, const float *c0,
                               float *const *grads, float *h_last, float *c_last)
{
    int T = d->T, X = d->X, H = d->H, Y = d->Y, V = H + X;
    const float *Wf = params[0], *Wi = params[1], *Wg = params[2], *Wo = params[3];
    const float *bf = params[4], *bi = params[5], *bg = params[6], *bo = params[7];
    const float *Wy = params[8], *by = params[9];
    float *dWf = grads[0], *dWi = grads[1], *dWg = grads[2], *dWo = grads[3];
    float *dbf = grads[4], *dbi = grads[5], *dbg = grads[6], *dbo = grads[7];
    float *dWy = grads[8], *dby = grads[9];

    /* hs, cs: T+1 states each, row 0 = initial state, row t+1 = after step t */
    float *hs = malloc(sizeof(float) * (T + 1) * H), *cs = malloc(sizeof(float) * (T + 1) * H);
    float *F = malloc(sizeof(float) * T * H), *I = malloc(sizeof(float) * T * H);
    float *G = malloc(sizeof(float) * T * H), *O = malloc(sizeof(float) * T * H);
    float *vs = malloc(sizeof(float) * T * V);    /* v = [h; onehot(x)] per step */
    float *p = malloc(sizeof(float) * T * Y);
    float *dy = malloc(sizeof(float) * Y), *dh = malloc(sizeof(float) * H);
    float *dc = malloc(sizeof(float) * H), *dv = malloc(sizeof(float) * V);
    float *df = malloc(sizeof(float) * H), *di = malloc(sizeof(float) * H);
    float *dg = malloc(sizeof(float) * H), *dout = malloc(sizeof(float) * H);
    float *dh_next = malloc(sizeof(float) * H), *dc_next = malloc(sizeof(float) * H);
    float loss = 0.0f;

    memcpy(hs, h0, sizeof(float) * H);
    memcpy(cs, c0, sizeof(float) * H);
    for (int t = 0; t < T; t++) {
        const float *hp = hs + t * H, *cp = cs + t * H;
        float *hc = hs + (t + 1) * H, *cc = cs + (t + 1) * H;
        float *v = vs + t * V;
        memcpy(v, hp, sizeof(float) * H);
        memset(v + H, 0, sizeof(float) * X);
        v[H + inputs[t]] = 1.0f;

        for (int j = 0; j < H; j++) {
            float af = bf[j], ai = bi[j], ag = bg[j], ao = bo[j];
            for (int k = 0; k < V; k++) {
                af += Wf[j * V + k] * v[k];
                ai += Wi[j * V + k] * v[k];
                ag += Wg[j * V + k] * v[k];
                ao += Wo[j * V + k] * v[k];
            }
            F[t * H + j] = sigmoidf(af);
            I[t * H + j] = sigmoidf(ai);
            G[t * H + j] = tanhf(ag);
            O[t * H + j] = sigmoidf(ao);
            cc[j] = F[t * H + j] * cp[j] + I[t * H + j] * G[t * H + j];
            hc[j] = O[t * H + j] * tanhf(cc[j]);
        }

        float *pt = p + t * Y, zmax = -INFINITY, sum = 0.0f;
        for (int k = 0; k < Y; k++) {
            float s = by[k];
            for (int j = 0; j < H; j++)
                s += Wy[k * H + j] * hc[j];
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
    memcpy(h_last, hs + T * H, sizeof(float) * H);
    memcpy(c_last, cs + T * H, sizeof(float) * H);

    memset(dWf, 0, sizeof(float) * H * V); memset(dWi, 0, sizeof(float) * H * V);
    memset(dWg, 0, sizeof(float) * H * V); memset(dWo, 0, sizeof(float) * H * V);
    memset(dbf, 0, sizeof(float) * H); memset(dbi, 0, sizeof(float) * H);
    memset(dbg, 0, sizeof(float) * H); memset(dbo, 0, sizeof(float) * H);
    memset(dWy, 0, sizeof(float) * Y * H); memset(dby, 0, sizeof(float) * Y);
    memset(dh_next, 0, sizeof(float) * H);
    memset(dc_next, 0, sizeof(float) * H);

    for (int t = T - 1; t >= 0; t--) {
        const float *cp = cs + t * H;                           /* previous */
        const float *hc = hs + (t + 1) * H, *cc = cs + (t + 1) * H;  /* current */
        const float *f = F + t * H, *ig = I + t * H, *g = G + t * H, *o = O + t * H;
        const float *v = vs + t * V;

        for (int k = 0; k < Y; k++)
            dy[k] = p[t * Y + k];
        dy[targets[t]] -= 1.0f;
        for (int k = 0; k < Y; k++) {
            dby[k] += dy[k];
            for (int j = 0; j < H; j++)
                dWy[k * H + j] += dy[k] * hc[j];
        }
        for (int j = 0; j < H; j++) {
            float s = 0.0f;   /* bug: dh_next[j] */
            for (int k = 0; k < Y; k++)
                s += Wy[k * H + j] * dy[k];
            dh[j] = s;
        }

        for (int j = 0; j < H; j++) {
            float tc = tanhf(cc[j]);
            dc[j] = dh[j] * o[j] * (1.0f - tc * tc) + dc_next[j];
            df[j] = dc[j] * cp[j] * f[j] * (1.0f - f[j]);
            di[j] = dc[j] * g[j] * ig[j] * (1.0f - ig[j]);
            dg[j] = dc[j] * ig[j] * (1.0f - g[j] * g[j]);
            dout[j] = dh[j] * tc * o[j] * (1.0f - o[j]);
            dc_next[j] = dc[j] * f[j];
        }

        memset(dv, 0, sizeof(float) * V);
        for (int j = 0; j < H; j++) {
            dbf[j] += df[j]; dbi[j] += di[j]; dbg[j] += dg[j]; dbo[j] += dout[j];
            for (int k = 0; k < V; k++) {
                dWf[j * V + k] += df[j] * v[k];
                dWi[j * V + k] += di[j] * v[k];
                dWg[j * V + k] += dg[j] * v[k];
                dWo[j * V + k] += dout[j] * v[k];
                dv[k] += Wf[j * V + k] * df[j] + Wi[j * V + k] * di[j]
                       + Wg[j * V + k] * dg[j] + Wo[j * V + k] * dout[j];
            }
        }
        memcpy(dh_next, dv, sizeof(float) * H);          /* hidden part of v */
    }

    free(hs); free(cs); free(F); free(I); free(G); free(O); free(vs); free(p);
    free(dy); free(dh); free(dc); free(dv); free(df); free(di); free(dg); free(dout);
    free(dh_next); free(dc_next);
    return loss;
}
