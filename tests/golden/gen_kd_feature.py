#!/usr/bin/python3
"""Golden values for the feature- and relation-based distillation losses and logit standardisation,
from PyTorch (run by hand with Debian's python3-torch 1.13; writes tests/golden/kd_feature/*.txt,
read by tests/unit/test_kd_feature.c). The losses are written as in the papers' reference code
(attention-transfer, DistilBERT, torchdistill's SPLoss, lenscloth/RKD) and evaluated in float64 on
inputs that are exactly representable in float32, so the fixtures hold the exact values.
Format, one item per line:
  1. "NAME p1 p2 ..." - the function and its shape parameters (see CASES below)
  2. student input s, flattened        3. teacher input t, flattened
  4. the loss (one value)              5. d(loss)/ds, flattened
For zscore, line 2 is x, line 3 the upstream gradient dz, line 4 z (B*C values) and line 5
dx = d(sum(z * dz))/dx."""
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kd_feature")


def mse(s, t):
    return F.mse_loss(s, t)  # FitNets hint: MSELoss(reduction='mean')


def at(x):  # szagoruyko/attention-transfer utils.py
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def at_loss(s, t):
    return (at(s) - at(t)).pow(2).mean()


def cosine(s, t):  # DistilBERT: nn.CosineEmbeddingLoss(reduction="mean"), target 1
    return torch.nn.CosineEmbeddingLoss(reduction="mean")(s, t, s.new_ones(s.size(0)))


def sp(s, t):  # torchdistill SPLoss
    b = s.shape[0]
    zs, zt = s.view(b, -1), t.view(b, -1)
    gs = F.normalize(torch.mm(zs, zs.t()), p=2, dim=1)
    gt = F.normalize(torch.mm(zt, zt.t()), p=2, dim=1)
    return torch.norm(gs - gt) ** 2 / (b * b)


def pdist(e, squared=False, eps=1e-12):  # lenscloth/RKD metric/utils.py
    e_square = e.pow(2).sum(dim=1)
    prod = e @ e.t()
    res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps)
    if not squared:
        res = res.sqrt()
    res = res.clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def rkd_distance(student, teacher):  # lenscloth/RKD metric/loss.py RkdDistance
    with torch.no_grad():
        t_d = pdist(teacher, squared=False)
        mean_td = t_d[t_d > 0].mean()
        t_d = t_d / mean_td
    d = pdist(student, squared=False)
    mean_d = d[d > 0].mean()
    d = d / mean_d
    return F.smooth_l1_loss(d, t_d, reduction="mean")


def rkd_angle_parts(x):
    xd = x.unsqueeze(0) - x.unsqueeze(1)
    norm_xd = F.normalize(xd, p=2, dim=2)
    return torch.bmm(norm_xd, norm_xd.transpose(1, 2)).view(-1)


def rkd_angle(student, teacher):  # lenscloth/RKD metric/loss.py RKdAngle
    with torch.no_grad():
        t_angle = rkd_angle_parts(teacher)
    s_angle = rkd_angle_parts(student)
    return F.smooth_l1_loss(s_angle, t_angle, reduction="mean")


def rkd(w_dist, w_angle):
    return lambda s, t: w_dist * rkd_distance(s, t) + w_angle * rkd_angle(s, t)


def zscore(x):  # Sun et al. 2024 with population variance and eps inside the sqrt
    m = x.mean(dim=1, keepdim=True)
    return (x - m) / torch.sqrt(x.var(dim=1, unbiased=False, keepdim=True) + 1e-7)


def f32(shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale + shift).float().double()


def write(name, header, s, t, out, grad):
    assert torch.equal(s, s.float().double()) and torch.equal(t, t.float().double()), "inputs must be float32"
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write(" ".join(str(v) for v in header) + "\n")
        f.write(" ".join(f"{v:.9g}" for v in s.flatten().tolist()) + "\n")
        f.write(" ".join(f"{v:.9g}" for v in t.flatten().tolist()) + "\n")
        f.write(" ".join(f"{v:.17g}" for v in out.flatten().tolist()) + "\n")
        f.write(" ".join(f"{v:.17g}" for v in grad.flatten().tolist()) + "\n")


def loss_case(name, header, fn, s, t):
    s = s.clone().requires_grad_()
    loss = fn(s, t)
    loss.backward()
    write(name, header, s.detach(), t, loss.detach().reshape(1), s.grad)
    return loss.item()


def smooth_l1_linear_share(fn_parts, s, t):
    """Share of smooth-L1 entries in the linear region (|x| >= 1), to show both branches are hit."""
    return [((a - b).abs() >= 1).double().mean().item() for a, b in fn_parts(s, t)]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    lines = []
    # mse: "mse n"
    s, t = f32((4, 6)), f32((4, 6), 2.0)
    lines.append(("mse", loss_case("mse", ["mse", 24], mse, s, t)))
    # at: "at B Cs Ct HW"
    for name, B, Cs, Ct, HW in [("at_same", 3, 4, 4, 9), ("at_diff", 2, 3, 6, 16)]:
        s, t = f32((B, Cs, HW)), f32((B, Ct, HW), 1.5, 0.3)
        lines.append((name, loss_case(name, ["at", B, Cs, Ct, HW], at_loss, s, t)))
    # cosine: "cosine B D"
    s, t = f32((5, 8)), f32((5, 8), 3.0)
    t[0] = (s[0] * 2 + 0.01 * t[0]).float().double()  # one nearly aligned row
    lines.append(("cosine", loss_case("cosine", ["cosine", 5, 8], cosine, s, t)))
    # a row of norm ~1e-5, where the 1e-12 on the squared norms moves cos by ~1% (and where
    # F.cosine_similarity's max(norm, 1e-8) would not): pins which eps is implemented
    s, t = f32((3, 6)), f32((3, 6))
    s[1] = (s[1] * 4e-6).float().double()
    lines.append(("cosine_tiny", loss_case("cosine_tiny", ["cosine", 3, 6], cosine, s, t)))
    print("cosine_tiny: embedding loss vs 1 - cosine_similarity:",
          cosine(s, t).item(), (1 - F.cosine_similarity(s, t)).mean().item())
    # sp: "sp B Ds Dt"
    s, t = f32((6, 7)), f32((6, 9), 0.7, 0.2)
    lines.append(("sp", loss_case("sp", ["sp", 6, 7, 9], sp, s, t)))
    s, t = f32((4, 2, 3)).view(4, 6), f32((4, 6))  # conv features (B, C, H, W) flatten the same way
    lines.append(("sp_square", loss_case("sp_square", ["sp", 4, 6, 6], sp, s, t)))
    # rkd: "rkd B Ds Dt w_dist w_angle"
    parts = lambda s, t: [(pdist(s) / pdist(s)[pdist(s) > 0].mean(), pdist(t) / pdist(t)[pdist(t) > 0].mean()),
                          (rkd_angle_parts(s), rkd_angle_parts(t))]
    s, t = f32((6, 5)), f32((6, 8), 2.0)
    lines.append(("rkd", loss_case("rkd", ["rkd", 6, 5, 8, 1.0, 2.0], rkd(1.0, 2.0), s, t)))
    print("rkd: linear-region share (dist, angle):", smooth_l1_linear_share(parts, s, t))
    # an outlier in the student's embedding and few dimensions: both smooth-L1 branches
    s, t = f32((7, 3)), f32((7, 4))
    s[2] = (s[2] * 6).float().double()
    lines.append(("rkd_outlier", loss_case("rkd_outlier", ["rkd", 7, 3, 4, 25.0, 50.0], rkd(25.0, 50.0), s, t)))
    print("rkd_outlier: linear-region share (dist, angle):", smooth_l1_linear_share(parts, s, t))
    s, t = f32((5, 4)), f32((5, 4))
    lines.append(("rkd_dist_only", loss_case("rkd_dist_only", ["rkd", 5, 4, 4, 1.0, 0.0], rkd(1.0, 0.0), s, t)))
    # zscore: "zscore B C"
    x = torch.cat([f32((3, 10)), f32((1, 10), 40.0, 5.0)])  # one row of large logits
    dz = f32((4, 10))
    xr = x.clone().requires_grad_()
    z = zscore(xr)
    (z * dz).sum().backward()
    write("zscore", ["zscore", 4, 10], x, dz, z.detach(), xr.grad)
    for name, v in lines:
        print(f"{name:14s} loss {v:.9g}")


if __name__ == "__main__":
    main()
