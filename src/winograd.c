/* winograd.c - the F(2x2, 3x3) transforms; see include/winograd.h. */
#include "winograd.h"

#include <string.h>

size_t wino_cols(int H, int W) { return (size_t)((H + 1) / 2) * (size_t)((W + 1) / 2 + 1); }

/*
 * U = G g G^T with G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]: g's rows combined into 4, then the columns.
 */
void wino_filter(float *U, const float *w, int M, int C)
{
    const size_t xs = (size_t)M * C; /* U's stride between the 16 positions */
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)m * C + c) * 9;
            float r[4][3]; /* G g */
            for (int j = 0; j < 3; j++) {
                r[0][j] = g[j];
                r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                r[3][j] = g[6 + j];
            }
            float *u = U + (size_t)m * C + c;
            for (int i = 0; i < 4; i++) {
                u[(size_t)(4 * i + 0) * xs] = r[i][0];
                u[(size_t)(4 * i + 1) * xs] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
                u[(size_t)(4 * i + 2) * xs] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
                u[(size_t)(4 * i + 3) * xs] = r[i][2];
            }
        }
}

/*
 * Scratch layout, for th x tw tiles, L = tw + 1 tile columns and pw = 2L padded columns:
 *   input:  pe, po [(th + 1) * pw + 4]   the even and odd rows of the zero-padded plane (+4: the junk column of
 *                                        the last row reads 2 floats past it)
 *           e, o   [4][(th + 1) * L]     their columns combined (d B), per tile column
 *   output: ye, yo [th * pw]             the top and bottom output rows of every row of tiles, 2 per tile column
 */
size_t wino_scratch_floats(int H, int W)
{
    const size_t th = (size_t)(H + 1) / 2, L = (size_t)(W + 1) / 2 + 1, pw = 2 * L;
    const size_t in = 2 * ((th + 1) * pw + 4) + 8 * (th + 1) * L, out = 2 * th * pw;
    return in > out ? in : out;
}

/*
 * V = B^T d B with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. The plane is copied into a zero-padded buffer
 * (row py, column px hold x[py - 1][px - 1]) split into its even rows (pe) and odd rows (po); tile (ty, tx) then
 * reads rows ty and ty + 1 of both, columns 2tx .. 2tx + 3. Flattened with L tile columns per row, tile index
 * q = r * L + tx reads pe[2q .. 2q + 3]: the column combination (d B) is one contiguous loop per buffer, and the
 * row combination (B^T ..) one over n = ty * L + tx, reading e, o at n and n + L.
 */
void wino_input(float *V, size_t ld, const float *x, int nc, int C, int H, int W, float *scratch)
{
    const int th = (H + 1) / 2, L = (W + 1) / 2 + 1, pw = 2 * L;
    const size_t T = (size_t)th * L, xs = (size_t)C * ld, rn = (size_t)(th + 1) * L, pn = (size_t)(th + 1) * pw + 4;
    float *pe = scratch, *po = pe + pn, *e = po + pn, *o = e + 4 * rn;
    memset(scratch, 0, 2 * pn * sizeof(float)); /* the border stays zero: only rows 1..H, columns 1..W are written */
    for (int s = 0; s < nc; s++)
        for (int c = 0; c < C; c++) {
            const float *plane = x + ((size_t)s * C + c) * H * W;
            for (int y = 0; y < H; y++) {
                float *dst = ((y + 1) & 1 ? po : pe) + (size_t)((y + 1) >> 1) * pw + 1;
                const float *src = plane + (size_t)y * W;
#pragma omp simd
                for (int xx = 0; xx < W; xx++) dst[xx] = src[xx];
            }
            for (int k = 0; k < 2; k++) {
                const float *p = k ? po : pe;
                float *c0 = k ? o : e, *c1 = c0 + rn, *c2 = c1 + rn, *c3 = c2 + rn;
#pragma omp simd
                for (size_t q = 0; q < rn; q++) {
                    c0[q] = p[2 * q] - p[2 * q + 2];
                    c1[q] = p[2 * q + 1] + p[2 * q + 2];
                    c2[q] = p[2 * q + 2] - p[2 * q + 1];
                    c3[q] = p[2 * q + 1] - p[2 * q + 3];
                }
            }
            float *vc = V + (size_t)c * ld + (size_t)s * T; /* v[xi] of this channel and sample at column 0 */
            for (int j = 0; j < 4; j++) {
                const float *ej = e + j * rn, *oj = o + j * rn;
                float *v0 = vc + (size_t)j * xs, *v1 = v0 + 4 * xs, *v2 = v1 + 4 * xs, *v3 = v2 + 4 * xs;
#pragma omp simd
                for (size_t n = 0; n < T; n++) {
                    v0[n] = ej[n] - ej[n + L];
                    v1[n] = oj[n] + ej[n + L];
                    v2[n] = ej[n + L] - oj[n];
                    v3[n] = oj[n] - oj[n + L];
                }
            }
        }
}

/*
 * y = A^T m A with A^T = [1 1 1 0; 0 1 -1 -1]: one loop over the tile columns n of a plane computes the 2x2
 * outputs of each tile into the top (ye) and bottom (yo) output rows of its row of tiles; those rows are then
 * added or copied into y, clipped to W (the junk tile column and an odd W's last column) and to H.
 */
void wino_output(float *y, const float *Mt, size_t ld, int nc, int M, int H, int W, bool accumulate,
                 const float *bias, float *scratch)
{
    const int th = (H + 1) / 2, L = (W + 1) / 2 + 1, pw = 2 * L;
    const size_t T = (size_t)th * L, xs = (size_t)M * ld;
    float *ye = scratch, *yo = scratch + (size_t)th * pw;
    for (int s = 0; s < nc; s++)
        for (int m = 0; m < M; m++) {
            const float *mm = Mt + (size_t)m * ld + (size_t)s * T, *m0 = mm;
            const float *m1 = m0 + xs, *m2 = m1 + xs, *m3 = m2 + xs, *m4 = m3 + xs, *m5 = m4 + xs, *m6 = m5 + xs;
            const float *m7 = m6 + xs, *m8 = m7 + xs, *m9 = m8 + xs, *m10 = m9 + xs, *m11 = m10 + xs;
            const float *m12 = m11 + xs, *m13 = m12 + xs, *m14 = m13 + xs, *m15 = m14 + xs;
            const float bv = bias ? bias[m] : 0.0f;
#pragma omp simd
            for (size_t n = 0; n < T; n++) {
                float a0 = m0[n] + m4[n] + m8[n], a1 = m1[n] + m5[n] + m9[n];
                float a2 = m2[n] + m6[n] + m10[n], a3 = m3[n] + m7[n] + m11[n];
                float b0 = m4[n] - m8[n] - m12[n], b1 = m5[n] - m9[n] - m13[n];
                float b2 = m6[n] - m10[n] - m14[n], b3 = m7[n] - m11[n] - m15[n];
                ye[2 * n] = a0 + a1 + a2 + bv;
                ye[2 * n + 1] = a1 - a2 - a3 + bv;
                yo[2 * n] = b0 + b1 + b2 + bv;
                yo[2 * n + 1] = b1 - b2 - b3 + bv;
            }
            float *plane = y + ((size_t)s * M + m) * H * W;
            for (int yy = 0; yy < H; yy++) {
                float *dst = plane + (size_t)yy * W;
                const float *src = (yy & 1 ? yo : ye) + (size_t)(yy >> 1) * pw;
                if (accumulate) {
#pragma omp simd
                    for (int xx = 0; xx < W; xx++) dst[xx] += src[xx];
                } else {
#pragma omp simd
                    for (int xx = 0; xx < W; xx++) dst[xx] = src[xx];
                }
            }
        }
}
