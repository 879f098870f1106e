/*
 * rnn_globals.c -- reference vanilla RNN in the "globals" style: fixed sizes,
 * global arrays, and forward()/backward() functions without arguments.  This
 * is how a lot of hand-written C RNNs look; bpttcheck drives such code
 * through a spec that names the symbols and sizes below.  It does not use
 * bpttcheck.h.
 *
 *     h[t+1] = tanh(Wxh @ onehot(inputs[t]) + Whh @ h[t] + bh)
 *     z[t]   = Why @ h[t+1] + by
 *     loss   = sum_t -log softmax(z[t])[targets[t]]
 *
 * How a caller uses it:
 *   1. fill Wxh, Whh, Why, bh, by, inputs, targets and h[0] (initial state);
 *   2. forward();   -> h[1..T_S], z, p and loss are set
 *   3. backward();  -> dWxh, dWhh, dWhy, dbh, dby are set (zeroed first,
 *                      then accumulated); it uses h and p from the last
 *                      forward(), so call forward() first.
 *
 * Build: gcc -O2 -shared -fPIC -Wall rnn_globals.c -o rnn_globals.so -lm
 */
#include <math.h>
#include <string.h>

#define T_S 6   /* time steps */
#define X_S 5   /* input classes (one-hot) */
#define H_S 7   /* hidden units */
#define Y_S 4   /* output classes */

/* Parameters, row-major. */
float Wxh[H_S][X_S], Whh[H_S][H_S], Why[Y_S][H_S], bh[H_S], by[Y_S];
/* Gradients, same shapes; overwritten by backward(). */
float dWxh[H_S][X_S], dWhh[H_S][H_S], dWhy[Y_S][H_S], dbh[H_S], dby[Y_S];

int inputs[T_S], targets[T_S];

/* h[0] is the initial state (set by the caller); h[t+1] is the state after step t. */
float h[T_S + 1][H_S];
/* Logits and probabilities, kept apart: z is never exponentiated in place. */
float z[T_S][Y_S], p[T_S][Y_S];
float loss;

void forward(void)
{
    loss = 0.0f;
    for (int t = 0; t < T_S; t++) {
        for (int i = 0; i < H_S; i++) {
            /* Wxh @ onehot(x) is column x of Wxh. */
            float a = bh[i] + Wxh[i][inputs[t]];
            for (int j = 0; j < H_S; j++)
                a += Whh[i][j] * h[t][j];
            h[t + 1][i] = tanhf(a);
        }

        for (int k = 0; k < Y_S; k++) {
            float a = by[k];
            for (int j = 0; j < H_S; j++)
                a += Why[k][j] * h[t + 1][j];
            z[t][k] = a;
        }

        /* Stable softmax: subtract the largest logit so expf cannot overflow. */
        float zmax = z[t][0];
        for (int k = 1; k < Y_S; k++)
            if (z[t][k] > zmax)
                zmax = z[t][k];
        float denom = 0.0f;
        for (int k = 0; k < Y_S; k++) {
            p[t][k] = expf(z[t][k] - zmax);
            denom += p[t][k];
        }
        for (int k = 0; k < Y_S; k++)
            p[t][k] /= denom;

        /* -log p[target] via log-sum-exp, finite even if p[target] underflows. */
        loss += zmax + logf(denom) - z[t][targets[t]];
    }
}

void backward(void)
{
    float dy[Y_S], dh[H_S], dh_raw[H_S], dh_next[H_S];

    /* Gradients accumulate over the steps, so they start from zero. */
    memset(dWxh, 0, sizeof dWxh);
    memset(dWhh, 0, sizeof dWhh);
    memset(dWhy, 0, sizeof dWhy);
    memset(dbh, 0, sizeof dbh);
    memset(dby, 0, sizeof dby);
    memset(dh_next, 0, sizeof dh_next);

    for (int t = T_S - 1; t >= 0; t--) {
        /* dloss/dz = p - onehot(target) */
        for (int k = 0; k < Y_S; k++)
            dy[k] = p[t][k];
        dy[targets[t]] -= 1.0f;

        /* The output layer reads the current state h[t+1]. */
        for (int k = 0; k < Y_S; k++) {
            dby[k] += dy[k];
            for (int j = 0; j < H_S; j++)
                dWhy[k][j] += dy[k] * h[t + 1][j];
        }

        /* From the output and from the following step. */
        for (int j = 0; j < H_S; j++) {
            float s = dh_next[j];
            for (int k = 0; k < Y_S; k++)
                s += Why[k][j] * dy[k];
            dh[j] = s;
        }

        /* tanh' = 1 - h^2 with h the current state. */
        for (int i = 0; i < H_S; i++) {
            dh_raw[i] = (1.0f - h[t + 1][i] * h[t + 1][i]) * dh[i];
            dbh[i] += dh_raw[i];
        }

        /* Whh multiplied the previous state h[t]; the input is one-hot. */
        for (int i = 0; i < H_S; i++) {
            dWxh[i][inputs[t]] += dh_raw[i];
            for (int j = 0; j < H_S; j++)
                dWhh[i][j] += dh_raw[i] * h[t][j];
        }

        /* To the previous state through Whh^T. */
        for (int j = 0; j < H_S; j++) {
            float s = 0.0f;
            for (int i = 0; i < H_S; i++)
                s += Whh[i][j] * dh_raw[i];
            dh_next[j] = s;
        }
    }
}
