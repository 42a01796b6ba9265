/* Times the one gradient allreduce a data-parallel step of `distill train|kd` does
 * (MPI_Allreduce, MPI_IN_PLACE, MPI_FLOAT, MPI_SUM over every parameter), for given float counts.
 *   mpicc -O2 -std=c11 -Wall -Wextra bench/allreduce_time.c -o allreduce_time
 *   mpirun --allow-run-as-root --oversubscribe -np 2 ./allreduce_time [-r REPEATS] [-w WARMUP] NAME=COUNT...
 * Each repeat: refill the buffer (untimed), barrier, time the allreduce; a repeat's time is the
 * slowest rank's. Prints per name: floats, bytes (4 x floats), median and range of the repeats. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: mpirun -np N allreduce_time [-r REPEATS] [-w WARMUP] NAME=COUNT...\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int repeats = 200, warmup = 20, first = 1;
    while (first + 1 < argc && argv[first][0] == '-') {
        if (strcmp(argv[first], "-r") == 0)
            repeats = atoi(argv[first + 1]);
        else if (strcmp(argv[first], "-w") == 0)
            warmup = atoi(argv[first + 1]);
        else
            break;
        first += 2;
    }
    if (first >= argc || repeats < 1 || warmup < 0) {
        if (rank == 0)
            usage();
        MPI_Finalize();
        return 2;
    }
    if (rank == 0) {
        printf("MPI_Allreduce(MPI_IN_PLACE, float, SUM) on %d ranks: %d warm-up, %d timed repeats each "
               "(time of the slowest rank)\n\n",
               size, warmup, repeats);
        printf("| model | params | bytes allreduced per step | time median (range) | bus bandwidth at the median |\n");
        printf("|---|---:|---:|---:|---:|\n");
    }
    double *t = malloc(sizeof(double) * (size_t)repeats);
    if (!t) {
        fprintf(stderr, "allreduce_time: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int status = 0;
    for (int a = first; a < argc; a++) {
        const char *eq = strchr(argv[a], '=');
        long long n = eq ? atoll(eq + 1) : 0;
        if (!eq || n <= 0 || n > (1LL << 30)) {
            if (rank == 0)
                fprintf(stderr, "allreduce_time: bad argument '%s' (NAME=COUNT)\n", argv[a]);
            status = 2;
            continue;
        }
        size_t count = (size_t)n;
        float *src = malloc(sizeof(float) * count), *buf = malloc(sizeof(float) * count);
        if (!src || !buf) {
            fprintf(stderr, "allreduce_time: out of memory for %zu floats\n", count);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* Small exact values: the sum is checked once, and refilling keeps values from growing. */
        for (size_t i = 0; i < count; i++)
            src[i] = (float)((i + (size_t)rank) % 7) * 0.25f;
        for (int r = -warmup; r < repeats; r++) {
            memcpy(buf, src, sizeof(float) * count);
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0, slowest = 0;
            MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (r >= 0)
                t[r] = slowest;
            if (r == -warmup) { /* every rank checks the sum once */
                size_t bad = 0;
                for (size_t i = 0; i < count; i++) {
                    float want = 0;
                    for (int k = 0; k < size; k++)
                        want += (float)((i + (size_t)k) % 7) * 0.25f;
                    bad += buf[i] != want;
                }
                if (bad) {
                    fprintf(stderr, "allreduce_time: rank %d: %zu wrong sums for %s\n", rank, bad, argv[a]);
                    MPI_Abort(MPI_COMM_WORLD, 1);
                }
            }
        }
        qsort(t, (size_t)repeats, sizeof(double), cmp_double);
        double med = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
        double bytes = 4.0 * (double)count;
        double busbw = 2.0 * (size - 1) / size * bytes / med; /* ring-allreduce convention */
        if (rank == 0) {
            printf("| %.*s | %zu | %.0f | %.1f us (%.1f - %.1f) | %.2f GB/s |\n", (int)(eq - argv[a]), argv[a], count,
                   bytes, med * 1e6, t[0] * 1e6, t[repeats - 1] * 1e6, busbw / 1e9);
            fflush(stdout);
        }
        free(src);
        free(buf);
    }
    free(t);
    MPI_Finalize();
    return status;
}
