"""Does ``torch.compile`` pay for Thresher's training steps on this CPU, under bf16?

The same training step (the model's recipe: optimiser, batch size; bf16 autocast and
channels-last as ``precision=auto`` uses them) runs eagerly and through ``torch.compile``
(inductor), interleaved in this one process. Reported: steady-state images/s of each (best of
``--repeats`` timed windows after warm-up), the ratio, and the one-off compile time, which a
short LRP-GUS iteration or a compare cell must win back.

    python benchmarks/bench_compile.py                         # mnist_lenet, cifar_fast
    python benchmarks/bench_compile.py --models fmnist_cnn --steps 40
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from thresher.models import create_model, model_spec
from thresher.train import get_recipe

SHAPES = {"mnist_lenet": (1, 28, 28), "fmnist_cnn": (1, 28, 28), "cifar_fast": (3, 32, 32)}


def make_step(model: torch.nn.Module, opt: torch.optim.Optimizer):
    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def images_per_second(step, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * x.shape[0] / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mnist_lenet,cifar_fast")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpu, threads {args.threads}, bf16 autocast + channels-last, torch {torch.__version__}")
    print(f"{'model':12s} {'eager img/s':>12s} {'compiled img/s':>15s} {'ratio':>6s} "
          f"{'compile s':>10s} {'break-even steps':>17s}")  # fmt: skip
    for name in args.models.split(","):
        rec = get_recipe(model_spec(name).recipe)
        shape = SHAPES.get(name, (3, 32, 32))
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(rec.batch_size, *shape, generator=gen)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (rec.batch_size,), generator=gen)
        runs = {}
        compile_seconds = 0.0
        for mode in ("eager", "compiled"):
            torch.manual_seed(0)
            net = create_model(name, num_classes=10, in_channels=shape[0]).train()
            net = net.to(memory_format=torch.channels_last)
            opt = rec.make_optimizer(net.parameters())
            model = torch.compile(net) if mode == "compiled" else net
            step = make_step(model, opt)
            t = time.perf_counter()
            step(x, y)  # the first call compiles
            step(x, y)
            if mode == "compiled":
                compile_seconds = time.perf_counter() - t
            runs[mode] = step
        best = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeats):  # interleaved: both see the same machine state
            for mode, step in runs.items():
                best[mode] = max(best[mode], images_per_second(step, x, y, args.steps))
        eager, comp = best["eager"], best["compiled"]
        gain_per_step = rec.batch_size / eager - rec.batch_size / comp
        even = compile_seconds / gain_per_step if gain_per_step > 0 else float("inf")
        print(f"{name:12s} {eager:12.0f} {comp:15.0f} {comp / eager:5.2f}x "
              f"{compile_seconds:10.1f} {even:17.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
