#!/usr/bin/python3
"""Golden values for the distillation losses, from PyTorch (run by hand with Debian's python3-torch;
writes tests/golden/kd/*.txt, read by tests/unit/test_kd.c).
Format: one header line "B C T", then lines of floats: student logits (B*C), teacher logits (B*C),
the loss, and d(loss)/d(student logits) (B*C)."""
import os
import torch
import torch.nn.functional as F

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kd")
os.makedirs(out, exist_ok=True)
torch.manual_seed(3)
for name, B, C, T, scale in [("hinton_T1", 4, 10, 1.0, 1.0), ("hinton_T4", 5, 10, 4.0, 3.0),
                             ("hinton_T20_big", 3, 7, 20.0, 30.0)]:
    s = (torch.randn(B, C, dtype=torch.float64) * scale).float().double().requires_grad_()
    t = (torch.randn(B, C, dtype=torch.float64) * scale * 4).float().double()
    loss = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
    loss.backward()
    with open(os.path.join(out, name + ".txt"), "w") as f:
        f.write(f"{B} {C} {T}\n")
        for arr in (s.detach(), t, loss.detach().reshape(1), s.grad):
            f.write(" ".join(f"{v:.9g}" for v in arr.flatten().tolist()) + "\n")
