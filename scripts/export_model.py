"""Export a user's PyTorch module to TorchScript: `torchgraph export FILE.py:FACTORY`.

    export_model.py FILE.py:FACTORY --out MODEL.pt [--input SPEC]... [--script]

FACTORY is a function (or class) in FILE.py called with no arguments that returns an
nn.Module. The module is put in eval mode (dropout off, batch norm on running statistics);
under torch.no_grad() it is traced with random inputs of the given specs (the ops that ran,
for those shapes) or, with --script, compiled from its source (control flow and optional
arguments kept). The file is written next to its final name and renamed into place.
"""
import argparse
import importlib.util
import os
import sys

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
          "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}


def fail(msg: str) -> None:
    print(f"torchgraph export: {msg}", file=sys.stderr)
    sys.exit(2)


def make_input(spec: str, seed: int) -> torch.Tensor:
    dims, _, dtype = spec.partition(":")
    shape = [int(d) for d in dims.lower().split("x")]
    dt = DTYPES[dtype or "float32"]
    g = torch.Generator().manual_seed(seed)
    if dt.is_floating_point:
        return torch.randn(shape, generator=g, dtype=dt)
    if dt == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    return torch.randint(0, 10, shape, generator=g, dtype=dt)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--out", required=True)
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--script", action="store_true")
    args = ap.parse_args()
    file, sep, factory = args.target.rpartition(":")
    if not sep or not file.endswith(".py") or not factory:
        fail(f"{args.target}: expected FILE.py:FACTORY")
    if not os.path.isfile(file):
        fail(f"{file}: no such file")
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    spec = importlib.util.spec_from_file_location("torchgraph_user_model", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fn = getattr(mod, factory, None)
    if fn is None:
        fail(f"{file} has no {factory}")
    model = fn()
    if not isinstance(model, torch.nn.Module):
        fail(f"{factory}() returned {type(model).__name__}, not an nn.Module")
    model.eval()
    with torch.no_grad():
        if args.script:
            sm = torch.jit.script(model)
        else:
            if not args.input:
                fail("tracing needs --input SPEC for each forward() argument (or use --script)")
            inputs = tuple(make_input(s, i) for i, s in enumerate(args.input))
            sm = torch.jit.trace(model, inputs)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    try:
        sm.save(tmp)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"torchgraph: wrote {args.out} ({'scripted' if args.script else 'traced'}, torch {torch.__version__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
