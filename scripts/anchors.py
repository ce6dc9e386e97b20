"""What a PyTorch user would run instead of torchgraph's fused graph, timed on request.

    python3 scripts/anchors.py --builtin NAME --file MODEL.pt --input 1x3x224x224:float32 ...
    python3 scripts/anchors.py --fixture DIR/<id>/manifest.json [--file MODEL.pt]
    python3 scripts/anchors.py --model FILE.pt|FILE.pt2 --input-npy X.npy ... --ref-npy Y.npy ...

Rebuilds the model in Python, a built-in one with scripts/export_models.py's builders, a corpus
fixture with scripts/corpus.py's (from the manifest's id; run it with the corpus libraries on
PYTHONPATH), and loads the weights of the TorchScript file torchgraph runs (the fixture's traced.pt
unless --file says otherwise), so both sides compute with the same tensors. A built-in model runs
on seeded inputs of the --input specs, a corpus fixture on its own input_<i>.npy files, as
torchgraph's run does. Eager's output is checked against the file's: the fixture's output_<i>.npy,
or the TorchScript module's own output for a built-in; over 1e-4 apart, it refuses (the weights
do not fit). A user's own file (--model) is not rebuilt but run as it is, on the inputs
torchgraph ran it on (--input-npy, in forward's order), and each mode's output is compared with
torchgraph's original run's (--ref-npy): see file_subject. Then it prepares PyTorch eager, torch.compile (inductor, default) and torch.compile
with inductor's freezing (weights folded into constants, convolutions and linears on prepacked
weights), and answers one JSON line per request on stdin, so that the bench can interleave these
runs with its own:

    {"cmd": "time", "mode": "inductor"}  ->  {"ms": 12.3}
    {"cmd": "gemm"}                      ->  {"gflops": 190.0, "n": 2048}   (this machine's peak)
    {"cmd": "quit"}

The first line it writes is {"ready": true, "modes": [...], "compileSeconds": {...}, "threads": N,
"eagerMaxAbsDiff": D, "routes": {...}, "skipped": {mode: reason}} or {"error": "..."}; failures
after that are {"error": "..."} replies. A mode that cannot be prepared (torch.compile failing on
the model) is skipped with its reason; eager failing is an error.
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
import export_models as em  # noqa: E402 (the built-in builders, and the output comparison)

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


# Eager against the TorchScript file's outputs: further apart, the weights are not the file's.
TOLERANCE = 1e-4


def load_weights(model: torch.nn.Module, file: str, what: str) -> torch.nn.Module:
    """`model` with the parameters and buffers of TorchScript file `file`, strictly: every key of
    the model's state dict, nothing else (but the model's non-persistent buffers, which TorchScript
    saves too), at the model's shapes."""
    weights = torch.jit.load(file, map_location="cpu").state_dict()
    own = model.state_dict()
    transient = {n for n, _ in model.named_buffers() if n not in own}
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own and k not in transient]
    if missing or unexpected:
        raise RuntimeError(f"the weights of {file} do not fit {what}: {len(missing)} missing (e.g. {missing[:3]}), "
                           f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    try:
        model.load_state_dict({k: weights[k] for k in own}, strict=True)
    except RuntimeError as e:  # shapes that differ
        raise RuntimeError(f"the weights of {file} do not fit {what}: {e}") from e
    buffers = dict(model.named_buffers())
    for name in transient & set(weights):
        buffers[name].copy_(weights[name])
    return model.eval()


def builtin_subject(args: argparse.Namespace):
    """A built-in model with the TorchScript file's weights, seeded inputs of the --input specs,
    and the TorchScript module's own outputs on them."""
    model = em.MODELS[args.builtin](argparse.Namespace(torchvision=False))[0]
    inputs = [parse_input(s) for s in args.input]
    refs = em.flatten_outputs(torch.jit.load(args.file, map_location="cpu")(*inputs))
    return load_weights(model, args.file, args.builtin), inputs, refs


def fixture_subject(args: argparse.Namespace):
    """A corpus fixture's model, rebuilt by corpus.py from the manifest's id, with the TorchScript
    file's weights, the fixture's own inputs and expected outputs."""
    import numpy as np
    import corpus  # noqa: E402 (needs the corpus libraries on PYTHONPATH)
    with open(args.fixture) as f:
        manifest = json.load(f)
    folder = os.path.dirname(os.path.abspath(args.fixture))
    spec, attn = corpus.find_spec(manifest["name"])
    model = corpus.build_transformers(spec, attn)[0]
    file = args.file or os.path.join(folder, manifest["variants"]["traced"])
    npy = [[torch.from_numpy(np.load(os.path.join(folder, t["file"]))) for t in manifest[k]] for k in ("inputs", "outputs")]
    return load_weights(model, file, manifest["name"]), npy[0], npy[1]


def module_modes(model: torch.nn.Module):
    """Each mode of a Python module: (what it runs, a thunk that makes its callable)."""
    return {
        "eager": ("the module in eager PyTorch", lambda: model),
        "inductor": ("torch.compile (inductor)", lambda: torch.compile(copy.deepcopy(model))),
        "inductor_freezing": ("torch.compile (inductor, freezing)",
                              lambda: torch.compile(copy.deepcopy(model), options={"freezing": True})),
    }


def in_inference_mode(fn):
    """`fn` run under inference mode, as native/module.cc runs a module (c10::InferenceMode)."""
    def run(*xs):
        with torch.inference_mode():
            return fn(*xs)
    return run


def load_npy(paths):
    try:
        import numpy as np
    except ImportError as e:
        raise RuntimeError("reading torchgraph's inputs and outputs (.npy) needs numpy in this Python") from e
    return [torch.from_numpy(np.load(p)) for p in paths]


def file_modes(file: str, inputs):
    """A user's own file as it is. TorchScript: torch.jit.load in eval mode, run with the graph
    executor's optimizations off and under inference mode, as torchgraph's libtorch runs it
    (native/addon.cc turns them off so that the graph runs as written). torch.compile refuses a
    ScriptModule, so its compiled modes go through torch.export's TorchScript converter
    (TS2EPConverter, a torch._export API) to a module it takes; when that fails, they are skipped
    with the reason. A .pt2: torch.export.load(...).module(), eager and compiled."""
    if file.endswith(".pt2"):
        program = torch.export.load(file).module()
        modes = module_modes(program)
        modes["eager"] = ("torch.export.load(...).module(), eager", lambda: in_inference_mode(program))
        for m in ("inductor", "inductor_freezing"):
            modes[m] = (modes[m][0] + " of torch.export.load(...).module()", modes[m][1])
        return modes
    torch._C._set_graph_executor_optimize(False)
    script = torch.jit.load(file, map_location="cpu").eval()
    converted = {}

    def converted_module():
        if "module" not in converted:
            from torch._export.converter import TS2EPConverter
            try:
                converted["module"] = TS2EPConverter(script, tuple(inputs)).convert().module()
            except Exception as e:  # noqa: BLE001
                converted["module"] = e
        if isinstance(converted["module"], Exception):
            e = converted["module"]
            raise RuntimeError("torch.compile does not take a TorchScript module, and torch.export's converter "
                               f"(TS2EPConverter) failed on this one: {type(e).__name__}: {first_line(e)}")
        return converted["module"]

    via = " of the module TS2EPConverter makes of torch.jit.load(...)"
    return {
        "eager": ("torch.jit.load, executor optimizations off, inference mode (as torchgraph runs it)",
                  lambda: in_inference_mode(script)),
        "inductor": ("torch.compile (inductor)" + via, lambda: torch.compile(converted_module())),
        "inductor_freezing": ("torch.compile (inductor, freezing)" + via,
                              lambda: torch.compile(converted_module(), options={"freezing": True})),
    }


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def prepare(modes_of, inputs, modes, refs):
    """Each mode's callable, compiled and run warm once, the seconds that took, and each mode's
    max abs diff from the TorchScript file's outputs (inductor with freezing folds batch norms
    and reorders weights too: its diff is the float32 noise such rewrites carry on this model).
    A compiled mode that fails is skipped with its reason; eager failing is an error."""
    runners, compile_s, diffs, skipped, routes = {}, {}, {}, {}, {}
    for mode in modes:
        if mode not in modes_of:
            raise ValueError(f"unknown mode {mode} (known: {', '.join(modes_of)})")
        routes[mode], make = modes_of[mode]
        t0 = time.perf_counter()
        try:
            fn = make()
            for _ in range(2):  # compile, then one warm run
                out = fn(*inputs)
            diffs[mode] = em.max_abs_diff(em.flatten_outputs(out), refs)
        except Exception as e:  # noqa: BLE001
            if mode == "eager":
                raise
            skipped[mode] = f"{type(e).__name__}: {first_line(e)}"
            continue
        compile_s[mode] = round(time.perf_counter() - t0, 2)
        runners[mode] = fn
    return runners, {"compileSeconds": compile_s, "maxAbsDiffs": diffs, "skipped": skipped, "routes": routes}


def gemm_gflops(n: int = 2048, reps: int = 7) -> float:
    """This machine's float32 GEMM rate: the faster of torch.mm (MKL here) and oneDNN's GEMM on a
    reordered weight (what the fused graph's linears run), each warmed up, the median of `reps`.
    On this project's AMD EPYC, MKL's sgemm measured 130-180 GFLOP/s and oneDNN's over 300: a peak
    from torch.mm alone put the fused graph at "240%" of it."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    candidates = [lambda: torch.mm(a, b)]
    if torch.backends.mkldnn.is_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), n)
        candidates.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], None))
    rates = []
    for gemm in candidates:
        for _ in range(3):
            gemm()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            gemm()
            times.append(time.perf_counter() - t0)
        times.sort()
        rates.append(2 * n ** 3 / times[len(times) // 2] / 1e9)
    return max(rates)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builtin", help="a built-in model (none, and no --fixture or --model: only the GEMM peak)")
    ap.add_argument("--fixture", help="a corpus fixture's manifest.json")
    ap.add_argument("--file", help="the TorchScript file with the weights (a fixture's: its traced.pt)")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--model", help="a user's own TorchScript (.pt) or torch.export (.pt2) file, run as it is")
    ap.add_argument("--input-npy", action="append", default=[], help="--model's inputs, in forward's order")
    ap.add_argument("--ref-npy", action="append", default=[], help="torchgraph's outputs of --model on them")
    ap.add_argument("--threads", type=int, help="intra-op threads (torchgraph's libtorch's)")
    ap.add_argument("--modes", default="eager,inductor,inductor_freezing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ready = {"ready": True, "threads": torch.get_num_threads(), "torch": torch.__version__}
    try:
        torch.set_grad_enabled(False)
        runners, inputs = {}, []
        if args.model:
            inputs, refs = load_npy(args.input_npy), load_npy(args.ref_npy)
            modes_of = file_modes(args.model, inputs)
        elif args.fixture or args.builtin:
            model, inputs, refs = (fixture_subject if args.fixture else builtin_subject)(args)
            diff = em.max_abs_diff(em.flatten_outputs(model(*inputs)), refs)
            ready["eagerMaxAbsDiff"] = diff
            if not diff <= TOLERANCE:
                raise RuntimeError(f"eager's output is {diff:.3g} from the TorchScript file's (limit {TOLERANCE:g}): "
                                   "the rebuilt model does not compute what torchgraph runs")
            modes_of = module_modes(model)
        if args.model or args.fixture or args.builtin:
            runners, prepared = prepare(modes_of, inputs, args.modes.split(","), refs)
            ready.update(prepared)
            if args.model:
                ready["eagerMaxAbsDiff"] = prepared["maxAbsDiffs"]["eager"]
    except Exception as e:  # noqa: BLE001
        diff = {k: ready[k] for k in ("eagerMaxAbsDiff",) if k in ready}
        reply({"error": f"{type(e).__name__}: {e}", **diff, "trace": traceback.format_exc(limit=3)})
        return 1
    reply({**ready, "modes": list(runners), "compileSeconds": ready.get("compileSeconds", {})})
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
