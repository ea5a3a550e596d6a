/*
 * bench_dense.c - micro-benchmark of the dense ops on the fmnist-cnn layers at batch 128 (src/ops_dense.c).
 *
 *   build-x/bench/bench_dense [threads] [reps]
 *
 * For each conv/linear layer: forward and backward time (best of reps) and GFLOP/s, next to the OpenBLAS sgemm
 * rate (BLAS-threaded) for the layer's whole-batch product shape [Cout, B*Ho*Wo, Cin*kh*kw] and for a square
 * n = 1024 sgemm; the pools; the sum over these layers (BN and ReLU excluded); then one whole fmnist-cnn training
 * step (conv-BN-ReLU x4, two max-pools, fc-ReLU-fc, cross-entropy, backward), the figure to hold against PyTorch's
 * 114-133 ms on 2 threads (reference/machines.md). One thread is timed in process CPU time, several in wall time.
 */
#define _POSIX_C_SOURCE 200809L
#include "kern.h"
#include "testutil.h"

#include <time.h>

/* Wall clock with several threads; process CPU time with one (robust on a shared machine). */
static int g_threads = 1;
static double clock_s(void)
{
    if (g_threads > 1) return ul_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_sgemm(int M, int N, int K, int reps)
{
    float *A = calloc((size_t)M * K, sizeof(float)), *B = calloc((size_t)K * N, sizeof(float)),
          *C = calloc((size_t)M * N, sizeof(float));
    tu_fill(A, (size_t)M * K, 1, -1, 1);
    tu_fill(B, (size_t)K * N, 2, -1, 1);
    kern_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    double t0 = clock_s();
    for (int r = 0; r < reps; r++) kern_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    double dt = (clock_s() - t0) / reps;
    free(A);
    free(B);
    free(C);
    return 2.0 * M * N * K / dt * 1e-9;
}

typedef struct Layer {
    const char *name;
    int kind; /* 0 conv, 1 linear, 2 maxpool */
    int B, Cin, H, W, Cout, k, pad;
    bool x_grad;
} Layer;

static void bench_layer(const Layer *L, int reps, double *fwd_ms, double *bwd_ms)
{
    Arena arena;
    arena_init(&arena, (size_t)1 << 32);
    Tape tape;
    tape_init(&tape, &arena, 16);
    Tensor *x, *w = NULL;
    if (L->kind == 1) {
        x = tu_tensor(2, (int[]){L->B, L->Cin}, 1, -1, 1, L->x_grad);
        w = tu_tensor(2, (int[]){L->Cout, L->Cin}, 2, -1, 1, 1);
    } else {
        x = tu_tensor(4, (int[]){L->B, L->Cin, L->H, L->W}, 1, -1, 1, L->x_grad);
        if (L->kind == 0) w = tu_tensor(4, (int[]){L->Cout, L->Cin, L->k, L->k}, 2, -1, 1, 1);
    }
    Tensor *y = NULL;
    double tf = 0, tb = 0;
    for (int r = 0; r <= reps; r++) { /* rep 0 warms up (page faults of the arena) */
        tape_reset(&tape);
        double t0 = clock_s();
        if (L->kind == 0) y = op_conv2d(&tape, x, w, NULL, 1, L->pad);
        else if (L->kind == 1) y = op_linear(&tape, x, w, NULL);
        else y = op_maxpool2d(&tape, x, 2, 2);
        double t1 = clock_s();
        tape_backward(&tape, y, NULL);
        double t2 = clock_s();
        if (r > 0 && (r == 1 || t1 - t0 < tf)) tf = t1 - t0;
        if (r > 0 && (r == 1 || t2 - t1 < tb)) tb = t2 - t1;
    }
    *fwd_ms = tf * 1e3; /* best of reps */
    *bwd_ms = tb * 1e3;
    tu_tensor_free(x);
    tu_tensor_free(w);
    tape_free(&tape);
    arena_free(&arena);
}

/* One fmnist-cnn training step (src/model.c's net, built here from the ops): forward, loss, backward. */
typedef struct CnnNet {
    Tensor *cw[4], *g[4], *b[4], *fw[2], *fb[2];
    float rm[4][64], rv[4][64];
} CnnNet;

static Tensor *cnn_step(Tape *t, CnnNet *n, Tensor *x, const int *labels)
{
    Tensor *h = x;
    for (int i = 0; i < 4; i++) {
        h = op_conv2d(t, h, n->cw[i], NULL, 1, 1);
        h = op_relu(t, op_batchnorm2d(t, h, n->g[i], n->b[i], n->rm[i], n->rv[i], 0.1f, 1e-5f));
        if (i == 1 || i == 3) h = op_maxpool2d(t, h, 2, 2);
    }
    h = op_reshape(t, h, 2, (int[]){h->shape[0], (int)(h->n / (size_t)h->shape[0])});
    h = op_relu(t, op_linear(t, h, n->fw[0], n->fb[0]));
    h = op_linear(t, h, n->fw[1], n->fb[1]);
    Tensor *loss = op_cross_entropy(t, h, labels);
    tape_backward(t, loss, NULL);
    return loss;
}

static double bench_cnn_step(int B, int reps)
{
    CnnNet n;
    const int cin[4] = {1, 32, 32, 64}, cout[4] = {32, 32, 64, 64};
    for (int i = 0; i < 4; i++) {
        n.cw[i] = tu_tensor(4, (int[]){cout[i], cin[i], 3, 3}, 10 + i, -0.3f, 0.3f, 1);
        n.g[i] = tu_tensor(1, (int[]){cout[i]}, 20 + i, 0.5f, 1.5f, 1);
        n.b[i] = tu_tensor(1, (int[]){cout[i]}, 30 + i, -0.1f, 0.1f, 1);
        for (int c = 0; c < 64; c++) n.rm[i][c] = 0.0f, n.rv[i][c] = 1.0f;
    }
    n.fw[0] = tu_tensor(2, (int[]){128, 3136}, 40, -0.02f, 0.02f, 1);
    n.fb[0] = tu_tensor(1, (int[]){128}, 41, -0.1f, 0.1f, 1);
    n.fw[1] = tu_tensor(2, (int[]){10, 128}, 42, -0.1f, 0.1f, 1);
    n.fb[1] = tu_tensor(1, (int[]){10}, 43, -0.1f, 0.1f, 1);
    Tensor *x = tu_tensor(4, (int[]){B, 1, 28, 28}, 50, 0.0f, 1.0f, 0);
    int *labels = malloc((size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) labels[i] = (i * 7) % 10;
    Arena arena;
    arena_init(&arena, (size_t)1 << 32);
    Tape tape;
    tape_init(&tape, &arena, 256);
    double best = 0;
    for (int r = 0; r <= reps; r++) {
        tape_reset(&tape);
        double t0 = ul_now();
        cnn_step(&tape, &n, x, labels);
        double dt = ul_now() - t0;
        if (r > 0 && (r == 1 || dt < best)) best = dt;
    }
    tape_free(&tape);
    arena_free(&arena);
    free(labels);
    tu_tensor_free(x);
    for (int i = 0; i < 4; i++) {
        tu_tensor_free(n.cw[i]);
        tu_tensor_free(n.g[i]);
        tu_tensor_free(n.b[i]);
    }
    for (int i = 0; i < 2; i++) {
        tu_tensor_free(n.fw[i]);
        tu_tensor_free(n.fb[i]);
    }
    return best * 1e3;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 5;
    kern_set_threads(threads);
    g_threads = threads;
    const int B = 128;
    const Layer layers[] = {
        {"conv1 1->32 3x3 28x28", 0, B, 1, 28, 28, 32, 3, 1, false},
        {"conv2 32->32 3x3 28x28", 0, B, 32, 28, 28, 32, 3, 1, true},
        {"maxpool 32x28x28", 2, B, 32, 28, 28, 0, 2, 0, true},
        {"conv3 32->64 3x3 14x14", 0, B, 32, 14, 14, 64, 3, 1, true},
        {"conv4 64->64 3x3 14x14", 0, B, 64, 14, 14, 64, 3, 1, true},
        {"maxpool 64x14x14", 2, B, 64, 14, 14, 0, 2, 0, true},
        {"fc1 3136->128", 1, B, 3136, 1, 1, 128, 1, 0, true},
        {"fc2 128->10", 1, B, 128, 1, 1, 10, 1, 0, true},
    };
    printf("threads %d, reps %d; sgemm n=1024: %.1f GFLOP/s\n", threads, reps, time_sgemm(1024, 1024, 1024, 3));
    printf("%-26s %9s %9s %9s %9s %12s\n", "layer", "fwd ms", "fwd GF/s", "bwd ms", "bwd GF/s", "sgemm GF/s");
    double tot_f = 0, tot_b = 0;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const Layer *L = &layers[i];
        double f, b;
        bench_layer(L, reps, &f, &b);
        tot_f += f;
        tot_b += b;
        if (L->kind == 2) {
            printf("%-26s %9.2f %9s %9.2f\n", L->name, f, "", b);
            continue;
        }
        double flop = 2.0 * L->B * L->Cout * L->H * L->W * L->Cin * L->k * L->k;
        double bflop = flop * (L->x_grad ? 2 : 1);
        int M = L->Cout, N = L->B * L->H * L->W, K = L->Cin * L->k * L->k;
        double peak = L->kind == 1 ? time_sgemm(L->B, L->Cout, L->Cin, reps) : time_sgemm(M, N, K, reps);
        printf("%-26s %9.2f %9.1f %9.2f %9.1f %12.1f\n", L->name, f, flop / f * 1e-6, b, bflop / b * 1e-6, peak);
    }
    printf("%-26s %9.2f %9s %9.2f   (sum fwd+bwd %.1f ms)\n", "total (no BN/ReLU)", tot_f, "", tot_b, tot_f + tot_b);
    printf("fmnist-cnn training step, batch %d (wall clock, best of %d): %.1f ms\n", B, reps, bench_cnn_step(B, reps));
    return 0;
}
