/*
 * winograd.h - the transforms of Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), behind op_conv2d's fast path for 3x3 stride-1 pad-1 convolutions.
 *
 * The output is cut into 2x2 tiles, ceil(H/2) rows of ceil(W/2) per plane; tile (ty, tx) reads the 4x4 input
 * patch at rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2 (zero outside the plane, which is the pad of 1). With the
 * 16 transformed values of every filter (U) and of every patch (V), a convolution becomes 16 independent matrix
 * products, one per position xi of the 4x4 transformed tile, followed by the output transform:
 *
 *     wino_filter:  U[16][M][C]      = G g G^T           for g = w[m, c] (3x3)
 *     wino_input:   V[16][C][nc*T]   = B^T d B           for d = the 4x4 patch of each tile of each channel
 *     (caller)      Mt[xi]           = U[xi] @ V[xi]     [M, C] @ [C, nc*T], 16 sgemms
 *     wino_output:  y[nc, M, H, W]   = A^T Mt A (+ bias)  the 2x2 output of each tile, clipped at odd H, W
 *
 * 16 multiplications per 2x2 outputs instead of 36: the products shrink 2.25x, at the cost of the transforms and
 * of sgemms with K = C instead of 9C. Rounding differs from the direct sum by a few float ulps of the operands'
 * magnitude (the transforms add up to 4 terms and halve); the conv tests bound it against the double-precision
 * reference. Column n = s * T + ty * L + tx of V and Mt is tile (ty, tx) of sample s of the chunk, with
 * L = ceil(W/2) + 1 columns per row of tiles and T = wino_cols(H, W) per sample: the last column of each row is
 * junk (transformed, multiplied and never written out). It costs 1/ceil(W/2) more product work and buys
 * transforms that run as long contiguous loops over a whole plane (with rows of 7 or 14 tiles, loops per row of
 * tiles are mostly vector tails).
 * Every function is serial and writes only its output and scratch arguments.
 */
#ifndef UL_WINOGRAD_H
#define UL_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

/* Columns of V and Mt per plane of H x W: ceil(H/2) * (ceil(W/2) + 1), junk columns included. */
size_t wino_cols(int H, int W);

/* U[16][M][C] (overwritten) from w[M, C, 3, 3]. */
void wino_filter(float *U, const float *w, int M, int C);

/* Floats of scratch that wino_input and wino_output need for planes of H x W. */
size_t wino_scratch_floats(int H, int W);

/* V[16][C][ld] (columns [0, nc*T) overwritten, T = wino_cols(H, W)) from x[nc, C, H, W]; ld >= nc * T.
   scratch: wino_scratch_floats(H, W) floats, overwritten. */
void wino_input(float *V, size_t ld, const float *x, int nc, int C, int H, int W, float *scratch);

/* y[nc, M, H, W] = (accumulate ? y : 0) + A^T Mt A (+ bias[m] when bias != NULL) from Mt[16][M][ld].
   scratch: wino_scratch_floats(H, W) floats, overwritten. */
void wino_output(float *y, const float *Mt, size_t ld, int nc, int M, int H, int W, bool accumulate,
                 const float *bias, float *scratch);

#endif
