#!/usr/bin/env python3
"""Cost model of data-parallel training (docs/DISTRIBUTED.md): predicted step time and speedup of
`distill train` / `distill lm` at N ranks over a network, from a measured one-process step time.
Nothing here is measured: it is arithmetic on the assumptions printed with each table.

  python3 bench/dist_cost_model.py [--cnnt-sps S] [--lm-tps T] [--rank-speedup X]

Gradient sum, ring allreduce:  T_ar = 2(N-1)/N * bytes / bandwidth + 2(N-1) * latency
Small sums (the per-step loss/correct/stop, and --sync-bn's), recursive doubling as MPI
libraries do for tiny messages: 2 log2(N) * latency each.
Compute per rank: b samples take b / S seconds (S = the one-process samples/s, times
--rank-speedup for a rank with more cores), linear in b (optimistic for small per-rank batches).
Ideal overlap (buckets): backward is 2/3 of the compute; step = fwd + max(bwd, T_ar) + small sums."""
import argparse
import math

NETS = [  # name, bandwidth in bytes/s, latency in s (assumptions, not measured)
    ("10 Gbit/s Ethernet", 10e9 / 8, 30e-6),
    ("100 Gbit/s InfiniBand-class", 100e9 / 8, 5e-6),
]
RANKS = [8, 64, 512]


def t_ring(nbytes, n, bw, lat):
    return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * lat


def t_small(n, lat, count):
    return count * 2 * math.log2(n) * lat if n > 1 else 0.0


def row(n, t_compute_rank, t_compute_1, nbytes, bw, lat, n_small):
    """one step at n ranks: compute of one rank's share, the gradient sum and the small sums"""
    ar = t_ring(nbytes, n, bw, lat)
    sm = t_small(n, lat, n_small)
    step = t_compute_rank + ar + sm
    step_ov = t_compute_rank / 3 + max(2 * t_compute_rank / 3, ar) + sm
    return ar, sm, step, step_ov


def table(title, params, t_unit, unit_name, per_rank_units, n_small, strong_global=None):
    nbytes = 4 * params
    print(f"\n### {title}: {params:,} parameters, {nbytes / 1e6:.2f} MB of fp32 gradients per step")
    print(f"compute: {per_rank_units} {unit_name} per rank take {1e3 * per_rank_units * t_unit:.1f} ms "
          f"(weak scaling: the global batch grows with N)\n")
    print("| network | N | allreduce | small sums | step | speedup (efficiency) | with ideal overlap |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, bw, lat in NETS:
        for n in RANKS:
            tc = per_rank_units * t_unit
            ar, sm, step, step_ov = row(n, tc, tc, nbytes, bw, lat, n_small)
            sp, sp_ov = n * tc / step, n * tc / step_ov
            print(f"| {name} | {n} | {1e3 * ar:.2f} ms | {1e3 * sm:.3f} ms | {1e3 * step:.1f} ms | "
                  f"{sp:.1f}x ({100 * sp / n:.0f}%) | {sp_ov:.1f}x ({100 * sp_ov / n:.0f}%) |")
    if strong_global:
        print(f"\nstrong scaling: the global batch stays {strong_global} {unit_name} "
              f"({1e3 * strong_global * t_unit:.1f} ms on one process); per-rank batch {strong_global}/N\n")
        print("| network | N | per-rank batch | step | speedup (efficiency) | with ideal overlap |")
        print("|---|---:|---:|---:|---:|---:|")
        t1 = strong_global * t_unit
        for name, bw, lat in NETS:
            for n in RANKS:
                if strong_global / n < 2:
                    print(f"| {name} | {n} | {strong_global / n:g} | - | not possible (per-rank batch norm needs "
                          f">= 2 samples per rank) | - |")
                    continue
                tc = t1 / n
                ar, sm, step, step_ov = row(n, tc, t1, nbytes, bw, lat, n_small)
                print(f"| {name} | {n} | {strong_global / n:g} | {1e3 * step:.2f} ms | {t1 / step:.1f}x "
                      f"({100 * t1 / step / n:.0f}%) | {t1 / step_ov:.1f}x ({100 * t1 / step_ov / n:.0f}%) |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnt-sps", type=float, default=395.0,
                    help="cnn-t training samples/s of one process, 1 thread (measured: bench/mpi_scaling.sh)")
    ap.add_argument("--lm-tps", type=float, default=5030.0,
                    help="LM teacher (4 layers, dim 256) training tokens/s, 1 thread (docs/BENCHMARKS.md)")
    ap.add_argument("--rank-speedup", type=float, default=1.0,
                    help="a rank computes this many times faster than the one thread measured (e.g. 8 for an "
                         "8-core rank, assuming perfect thread scaling)")
    a = ap.parse_args()
    print("Model predictions, not measurements. Networks (assumed): "
          + "; ".join(f"{n}: {bw / 1e9:.2f} GB/s, {lat * 1e6:.0f} us per message" for n, bw, lat in NETS)
          + f". A rank computes {a.rank_speedup:g}x the measured 1-thread rate.")
    bn_channels = [32, 64, 128, 256]  # cnn-t's batch-norm layers
    table("cnn-t, distill train, batch norm per rank (1 small sum per step)", 1701610,
          1 / (a.cnnt_sps * a.rank_speedup), "samples", 128, 1, strong_global=128)
    table("cnn-t with --sync-bn (3 more small sums per batch-norm layer: "
          f"{len(bn_channels)} layers, {sum(8 * (4 * c + 3) for c in bn_channels):,} bytes)", 1701610,
          1 / (a.cnnt_sps * a.rank_speedup), "samples", 128, 1 + 3 * len(bn_channels))
    table("LM teacher (4 layers, dim 256, ctx 128, bytes)", 3257856, 1 / (a.lm_tps * a.rank_speedup),
          "tokens", 16 * 128, 1)


if __name__ == "__main__":
    main()
