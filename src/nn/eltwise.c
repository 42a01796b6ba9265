/* Binary ops with broadcasting (add, mul), constant padding, channel concatenation and the
 * per-channel affine `scale`: the layers imported ONNX models add to the conv/pool/activation set.
 * Every loop over outputs writes its own elements and every reduction runs in a fixed order on one
 * thread, so results are the same bits for every thread count. */
#include <string.h>

#include "distill/ops.h"
#include "nn/ops_internal.h"

/* Index of output position (c, y, x) in an input (C, H, W) repeated along its size-1 dimensions. */
static size_t bidx(int c, int y, int x, int C, int H, int W) {
    return ((size_t)(C == 1 ? 0 : c) * H + (H == 1 ? 0 : y)) * W + (W == 1 ? 0 : x);
}

static void bcast_forward(float *out, const float *a, const float *b, const kd_bcast_shape *s, int mul) {
    int C = s->c, H = s->h, W = s->w;
    size_t na = (size_t)s->ca * s->ha * s->wa, nb = (size_t)s->cb * s->hb * s->wb;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * C; bc++) {
        int n = bc / C, c = bc % C;
        const float *pa = a + n * na, *pb = b + n * nb; // (ca, ha, wa), (cb, hb, wb)
        float *y = out + (size_t)bc * H * W;            // (H, W)
        for (int iy = 0; iy < H; iy++)
            for (int ix = 0; ix < W; ix++) {
                float u = pa[bidx(c, iy, ix, s->ca, s->ha, s->wa)], v = pb[bidx(c, iy, ix, s->cb, s->hb, s->wb)];
                y[iy * W + ix] = mul ? u * v : u + v;
            }
    }
}

/* dx (B, cx, hx, wx) += the sum, over the output positions each element was repeated to, of dout
 * times other (B, co, ho, wo) at that position (other NULL: times 1). */
static void bcast_grad(float *dx, int cx, int hx, int wx, const float *dout, const float *other, int co, int ho,
                       int wo, const kd_bcast_shape *s) {
    int C = s->c, H = s->h, W = s->w;
    size_t no = (size_t)co * ho * wo, nout = (size_t)C * H * W;
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(s->threads))
    for (int bc = 0; bc < s->B * cx; bc++) {
        int n = bc / cx, ci = bc % cx;
        const float *g = dout + n * nout, *o = other ? other + n * no : NULL;
        int c0 = cx == 1 ? 0 : ci, c1 = cx == 1 ? C : ci + 1;
        for (int yi = 0; yi < hx; yi++)
            for (int xi = 0; xi < wx; xi++) {
                int y0 = hx == 1 ? 0 : yi, y1 = hx == 1 ? H : yi + 1;
                int x0 = wx == 1 ? 0 : xi, x1 = wx == 1 ? W : xi + 1;
                float acc = 0.f;
                for (int c = c0; c < c1; c++)
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            float v = g[((size_t)c * H + y) * W + x];
                            acc += o ? v * o[bidx(c, y, x, co, ho, wo)] : v;
                        }
                dx[((size_t)bc * hx + yi) * wx + xi] += acc;
            }
    }
}

void kd_bcast_add_forward(float *out, const float *a, const float *b, const kd_bcast_shape *s) {
    bcast_forward(out, a, b, s, 0);
}

void kd_bcast_add_backward(float *da, float *db, const float *dout, const kd_bcast_shape *s) {
    if (da) bcast_grad(da, s->ca, s->ha, s->wa, dout, NULL, 0, 0, 0, s);
    if (db) bcast_grad(db, s->cb, s->hb, s->wb, dout, NULL, 0, 0, 0, s);
}

void kd_mul_forward(float *out, const float *a, const float *b, const kd_bcast_shape *s) {
    bcast_forward(out, a, b, s, 1);
}

void kd_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                     const kd_bcast_shape *s) {
    if (da) bcast_grad(da, s->ca, s->ha, s->wa, dout, b, s->cb, s->hb, s->wb, s);
    if (db) bcast_grad(db, s->cb, s->hb, s->wb, dout, a, s->ca, s->ha, s->wa, s);
}

void kd_pad_forward(float *out, const float *in, int B, int C, int H, int W, const int pads[4], float value,
                    int threads) {
    int Ho = H + pads[0] + pads[2], Wo = W + pads[1] + pads[3];
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        float *y = out + (size_t)bc * Ho * Wo; // (Ho, Wo)
        const float *x = in + (size_t)bc * H * W;
        for (size_t i = 0; i < (size_t)Ho * Wo; i++) y[i] = value;
        for (int iy = 0; iy < H; iy++)
            memcpy(y + (size_t)(iy + pads[0]) * Wo + pads[1], x + (size_t)iy * W, sizeof(float) * W);
    }
}

void kd_pad_backward(float *din, const float *dout, int B, int C, int H, int W, const int pads[4], int threads) {
    int Ho = H + pads[0] + pads[2], Wo = W + pads[1] + pads[3];
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        const float *g = dout + (size_t)bc * Ho * Wo;
        float *dx = din + (size_t)bc * H * W;
        for (int iy = 0; iy < H; iy++) {
            const float *r = g + (size_t)(iy + pads[0]) * Wo + pads[1];
            for (int ix = 0; ix < W; ix++) dx[(size_t)iy * W + ix] += r[ix];
        }
    }
}

void kd_concat_forward(float *out, const float *const *in, const int *c, int n, int B, int HW, int threads) {
    int total = 0;
    for (int k = 0; k < n; k++) total += c[k];
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int b = 0; b < B; b++) {
        float *y = out + (size_t)b * total * HW; // (total, HW)
        for (int k = 0; k < n; k++) {
            size_t len = (size_t)c[k] * HW;
            memcpy(y, in[k] + b * len, sizeof(float) * len);
            y += len;
        }
    }
}

void kd_concat_backward(float *const *din, const float *dout, const int *c, int n, int B, int HW, int threads) {
    int total = 0;
    for (int k = 0; k < n; k++) total += c[k];
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * total * HW;
        for (int k = 0; k < n; k++) {
            size_t len = (size_t)c[k] * HW;
            if (din[k]) {
                float *dx = din[k] + b * len;
                for (size_t i = 0; i < len; i++) dx[i] += g[i];
            }
            g += len;
        }
    }
}

void kd_scale_forward(float *out, const float *in, const float *w, const float *b, int B, int C, int HW, int nw,
                      int threads) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
    for (int bc = 0; bc < B * C; bc++) {
        int c = nw == 1 ? 0 : bc % C;
        float wc = w[c], bias = b[c];
        const float *x = in + (size_t)bc * HW;
        float *y = out + (size_t)bc * HW;
        for (int i = 0; i < HW; i++) y[i] = x[i] * wc + bias;
    }
}

void kd_scale_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int B,
                       int C, int HW, int nw, int threads) {
    if (din) {
#pragma omp parallel for schedule(static) num_threads(kd_op_threads(threads))
        for (int bc = 0; bc < B * C; bc++) {
            float wc = w[nw == 1 ? 0 : bc % C];
            const float *g = dout + (size_t)bc * HW;
            float *dx = din + (size_t)bc * HW;
            for (int i = 0; i < HW; i++) dx[i] += g[i] * wc;
        }
    }
    if (!dw && !db) return;
    /* per channel: one thread per channel; one scalar pair: one thread, channels in order */
#pragma omp parallel for schedule(static) if (nw > 1) num_threads(kd_op_threads(threads))
    for (int c = 0; c < C; c++) {
        float aw = 0.f, ab = 0.f;
        for (int n = 0; n < B; n++) {
            const float *g = dout + ((size_t)n * C + c) * HW, *x = in + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                aw += g[i] * x[i];
                ab += g[i];
            }
        }
        int k = nw == 1 ? 0 : c;
        if (dw) dw[k] += aw;
        if (db) db[k] += ab;
    }
}
