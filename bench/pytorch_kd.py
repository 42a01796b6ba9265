#!/usr/bin/python3
"""PyTorch reference for distillation throughput (what `distill kd` does per step), same models
(bench/pytorch_ref.py, i.e. examples/models/*.yaml), data and recipe. Run by hand, never by the tests:

  /usr/bin/python3 bench/pytorch_kd.py --threads 2 --students cnn-s,mlp-s --modes online,cached

Recipe (Hinton et al. 2015, as `distill kd`): loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
+ (1 - alpha) * CE, T 4, alpha 0.9; SGD lr 0.05, Nesterov momentum 0.9, weight decay 5e-4 on
conv/linear weights only, cosine schedule stepped per step, global gradient-norm clipping at 5,
batch 128 from a shuffled index list over all 60,000 training images (`distill kd --val 0`). Every
step gathers the batch from the uint8 images and normalises it (as Distill's kd_batch_pixels and kd_batch_normalize do).
The teacher (cnn-t) is in eval mode under torch.no_grad().

Modes:
  online  random shift of up to --translate px per image (zero fill); the teacher runs each step
          on the augmented batch.
  cached  no augmentation; the teacher's logits for the whole training set are computed once
          beforehand (eval mode, no_grad, batch --cache-batch) and gathered per step. The caching
          time is reported on its own line and is not part of samples/s.

Timing: --warmup steps, then --steps steps timed with perf_counter; samples/s = steps * batch /
seconds. The teacher is randomly initialised: this measures throughput only (the compute per step
does not depend on the weights), not the accuracy a trained teacher would give.

Output: a header, then one line per run: `kd STUDENT MODE SAMPLES/S STEPS SECONDS` and, for the
cache, `cache cnn-t IMAGES SECONDS` (bench/compare_kd.sh reads these).
"""
import argparse, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--students", default="cnn-s,mlp-s")
ap.add_argument("--teacher", default="cnn-t")
ap.add_argument("--modes", default="online,cached")
ap.add_argument("--steps", type=int, default=100, help="timed steps")
ap.add_argument("--warmup", type=int, default=10, help="untimed steps before")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--cache-batch", type=int, default=128, help="batch of the teacher-caching pass")
ap.add_argument("-T", "--temperature", type=float, default=4.0)
ap.add_argument("-a", "--alpha", type=float, default=0.9)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--wd", type=float, default=5e-4)
ap.add_argument("--clip-grad", type=float, default=5.0)
ap.add_argument("--translate", type=int, default=2, help="online mode: max shift in pixels")
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

# Before torch loads (pytorch_ref does the same): Linear goes through Debian's OpenBLAS, whose
# thread count torch.set_num_threads does not control.
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, str(args.threads))

# Reuse the models and data helpers of pytorch_ref.py. It parses sys.argv at import, so give it
# only the thread count.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_argv, sys.argv = sys.argv, [os.path.join(sys.path[0], "pytorch_ref.py"), "--threads", str(args.threads)]
import pytorch_ref as ref  # noqa: E402
sys.argv = _argv

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def kd_loss(s, t_logits, y, T, alpha):
    kl = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t_logits / T, 1), reduction="batchmean",
                  log_target=True)
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)


def cache_teacher(teacher, xu):
    """Teacher logits for every training image, eval mode, no_grad, batch --cache-batch."""
    teacher.eval()
    out = torch.empty(len(xu), 10)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(xu), args.cache_batch):
            out[i:i + args.cache_batch] = teacher(ref.normalise(xu[i:i + args.cache_batch]))
    return out, time.perf_counter() - t0


def run(student_name, mode, teacher, xu, y, table):
    torch.manual_seed(args.seed)
    s = ref.MODELS[student_name]()
    s.train()
    opt = ref.make_opt(s, args.lr, args.wd)
    total = args.warmup + args.steps
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    gen = torch.Generator().manual_seed(args.seed + 1)
    perm = torch.randperm(len(xu), generator=gen)
    per_epoch = len(xu) // args.batch  # full batches only
    T, alpha, B = args.temperature, args.alpha, args.batch

    def step(i):
        nonlocal perm
        k = i % per_epoch
        if i and k == 0:
            perm = torch.randperm(len(xu), generator=gen)
        idx = perm[k * B:(k + 1) * B]
        xb = xu[idx]
        if mode == "online":
            xb = ref.translate(xb, args.translate, gen)
        x = ref.normalise(xb)
        if mode == "online":
            with torch.no_grad():
                t_logits = teacher(x)
        else:
            t_logits = table[idx]
        opt.zero_grad(set_to_none=True)
        loss = kd_loss(s(x), t_logits, y[idx], T, alpha)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s.parameters(), args.clip_grad)
        opt.step()
        sched.step()

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(args.warmup, total):
        step(i)
    sec = time.perf_counter() - t0
    print(f"kd {student_name} {mode} {args.steps * B / sec:.0f} {args.steps} {sec:.3f}", flush=True)


def blas_libs():
    """The BLAS libraries this process loaded (torch's Linear layers run on libblas.so.3; which one
    that is depends on Debian's alternatives: reference BLAS unless e.g. OpenBLAS is installed)."""
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in os.path.basename(path).lower():
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return ",".join(sorted(found)) or "?"


def main():
    torch.set_num_threads(args.threads)
    xu, y = ref.load_raw("train")
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("online", "cached"):
            sys.exit(f"pytorch_kd.py: unknown mode '{m}' (online, cached)")
    torch.manual_seed(args.seed)
    teacher = ref.MODELS[args.teacher]()
    teacher.eval()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"teacher {args.teacher} (random init, {sum(p.numel() for p in teacher.parameters())} parameters), "
          f"T {args.temperature:g}, alpha {args.alpha:g}, clip {args.clip_grad:g}, {args.warmup} warm-up + "
          f"{args.steps} timed steps, {len(xu)} images, BLAS {blas_libs()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, loadavg {os.getloadavg()[0]:.2f}", flush=True)
    table = None
    if "cached" in modes:
        table, sec = cache_teacher(teacher, xu)
        print(f"cache {args.teacher} {len(xu)} {sec:.2f}", flush=True)
    for name in args.students.split(","):
        for mode in modes:
            run(name, mode, teacher, xu, y, table)


if __name__ == "__main__":
    main()
