"""What a PyTorch user would run instead of torchgraph's fused graph, timed on request.

    python3 scripts/anchors.py --builtin NAME --file MODEL.pt --input 1x3x224x224:float32 ...

Rebuilds a built-in model in Python (scripts/export_models.py's builders), loads the weights of
the TorchScript file torchgraph runs (so both sides compute with the same tensors), and prepares
PyTorch eager, torch.compile (inductor, default) and torch.compile with inductor's freezing
(weights folded into constants, convolutions and linears on prepacked weights). Then it answers
one JSON line per request on stdin, so that the bench can interleave these runs with its own:

    {"cmd": "time", "mode": "inductor"}  ->  {"ms": 12.3}
    {"cmd": "gemm"}                      ->  {"gflops": 190.0, "n": 2048}   (this machine's peak)
    {"cmd": "quit"}

The first line it writes is {"ready": true, "modes": [...], "compileSeconds": {...}, "threads": N}
or {"error": "..."}; failures after that are {"error": "..."} replies.
"""
import argparse
import copy
import json
import os
import sys
import time
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32,
          "uint8": torch.uint8, "bool": torch.bool}


def reply(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_input(spec: str) -> torch.Tensor:
    shape_text, _, dtype = spec.partition(":")
    shape = [int(d) for d in shape_text.split("x")]
    dt = DTYPES[dtype or "float32"]
    g = torch.Generator().manual_seed(0)
    if dt.is_floating_point:
        return torch.randn(*shape, generator=g, dtype=dt)
    return torch.zeros(*shape, dtype=dt)


def build(name: str, file: str) -> torch.nn.Module:
    import export_models  # noqa: E402 (the builders live there)
    model = export_models.MODELS[name](argparse.Namespace(torchvision=False))[0]
    # The same tensors torchgraph runs with: the TorchScript file's parameters and buffers.
    scripted = torch.jit.load(file, map_location="cpu")
    missing, unexpected = model.load_state_dict(scripted.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights of {file} do not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def gemm_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best.append(time.perf_counter() - t0)
    best.sort()
    return 2 * n ** 3 / best[len(best) // 2] / 1e9


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builtin", help="a built-in model (none: only the GEMM peak)")
    ap.add_argument("--file")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--modes", default="eager,inductor,inductor_freezing")
    args = ap.parse_args()
    try:
        torch.set_grad_enabled(False)
        runners, compile_s = {}, {}
        model = build(args.builtin, args.file) if args.builtin else None
        inputs = [parse_input(s) for s in args.input]
        for mode in (args.modes.split(",") if model is not None else []):
            t0 = time.perf_counter()
            if mode == "eager":
                fn = model
            elif mode == "inductor":
                fn = torch.compile(copy.deepcopy(model))
            elif mode == "inductor_freezing":
                fn = torch.compile(copy.deepcopy(model), options={"freezing": True})
            else:
                raise ValueError(f"unknown mode {mode}")
            for _ in range(2):  # compile, then one warm run
                fn(*inputs)
            compile_s[mode] = round(time.perf_counter() - t0, 2)
            runners[mode] = fn
    except Exception as e:  # noqa: BLE001
        reply({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})
        return 1
    reply({"ready": True, "modes": list(runners), "compileSeconds": compile_s, "threads": torch.get_num_threads(),
           "torch": torch.__version__})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                return 0
            if req.get("cmd") == "gemm":
                reply({"gflops": gemm_gflops(), "n": 2048})
                continue
            fn = runners[req["mode"]]
            t0 = time.perf_counter()
            fn(*inputs)
            reply({"ms": (time.perf_counter() - t0) * 1000})
        except Exception as e:  # noqa: BLE001
            reply({"error": f"{type(e).__name__}: {e}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
