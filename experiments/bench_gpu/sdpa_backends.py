"""Forward + backward time of PyTorch's fused attention backends at one ViT shape, with q, k, v
as vitlab passes them (views of one (B, N, 3, h, d) product). Which backend PyTorch picks by
default is printed first. Usage: python3 sdpa_backends.py [B N HEADS HEAD_DIM]"""
import contextlib
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, N, H, D = (int(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (256, 197, 6, 64)
qkv = torch.randn(B, N, 3, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
grad = torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16)


def step():
    qkv.grad = None
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d) each
    out = F.scaled_dot_product_attention(q, k, v)
    out.backward(grad)


def ms(backends=None, steps=50):
    with sdpa_kernel(backends) if backends else contextlib.nullcontext():
        for _ in range(5):
            step()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize()
    return start.elapsed_time(end) / steps


print(f"B {B} N {N} heads {H} head_dim {D}: forward + backward of one layer, ms")
print(f"default: {ms():.3f}")
for b in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
    try:
        print(f"{b.name}: {ms([b]):.3f}")
    except RuntimeError as e:
        print(f"{b.name}: not available ({str(e).splitlines()[0]})")
