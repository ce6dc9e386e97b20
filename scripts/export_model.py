"""Export a user's PyTorch module to TorchScript: `torchgraph export FILE.py:FACTORY`.

    export_model.py FILE.py:FACTORY --out MODEL.pt [--input [NAME=]SPEC]... [--output NAME|INDEX] [--script | --pt2]

FACTORY is a function (or class) in FILE.py called with no arguments that returns an
nn.Module. The module is put in eval mode (dropout off, batch norm on running statistics);
under torch.no_grad() it is traced with inputs of the given specs (the ops that ran, for those
shapes) or, with --script, compiled from its source (control flow and optional arguments kept).
With --pt2 the module is captured by torch.export.export on the same inputs instead of traced,
and written with torch.export.save: a torch.export program (.pt2) torchgraph reads as it reads
the .pt.
The file is written next to its final name and renamed into place.

SPEC is SHAPE:DTYPE[:FILL] as the CLI writes it out (lib/app/cli/input-spec.ts canonicalSpec):
FILL is ones, zeros or LOW..HIGH (uniform in [LOW, HIGH)); without one, floats are normal,
integers 0..9 and bools random. Input i (in forward's order) is drawn with seed i from the
generator lib/torchscript/random.ts uses (mulberry32), so `validate` with the same specs runs on
the very inputs the trace saw.

A traced forward that returns a dict or a Hugging Face ModelOutput (which a trace cannot
return) is wrapped: the wrapper calls the model with the inputs by keyword and returns one
output, the first tensor or the one --output names (a key, or an index into the outputs). A
tuple or list of outputs is traced as it is, unless --output picks one of it. The wrapper's
forward takes the inputs under forward's own parameter names, so the traced graph's inputs are
named as in the model (input_ids, attention_mask, ...).
"""
import argparse
import importlib.util
import inspect
import math
import os
import re
import sys

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
          "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}
NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")
M32 = 0xFFFFFFFF


def fail(msg: str) -> None:
    print(f"torchgraph export: {msg}", file=sys.stderr)
    sys.exit(2)


def note(msg: str) -> None:
    print(f"torchgraph: {msg}", file=sys.stderr)


def _imul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Math.imul on uint32 values held in int64: the low 32 bits of a * b, without overflow."""
    lo = (a * (b & 0xFFFF)) & M32
    hi = ((a * (b >> 16)) & 0xFFFF) << 16
    return (lo + hi) & M32


def mulberry32(seed: int, n: int) -> torch.Tensor:
    """The first n draws (float64 in [0, 1)) of lib/torchscript/random.ts rng(seed)."""
    k = torch.arange(1, n + 1, dtype=torch.int64)
    a = ((seed & M32) + k * 0x6D2B79F5) & M32
    t = _imul(a ^ (a >> 15), a | 1)
    t = t ^ ((t + _imul(t ^ (t >> 7), t | 61)) & M32)
    return ((t ^ (t >> 14)) & M32).to(torch.float64) / 4294967296.0


def parse_spec(text: str):
    """[NAME=]SHAPE:DTYPE[:FILL] -> (name or None, shape, dtype name, fill or None)."""
    m = NAMED.match(text)
    name, spec = (m.group(1), m.group(2)) if m else (None, text)
    parts = spec.split(":")
    shape = [int(d) for d in parts[0].lower().split("x")]
    dtype = parts[1] if len(parts) > 1 and parts[1] else "float32"
    if dtype not in DTYPES:
        fail(f"--input {text}: unknown dtype {dtype}")
    fill = parts[2] if len(parts) > 2 else None
    return name, shape, dtype, fill


def make_input(shape, dtype: str, fill, seed: int) -> torch.Tensor:
    """The tensor lib/torchscript/random.ts randomTensor(shape, dtype, seed, fill) makes."""
    dt = DTYPES[dtype]
    n = math.prod(shape)
    if fill in ("ones", "zeros"):
        return (torch.ones if fill == "ones" else torch.zeros)(shape, dtype=dt)
    if fill is not None:
        low_text, _, high_text = fill.partition("..")
        low, high = float(low_text), float(high_text)
        u = mulberry32(seed, n)
        if dt.is_floating_point:
            v = low + u * (high - low)
        else:
            v = low + torch.floor(u * (high - low))
        return v.to(dt).reshape(shape)
    if dt.is_floating_point:
        d = mulberry32(seed, 2 * n)
        u, v = 1 - d[0::2], d[1::2]
        return (torch.sqrt(-2 * torch.log(u)) * torch.cos(2 * math.pi * v)).to(dt).reshape(shape)
    u = mulberry32(seed, n)
    if dt == torch.bool:
        return (u < 0.5).reshape(shape)
    return torch.floor(u * 10).to(dt).reshape(shape)


def forward_parameters(model: torch.nn.Module):
    """forward's parameters (without self): the positional-or-keyword names, and whether it takes
    *args / **kwargs."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return [], True, True
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
    var_args = any(p.kind == p.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    return names, var_args, var_kw


def bind_inputs(model: torch.nn.Module, specs):
    """The inputs in forward's order: [(name, tensor)], keyword (True) or positional (False) call.
    Given by position, inputs take forward's first parameter names; by name (all or none), they
    are put in forward's order. Input i (in that order) is drawn with seed i."""
    names, var_args, var_kw = forward_parameters(model)
    named = [s for s in specs if s[0] is not None]
    if named and len(named) != len(specs):
        fail("--input: give every input by name (name=SPEC) or none")
    if named:
        seen = set()
        for s in named:
            if s[0] in seen:
                fail(f"--input {s[0]}= is given twice")
            seen.add(s[0])
            # A name forward's own parameters lack would vanish into its **kwargs unused.
            if s[0] not in names and (names or not var_kw):
                fail(f"--input {s[0]}=...: forward has no argument '{s[0]}' ({', '.join(names)})")
        order = sorted(named, key=lambda s: names.index(s[0]) if s[0] in names else len(names))
        return [(s[0], make_input(s[1], s[2], s[3], i)) for i, s in enumerate(order)], True
    if len(specs) > len(names) and not var_args:
        fail(f"{len(specs)} inputs given, but forward takes {len(names)} ({', '.join(names)})")
    keyword = len(specs) <= len(names)
    return [(names[i] if keyword else f"input{i}", make_input(s[1], s[2], s[3], i)) for i, s in enumerate(specs)], keyword


def output_items(out):
    """A forward result as [(label, value)]: a dict's (or ModelOutput's) items, a tuple's or list's
    entries labelled by index; None for a single tensor."""
    if isinstance(out, torch.Tensor):
        return None
    if isinstance(out, dict):  # ModelOutput is an OrderedDict of its non-None fields
        return [(str(k), v) for k, v in out.items()]
    if isinstance(out, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(out)]
    fail(f"forward returned {type(out).__name__}, which cannot be traced (a tensor, a tuple, a dict or a ModelOutput can)")


def pick_output(out, want):
    """Which output to keep: (index into output_items, label). Fails with what there is."""
    items = output_items(out)
    if items is None:
        if want not in (None, "0"):
            fail(f"--output {want}: forward returns a single tensor")
        return None, None
    tensors = [(i, label) for i, (label, v) in enumerate(items) if isinstance(v, torch.Tensor)]
    listing = ", ".join(f"{label}" if isinstance(out, dict) else f"{label} ({type(v).__name__})" for label, v in items)
    if not tensors:
        fail(f"forward returned {type(out).__name__} with no tensor in it ({listing})")
    if want is None:
        # A tuple or list of tensors is an output a trace keeps whole; a dict is not.
        return tensors[0] if isinstance(out, dict) else (None, None)
    for i, (label, v) in enumerate(items):
        if label == want or (want.isdigit() and int(want) == i):
            if not isinstance(v, torch.Tensor):
                fail(f"--output {want}: {label} is a {type(v).__name__}, not a tensor")
            return i, label
    fail(f"--output {want}: forward returned {type(out).__name__} without it (outputs: {listing})")


def wrapper(model: torch.nn.Module, names, keyword: bool, index):
    """An nn.Module whose forward takes `names` (forward's own parameter names), calls the model
    with them and returns output `index` (all of it when None)."""
    args = ", ".join(names)
    call = ", ".join(f"{n}={n}" for n in names) if keyword else args
    pick = "" if index is None else f"[{index}]"
    src = (f"def forward(self, {args}):\n"
           f"    out = self.model({call})\n"
           f"    return (list(out.values()) if isinstance(out, dict) else out){pick}\n")
    scope = {}
    exec(compile(src, "<torchgraph export wrapper>", "exec"), scope)
    cls = type("TorchgraphExport", (torch.nn.Module,), {"forward": scope["forward"], "__module__": "torchgraph"})
    w = cls()
    w.model = model
    return w.eval()


def describe(out) -> str:
    items = output_items(out)
    return f"{type(out).__name__} ({', '.join(label for label, _ in items)})" if isinstance(out, dict) else f"{type(out).__name__} of {len(items)}"


def named_call(specs) -> bool:
    return any(NAMED.match(s) for s in specs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--out", required=True)
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--output", default=None)
    ap.add_argument("--script", action="store_true")
    ap.add_argument("--pt2", action="store_true")
    args = ap.parse_args()
    if args.script and args.pt2:
        fail("--pt2 captures a run with torch.export: drop --script (and give --input SPEC for each forward() argument)")
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
            if args.output is not None:
                fail("--output picks from a traced run: drop --script (and give --input SPEC for each forward() argument)")
            try:
                sm = torch.jit.script(model)
            except Exception as e:  # noqa: BLE001: any failure of the compiler is reported the same way
                first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                first = re.sub(r"\s*\bAt:?$", "", first)
                hf = type(model).__module__.split(".")[0] == "transformers"
                why = "scripting Hugging Face models usually fails" if hf else "the compiler does not take this model's Python"
                fail(f"torch.jit.script failed ({first}); {why}: trace instead (drop --script and give --input SPEC for each forward() argument)")
        else:
            if not args.input:
                fail("tracing needs --input SPEC for each forward() argument (or use --script)")
            bound, keyword = bind_inputs(model, [parse_spec(s) for s in args.input])
            names = [n for n, _ in bound]
            inputs = tuple(t for _, t in bound)
            out = model(**dict(bound)) if keyword else model(*inputs)
            index, label = pick_output(out, args.output)
            if index is not None or named_call(args.input):
                if index is not None:
                    note(f"export: forward returns {describe(out)}; kept output '{label}'"
                         f"{'' if args.output is not None else ' (the first tensor; pick another with --output NAME or INDEX)'}")
                model = wrapper(model, names, keyword, index)
            if args.pt2:
                try:
                    sm = torch.export.export(model, inputs)
                except Exception as e:  # noqa: BLE001: any failure of the exporter is reported the same way
                    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                    fail(f"torch.export.export failed ({first}); export a TorchScript file instead (drop --pt2)")
            else:
                sm = torch.jit.trace(model, inputs)
    tmp = f"{args.out}.tmp-{os.getpid()}{'.pt2' if args.pt2 else ''}"  # torch.export.save wants the suffix
    try:
        if args.pt2:
            torch.export.save(sm, tmp)
        else:
            sm.save(tmp)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    how = "scripted" if args.script else "torch.export program" if args.pt2 else "traced"
    print(f"torchgraph: wrote {args.out} ({how}, torch {torch.__version__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
