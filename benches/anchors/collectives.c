/* collectives.c: MPI_Allreduce and MPI_Bcast timed as shared/anchors/pingpong.c
 * times its allreduce, at any number of ranks, so that `mpirun.mpich -n 8`
 * can be compared with mpirt's `pingpong --result -t allreduce,bcast` by
 * shared/anchors/compare.py (same RESULT lines, same loops).
 *
 *   RESULT allreduce <bytes> <avg us> <min us> <max us>   MPI_SUM of doubles, 8 B and 1 MiB
 *   RESULT bcast     <bytes> <avg us> <min us> <max us>   from rank 0, 8 B and 1 MiB
 *
 * Build: mpicc.mpich -O2 -o collectives.mpich benches/anchors/collectives.c
 * Options: -x F scales the iteration counts (as pingpong.c). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0;

static int scaled(int n, int floor) {
    int v = (int)(n * scale);
    return v < floor ? floor : v;
}

static void report(MPI_Comm comm, int rank, const char *test, int bytes, double us) {
    double sum, mn, mx;
    int np;
    MPI_Comm_size(comm, &np);
    MPI_Reduce(&us, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&us, &mn, 1, MPI_DOUBLE, MPI_MIN, 0, comm);
    MPI_Reduce(&us, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    if (rank == 0) {
        printf("RESULT %-9s %8d %12.3f %12.3f %12.3f\n", test, bytes, sum / np, mn, mx);
        fflush(stdout);
    }
}

static double send_buffer[131072], recv_buffer[131072];

static void allreduce_call(int n) {
    MPI_Allreduce(send_buffer, recv_buffer, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static void bcast_call(int n) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Bcast(rank == 0 ? send_buffer : recv_buffer, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

/* Times `call` as pingpong.c times its allreduce: a barrier, `skip` untimed
 * calls, then the average of `iters`; for 8 B and 1 MiB of doubles. */
static void timed(int rank, const char *test, void (*call)(int)) {
    static const int counts[] = {1, 131072}; /* 8 bytes, 1 MiB of doubles */
    for (int c = 0; c < 2; c++) {
        int n = counts[c];
        int iters = scaled(n == 1 ? 10000 : 300, 10), skip = scaled(n == 1 ? 1000 : 30, 2);
        double t0 = 0.0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < iters + skip; i++) {
            if (i == skip) t0 = MPI_Wtime();
            call(n);
        }
        report(MPI_COMM_WORLD, rank, test, n * 8, (MPI_Wtime() - t0) * 1e6 / iters);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-x") == 0) scale = atof(argv[i + 1]);
    int rank, np;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 0; i < 131072; i++) send_buffer[i] = rank + 1;
    timed(rank, "allreduce", allreduce_call);
    if (recv_buffer[131071] != np * (np + 1) / 2.0) fprintf(stderr, "allreduce: wrong result\n");
    timed(rank, "bcast", bcast_call);
    if (rank != 0 && recv_buffer[131071] != 1.0) fprintf(stderr, "bcast: wrong result\n");
    MPI_Finalize();
    return 0;
}
