#!/usr/bin/env python3
"""PyTorch throughput benchmark for the model-dev sandbox.

Runs a model on synthetic inputs: a few untimed warm-up iterations, then
ITERATIONS timed ones, synchronising the GPU before reading the clock so the
time covers the work and not just its launch. Reports samples per second, the
per-iteration time and, on a GPU, the peak memory PyTorch allocated. Without a
GPU it runs on the CPU.

    python3 run.py --model resnet50 --batch-size 32 --iterations 50
    python3 run.py --model mlp --batch-size 8 --iterations 5 --device cpu --json
"""

import argparse
import json
import platform
import sys
import time


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Measure a PyTorch model's throughput on synthetic data.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="mlp (a small built-in model) or a torchvision model name such as resnet50",
    )
    parser.add_argument("--batch-size", type=positive_int, required=True, help="samples per iteration")
    parser.add_argument("--iterations", type=positive_int, required=True, help="timed iterations")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--mode", choices=("inference", "train"), default="inference",
                        help="forward passes only, or forward, backward and an optimiser step")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--image-size", type=positive_int, default=224, help="input height and width for vision models")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser.parse_args(argv)


def build_model(torch, name, image_size):
    """Returns (model, input shape without the batch dimension, classes)."""
    if name == "mlp":
        features = 1024
        model = torch.nn.Sequential(
            torch.nn.Linear(features, 4096),
            torch.nn.ReLU(),
            torch.nn.Linear(4096, 4096),
            torch.nn.ReLU(),
            torch.nn.Linear(4096, 1000),
        )
        return model, (features,), 1000
    try:
        import torchvision
    except ImportError:
        raise SystemExit(f"run.py: model {name!r} needs torchvision, which is not installed; use --model mlp") from None
    try:
        if hasattr(torchvision.models, "get_model"):
            model = torchvision.models.get_model(name, weights=None)
        else:  # torchvision < 0.14
            model = getattr(torchvision.models, name)()
    except (ValueError, AttributeError):
        raise SystemExit(f"run.py: unknown model {name!r}: use mlp or a torchvision model name such as resnet50") from None
    return model, (3, image_size, image_size), 1000


def pick_device(torch, requested):
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("run.py: --device cuda asked for, but PyTorch sees no GPU: run with --gpus or use --device cpu")
    return device


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("run.py: PyTorch is not installed: run it in the model-dev sandbox (sbxrun model-dev -- model-test bench ...)") from None

    device = pick_device(torch, args.device)
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu" and dtype == torch.float16:
        raise SystemExit("run.py: float16 on the CPU is not supported by every operator: use --dtype bfloat16 or float32")
    torch.manual_seed(0)
    model, shape, classes = build_model(torch, args.model, args.image_size)
    model = model.to(device=device, dtype=dtype)
    inputs = torch.randn((args.batch_size, *shape), device=device, dtype=dtype)
    targets = torch.randint(0, classes, (args.batch_size,), device=device)

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs).float(), targets)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(inputs)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    synchronize()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    start = time.perf_counter()
    for _ in range(args.iterations):
        step()
    synchronize()
    elapsed = time.perf_counter() - start

    result = {
        "model": args.model,
        "mode": args.mode,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "seconds": round(elapsed, 6),
        "ms_per_iteration": round(elapsed / args.iterations * 1000, 3),
        "samples_per_second": round(args.batch_size * args.iterations / elapsed, 2),
        "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {'n/a' if value is None else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
