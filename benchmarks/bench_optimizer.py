"""How much of a training step is the optimiser, and do foreach/fused kernels shorten it?

Same model, batch and recipe optimiser (bf16 autocast, channels-last, as ``precision=auto``),
the optimiser built three ways (PyTorch's default, ``foreach=True``, ``fused=True``),
interleaved in this one process, best of ``--repeats`` windows. Printed per variant: the whole
step's time, the optimiser's share of it, and the step time against the default (ratio).

    python benchmarks/bench_optimizer.py
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from thresher.models import create_model, model_spec
from thresher.train import get_recipe

SHAPES = {"mnist_lenet": (1, 28, 28), "fmnist_cnn": (1, 28, 28), "cifar_fast": (3, 32, 32)}
VARIANTS = ("default", "foreach", "fused")


def build(name: str, variant: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    shape = SHAPES[name]
    net = create_model(name, num_classes=10, in_channels=shape[0])
    net = net.to(memory_format=torch.channels_last).train()
    rec = get_recipe(model_spec(name).recipe)
    kw = {} if variant == "default" else {variant: True}
    if rec.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(net.parameters(), lr=rec.lr, **kw)
    else:
        opt = torch.optim.SGD(
            net.parameters(), lr=rec.lr, momentum=rec.momentum, nesterov=rec.nesterov, **kw
        )
    return net, opt


def window(net, opt, x, y, steps: int) -> tuple[float, float]:
    total = optim = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        total += t2 - t0
        optim += t2 - t1
    return total / steps, optim / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mnist_lenet,cifar_fast")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpu, threads {args.threads}, bf16 autocast + channels-last")
    print(f"{'model':12s} {'optimiser':9s} {'step ms':>8s} {'optimiser ms':>13s} "
          f"{'share':>6s} {'step vs default':>16s}")  # fmt: skip
    for name in args.models.split(","):
        bs = get_recipe(model_spec(name).recipe).batch_size
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(bs, *SHAPES[name], generator=gen).contiguous(
            memory_format=torch.channels_last
        )
        y = torch.randint(0, 10, (bs,), generator=gen)
        built = {v: build(name, v) for v in VARIANTS}
        for net, opt in built.values():
            window(net, opt, x, y, 2)  # warm up
        best = {v: (float("inf"), 0.0) for v in VARIANTS}
        for _ in range(args.repeats):  # interleaved: all see the same machine state
            for v, (net, opt) in built.items():
                t = window(net, opt, x, y, args.steps)
                if t[0] < best[v][0]:
                    best[v] = t
        ref = best["default"][0]
        for v in VARIANTS:
            step, optim = best[v]
            print(f"{name:12s} {v:9s} {1e3 * step:8.2f} {1e3 * optim:13.3f} "
                  f"{100 * optim / step:5.1f}% {ref / step:15.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
