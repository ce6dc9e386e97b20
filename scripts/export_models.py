#!/usr/bin/env python3
"""Export TorchScript test fixtures: models, inputs and eager reference outputs.

    export_models.py --out DIR [--force] [--torchvision] NAME...
        Exports each named model (mha_demo, vit_b_16, control_flow) to DIR/NAME/.
    export_models.py --out DIR [--force] --mha-variants SPEC.json
        Exports one nn.MultiheadAttention wrapper per config of SPEC.json (a JSON list) to
        DIR/<id>/, then writes DIR/index.json.

Every export folder holds traced.pt (torch.jit.trace under no_grad: MHA's fast path,
aten::_native_multi_head_attention, where its conditions hold), traced_grad.pt (traced with grad
enabled: the slow path with aten::scaled_dot_product_attention) and scripted.pt
(torch.jit.script), all in eval mode; input_<i>.npy and output_<i>.npy (eager eval outputs under
no_grad, tuples flattened depth-first, None left out); and manifest.json, written last. A folder
is built under a temporary name and renamed into place, so a folder with a manifest is complete.
A variant that fails to trace or script is recorded under "errors" in its manifest instead of
failing the run. Weights come from a fixed seed with every bias, LayerNorm affine and the
classifier head random and non-zero. .npy files are written by hand: numpy is not needed.

Logs go to stderr. Exit status: 0 ok, 1 an export failed, 2 bad arguments or spec.
"""
import argparse
import ctypes
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit  # noqa: E402

SEED = 1234
VARIANTS = ("traced", "traced_grad", "scripted")
MAX_ERROR_CHARS = 4000


def log(msg: str) -> None:
    print(f"export_models: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# .npy (format version 1.0): magic, version, little-endian uint16 header length, a Python dict
# literal padded with spaces and a newline so the data starts at a multiple of 64, raw C-order data.

_NPY_DTYPES = {
    torch.float32: ("<f4", "float32"),
    torch.float64: ("<f8", "float64"),
    torch.int64: ("<i8", "int64"),
    torch.int32: ("<i4", "int32"),
    torch.uint8: ("|u1", "uint8"),
    torch.bool: ("|b1", "bool"),
}


def write_npy(path: str, t: torch.Tensor) -> Dict[str, Any]:
    if t.dtype not in _NPY_DTYPES:
        raise TypeError(f"write_npy: unsupported dtype {t.dtype}")
    descr, name = _NPY_DTYPES[t.dtype]
    t = t.detach().to("cpu").contiguous()
    shape = tuple(int(d) for d in t.shape)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, shape)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    nbytes = t.numel() * t.element_size()
    data = ctypes.string_at(t.data_ptr(), nbytes) if nbytes else b""
    if sys.byteorder != "little" and t.element_size() > 1:
        raise RuntimeError("write_npy: big-endian hosts are not supported")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00")
        f.write(len(header).to_bytes(2, "little"))
        f.write(header.encode("latin1"))
        f.write(data)
    return {"file": os.path.basename(path), "shape": list(shape), "dtype": name}


# ---------------------------------------------------------------------------------------------
# Weights

def randomize_(model: nn.Module) -> None:
    """Re-initialise from the current RNG state so nothing that matters is zero or one:
    every bias (bias, in_proj_bias, out_proj.bias, bias_k, bias_v) ~ N(0, 0.1), LayerNorm
    weight ~ 1 + N(0, 0.1) and bias ~ N(0, 0.1), and any parameter left all-zero by its default
    init (torchvision's class token and classifier head) ~ N(0, 0.02)."""
    with torch.no_grad():
        norm_params = set()
        for m in model.modules():
            if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))
                norm_params.add(id(m.weight))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn_like(m.bias))
                    norm_params.add(id(m.bias))
        for name, p in model.named_parameters():
            if id(p) in norm_params:
                continue
            if "bias" in name.rsplit(".", 1)[-1]:
                p.copy_(0.1 * torch.randn_like(p))
            elif not bool(p.any()):
                p.copy_(0.02 * torch.randn_like(p))
        for name, p in model.named_parameters():
            if p.numel() and not bool(p.any()):
                raise AssertionError(f"parameter {name} is still all zero")


def parameter_stats(model: nn.Module) -> Dict[str, int]:
    params = list(model.parameters())
    return {
        "count": sum(p.numel() for p in params),
        "bytes": sum(p.numel() * p.element_size() for p in params),
        "tensors": len(params),
    }


# ---------------------------------------------------------------------------------------------
# Exporting one module in the three variants

def flatten_outputs(out: Any) -> List[torch.Tensor]:
    if out is None:
        return []
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        flat: List[torch.Tensor] = []
        for o in out:
            flat.extend(flatten_outputs(o))
        return flat
    raise TypeError(f"unsupported output type {type(out).__name__}")


def graph_summary(m: torch.jit.ScriptModule) -> Dict[str, Any]:
    """Node counts of forward after inlining every method call (nested blocks included)."""
    g = m.inlined_graph
    kinds: Counter = Counter()

    def walk(block) -> None:
        for n in block.nodes():
            kinds[n.kind()] += 1
            for b in n.blocks():
                walk(b)

    walk(g)
    return {"nodes": sum(kinds.values()), "topLevelNodes": len(list(g.nodes())),
            "kinds": dict(sorted(kinds.items()))}


def error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " ..."


def summary(text: str) -> str:
    """One line of an error: "Type: first non-empty line of the message"."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    head = lines[0]
    if head.endswith(":") and len(lines) > 1 and head.count(" ") == 0:  # "RuntimeError:" then message
        head = f"{head} {lines[1]}"
    return head[:300]


def max_abs_diff(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} outputs, expected {len(want)}")
    worst = 0.0
    for g, w in zip(got, want):
        if tuple(g.shape) != tuple(w.shape) or g.dtype != w.dtype:
            raise AssertionError(f"output {tuple(g.shape)} {g.dtype}, expected {tuple(w.shape)} {w.dtype}")
        if g.dtype.is_floating_point:
            same_nonfinite = (g == w) | (torch.isnan(g) & torch.isnan(w))
            d = torch.where(same_nonfinite, torch.zeros_like(g), (g.double() - w.double()).abs())
            worst = max(worst, float(d.max()) if d.numel() else 0.0)
        elif not torch.equal(g, w):
            worst = math.inf
    return worst


def forget_script_types() -> None:
    """After a failed torch.jit.script, TorchScript's cache of module types keeps the half-built
    class, and every later script of a module with the same concrete type fails with "Can't
    redefine method: forward". A fresh cache makes the next attempt compile from scratch."""
    import torch.jit._recursive as rec
    rec.concrete_type_store = rec.ConcreteTypeStore()


def export_module(model: nn.Module, inputs: Tuple[torch.Tensor, ...], refs: List[torch.Tensor],
                  folder: str, variants: Tuple[str, ...] = VARIANTS) -> Dict[str, Any]:
    """Trace (no_grad), trace (grad) and script `model`, save, reload and check each against
    the eager outputs. Failures are recorded, not raised."""
    res: Dict[str, Any] = {"variants": {}, "errors": {}, "warnings": {}, "graphs": {}, "maxAbsDiff": {},
                           "timings": {}}
    for variant in variants:
        t0 = time.perf_counter()
        path = os.path.join(folder, f"{variant}.pt")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if variant == "traced":
                    with torch.no_grad():
                        sm = torch.jit.trace(model, inputs, check_trace=False)
                elif variant == "traced_grad":
                    with torch.enable_grad():
                        sm = torch.jit.trace(model, inputs, check_trace=False)
                else:
                    sm = torch.jit.script(model)
            sm.save(path)
        except Exception as e:  # noqa: BLE001 - recorded in the manifest
            if variant == "scripted":
                forget_script_types()
            res["errors"][variant] = error_text(e)
            res["timings"][variant] = round(time.perf_counter() - t0, 3)
            if os.path.exists(path):
                os.remove(path)
            log(f"  {variant}: FAILED: {summary(error_text(e))}")
            continue
        msgs = []
        for w in caught:
            text = str(w.message).splitlines()[0] if str(w.message) else ""
            if issubclass(w.category, DeprecationWarning) and "Please switch to `torch.compile`" in text:
                continue  # torch.jit's own deprecation notice, on every call
            m = f"{w.category.__name__}: {text}"
            if m not in msgs:
                msgs.append(m)
        if msgs:
            res["warnings"][variant] = msgs[:10]
        try:
            loaded = torch.jit.load(path)
            with torch.no_grad():
                got = flatten_outputs(loaded(*inputs))
            res["maxAbsDiff"][variant] = max_abs_diff(got, refs)
            res["graphs"][variant] = graph_summary(loaded)
        except Exception as e:  # noqa: BLE001
            res["errors"][variant] = "saved, but reloading or running it failed: " + error_text(e)
            os.remove(path)
            log(f"  {variant}: FAILED after save: {summary(error_text(e))}")
            continue
        res["variants"][variant] = f"{variant}.pt"
        res["timings"][variant] = round(time.perf_counter() - t0, 3)
    return res


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)-")


def clean_stale_tmp(out: str) -> None:
    """Remove temporary folders left by exporters that died (their pid is gone)."""
    for entry in os.listdir(out):
        m = _TMP_RE.match(entry)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(out, entry), ignore_errors=True)


def make_public(folder: str) -> None:
    """mkdtemp makes 0700 folders; give the published one the usual umask permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def publish(tmp: str, final: str) -> None:
    """Rename the finished temporary folder into place. If another exporter got there first
    with a complete folder, keep theirs; an incomplete folder there is replaced."""
    try:
        os.rename(tmp, final)
        return
    except OSError:
        pass
    if os.path.exists(os.path.join(final, "manifest.json")):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)


def export_fixture(out: str, name: str, model: nn.Module, inputs: Tuple[torch.Tensor, ...],
                   input_names: List[str], output_names: List[str], extra: Dict[str, Any],
                   seed: int, t_start: float, only_run_variant: bool = False) -> Dict[str, Any]:
    """Run `model` eagerly for the references, export it, and publish DIR/name/ atomically.
    only_run_variant: export just the variant the model runs as (runVariant, else traced)."""
    model.eval()
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=out)
    try:
        with torch.no_grad():
            refs = [r.detach().clone() for r in flatten_outputs(model(*inputs))]
        in_files = []
        for i, t in enumerate(inputs):
            e = write_npy(os.path.join(tmp, f"input_{i}.npy"), t)
            in_files.append({"name": input_names[i] if i < len(input_names) else f"input_{i}", **e})
        out_files = []
        for i, t in enumerate(refs):
            e = write_npy(os.path.join(tmp, f"output_{i}.npy"), t)
            out_files.append({"name": output_names[i] if i < len(output_names) else f"output_{i}", **e})
        variants = (extra.get("runVariant", "traced"),) if only_run_variant else VARIANTS
        res = export_module(model, inputs, refs, tmp, variants)
        errors = dict(res["errors"])
        if any(r.dtype.is_floating_point and not bool(torch.isfinite(r).all()) for r in refs):
            errors["reference"] = "the eager reference outputs contain NaN or infinite values"
        manifest = {
            "name": name,
            **extra,
            "torch": torch.__version__,
            "seed": seed,
            "variants": res["variants"],
            "inputs": in_files,
            "outputs": out_files,
            "parameters": parameter_stats(model),
            "exportSeconds": round(time.perf_counter() - t_start, 3),
            "errors": errors,
            "warnings": res["warnings"],
            "maxAbsDiff": res["maxAbsDiff"],
            "graphs": res["graphs"],
            "timings": res["timings"],
        }
        write_json_atomic(os.path.join(tmp, "manifest.json"), _json_safe(manifest))
        make_public(tmp)
        publish(tmp, os.path.join(out, name))
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# Named models

class MhaDemo(nn.Module):
    """mha_demo: LayerNorm(768), then self-attention with a residual."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(768)
        self.attn = nn.MultiheadAttention(768, 12, dropout=0.1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        return x + self.attn(y, y, y)[0]


class ControlFlow(nn.Module):
    """Scripting gives a prim::Loop (the step loop) and a prim::If (on the data); tracing
    unrolls the loop and freezes the branch taken for the example input."""

    def __init__(self, dim: int = 16, steps: int = 3):
        super().__init__()
        self.steps = steps
        self.inp = nn.Linear(dim, dim)
        self.step = nn.Linear(dim, dim)
        self.pos = nn.Linear(dim, dim)
        self.neg = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.inp(x)
        for _ in range(self.steps):
            h = torch.tanh(self.step(h)) + h
        if h.sum() > 0:
            out = self.pos(h)
        else:
            out = self.neg(h) * 2.0
        return out, h.mean(dim=-1)


def build_mha_demo(_: argparse.Namespace):
    torch.manual_seed(SEED)
    model = MhaDemo()
    randomize_(model)
    return model, (torch.randn(4, 196, 768),), ["x"], ["out"], {"impl": "scripts/export_models.py:MhaDemo"}


def build_vit_b_16(args: argparse.Namespace):
    torch.manual_seed(SEED)
    model = vit.vit_b_16()
    randomize_(model)
    inputs = (torch.randn(1, 3, 224, 224),)
    impl = "scripts/vit.py"
    if args.torchvision:
        import torchvision
        from torchvision.models import vit_b_16 as tv_vit_b_16
        tv = tv_vit_b_16(weights=None)
        tv.load_state_dict(model.state_dict(), strict=True)
        model, impl = tv, f"torchvision {torchvision.__version__}"
    return model, inputs, ["image"], ["logits"], {"impl": impl}


def build_control_flow(_: argparse.Namespace):
    torch.manual_seed(SEED)
    model = ControlFlow()
    randomize_(model)
    return model, (torch.randn(2, 16),), ["x"], ["out", "h_mean"], {"impl": "scripts/export_models.py:ControlFlow"}


class Encoder(nn.Module):
    """nn.TransformerEncoder of 2 layers (d_model 30, 2 heads: head dim 15, a scale that is not a
    power of two). In eval under no_grad its layers take the _transformer_encoder_layer_fwd
    fast path."""

    def __init__(self, norm_first: bool):
        super().__init__()
        layer = nn.TransformerEncoderLayer(30, 2, dim_feedforward=48, dropout=0.1, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class Seq2Seq(nn.Module):
    """nn.Transformer (encoder-decoder) with a causal target mask: self-, causal self- and
    cross-attention (target length 5, source length 7)."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.Transformer(30, 2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=48,
                                          dropout=0.1, batch_first=True)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        return self.transformer(src, tgt, tgt_mask=mask, tgt_is_causal=True)


def build_encoder(norm_first: bool):
    def build(_: argparse.Namespace):
        torch.manual_seed(SEED)
        model = Encoder(norm_first)
        randomize_(model)
        return model, (torch.randn(3, 6, 30),), ["x"], ["out"], {"impl": f"scripts/export_models.py:Encoder(norm_first={norm_first})"}
    return build


def randomized(cls, shapes: List[Tuple[int, ...]], names: List[str]):
    """A builder for a model class with random weights (randomize_) and random inputs."""
    def build(_: argparse.Namespace):
        torch.manual_seed(SEED)
        model = cls()
        randomize_(model)
        return model, tuple(torch.randn(*s) for s in shapes), names, ["out"], {"impl": f"scripts/export_models.py:{cls.__name__}"}
    return build


build_seq2seq = randomized(Seq2Seq, [(2, 7, 30), (2, 5, 30)], ["src", "tgt"])


class Seq2SeqRuntimeCausal(nn.Module):
    """nn.Transformer given tgt_mask only: the decoder detects at run time whether the mask is
    causal (_detect_is_causal_mask), so scripted, its attentions get a run-time is_causal."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.Transformer(30, 2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=48,
                                          dropout=0.1, batch_first=True)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, tgt_mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(src, tgt, tgt_mask=tgt_mask)


class GroupedQuerySdpa(nn.Module):
    """Grouped-query attention through F.scaled_dot_product_attention(enable_gqa=True): 6 query
    heads share 2 key/value heads of dim 10 (scale 1/sqrt(10), not a power of two), causal."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(40, 60)
        self.kv = nn.Linear(40, 40)
        self.out = nn.Linear(60, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        q = self.q(x).view(B, L, 6, 10).transpose(1, 2)
        k, v = self.kv(x).view(B, L, 2, 2, 10).permute(2, 0, 3, 1, 4).unbind(0)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.out(y.transpose(1, 2).reshape(B, L, 60))


build_gqa_sdpa = randomized(GroupedQuerySdpa, [(2, 9, 40)], ["x"])


def build_seq2seq_runtime_causal(_: argparse.Namespace):
    torch.manual_seed(SEED)
    model = Seq2SeqRuntimeCausal()
    randomize_(model)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    return (model, (torch.randn(2, 7, 30), torch.randn(2, 5, 30), mask), ["src", "tgt", "tgt_mask"], ["out"],
            {"impl": "scripts/export_models.py:Seq2SeqRuntimeCausal"})


class AttentionBlock(nn.Module):
    """One self-attention (768, 12 heads of 64), batch first, weights not returned: the
    benchmark's long-sequence case, where the (L, L) scores dominate memory."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(768, 12, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


def build_attention_block(seq_len: int):
    def build(_: argparse.Namespace):
        torch.manual_seed(SEED)
        model = AttentionBlock()
        randomize_(model)
        return model, (torch.randn(1, seq_len, 768),), ["x"], ["out"], {"impl": f"scripts/export_models.py:AttentionBlock(L={seq_len})"}
    return build


class AttentionCore(nn.Module):
    """Only the attention core, softmax(Q K^T / sqrt(d)) V, on given (B, H, L, hd) tensors."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def build_attention_core(seq_len: int):
    def build(_: argparse.Namespace):
        torch.manual_seed(SEED)
        inputs = tuple(torch.randn(1, 12, seq_len, 64) for _ in range(3))
        return AttentionCore(), inputs, ["q", "k", "v"], ["out"], {"impl": f"scripts/export_models.py:AttentionCore(L={seq_len})"}
    return build


class SeparateProjections(nn.Module):
    """Attention as many real models write it: separate q/k/v nn.Linear and
    F.scaled_dot_product_attention; a cross-attention with kdim = vdim != embed_dim reading
    one memory as key and value (separate k/v weights); a gated MLP whose gate and up
    projections share an input. Head dim 24: its scale is not a power of two."""

    def __init__(self, E: int = 96, H: int = 4, M: int = 40):
        super().__init__()
        self.heads = H
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(E, E), nn.Linear(E, E), nn.Linear(E, E)
        self.out_proj = nn.Linear(E, E)
        self.cross = nn.MultiheadAttention(E, H, kdim=M, vdim=M, batch_first=True)
        self.gate, self.up, self.down = nn.Linear(E, 2 * E), nn.Linear(E, 2 * E), nn.Linear(2 * E, E)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        B, L, E = x.shape
        hd = E // self.heads
        q = self.q_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.heads, hd).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out_proj(a.transpose(1, 2).reshape(B, L, E))
        x = x + self.cross(x, memory, memory, need_weights=False)[0]
        return x + self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))


build_separate_projections = randomized(SeparateProjections, [(2, 7, 96), (2, 5, 40)], ["x", "memory"])


class HandWrittenAttention(nn.Module):
    """Attention written out by hand, as BERT- and GPT-2-style code does: scores scaled after
    the matmul by a Python float (traced as a 0-dim tensor), an additive padding mask added
    after the scale, the same mask added before a run-time scale and a constant one (so it is
    scaled by both), a causal mask by masked_fill(-inf) from a registered buffer, GPT-2's
    eager form (a divide by a 0-dim tensor and where(causal, scores, finfo.min)), and
    masked_fill with finfo.min. Head dim 24: its scale is not a
    power of two."""

    def __init__(self, E: int = 96, H: int = 4):
        super().__init__()
        self.heads = H
        self.qkv = nn.Linear(E, 3 * E)
        self.out = nn.Linear(E, E)
        self.drop = nn.Dropout(0.1)
        self.register_buffer("causal", torch.tril(torch.ones(16, 16, dtype=torch.bool)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, E = x.shape
        hd = E // self.heads
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        bert = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + mask
        a = torch.matmul(torch.softmax(bert, dim=-1), v)
        scaled_mask = (torch.matmul(q, k.transpose(-1, -2)) + mask) * (hd ** -0.5) * 1.25
        b = torch.matmul(self.drop(torch.softmax(scaled_mask, dim=-1)), v)
        gpt = torch.matmul(q, k.transpose(-1, -2)) * (hd ** -0.5)
        gpt = gpt.masked_fill(~self.causal[:L, :L], float("-inf"))
        c = torch.matmul(torch.softmax(gpt, dim=-1), v)
        # GPT-2's eager attention: divide by a 0-dim tensor, fill with finfo.min through where.
        gpt2 = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], hd ** 0.5)
        fill = torch.full([], -3.4028234663852886e38)  # torch.finfo(torch.float32).min
        gpt2 = torch.where(self.causal[:L, :L], gpt2.to(gpt2.dtype), fill) + mask
        d = torch.matmul(torch.softmax(gpt2, dim=-1), v)
        filled = (torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(~self.causal[:L, :L], -3.4028234663852886e38)
        e = torch.matmul(torch.softmax(filled, dim=-1), v)
        return self.out((a + b + c + d + e).transpose(1, 2).reshape(B, L, E))


build_handwritten_attention = randomized(HandWrittenAttention, [(2, 7, 96), (2, 1, 1, 7)], ["x", "mask"])


# Small CNNs (no attention): the convolution, batch-norm, pooling and channels-last blocks of
# MobileNetV3 / EfficientNet, ConvNeXt and ResNet, written in plain torch with torchvision's
# habits (in-place activations, out += identity), small enough to validate in seconds.

def randomize_batchnorm_(model: nn.Module) -> None:
    """Eval-mode batch norm that is not an identity: running stats and affine weights random."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(1.0 + 0.2 * torch.rand_like(m.running_var))
                m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: Optional[nn.Module] = None) -> nn.Sequential:
    layers: List[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation: adaptive_avg_pool2d(1), 1x1 conv, ReLU, 1x1 conv,
    hardsigmoid (MobileNetV3) or sigmoid (EfficientNet), then scale the input (broadcast mul)."""

    def __init__(self, c: int, squeeze: int, gate: nn.Module):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.act = nn.ReLU()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return s * x


class LinearSqueezeExcite(nn.Module):
    """Squeeze-excitation with linears (pooled, flattened, SiLU, sigmoid, viewed back)."""

    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Linear(c, squeeze)
        self.fc2 = nn.Linear(squeeze, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        s = torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))
        return x * s[:, :, None, None]


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand + BN + act, depthwise kxk + BN + act, squeeze-excitation,
    1x1 project + BN, residual when the shape allows."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int, act: str, se: str):
        super().__init__()
        mid = cin * expand
        make = {"hardswish": lambda: nn.Hardswish(inplace=True), "relu": lambda: nn.ReLU(inplace=True), "silu": lambda: nn.SiLU(inplace=True)}[act]
        layers: List[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, mid, 1, act=make()))
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=make()))
        if se == "conv":
            layers.append(SqueezeExcite(mid, max(8, mid // 4), nn.Hardsigmoid(inplace=True) if act == "hardswish" else nn.Sigmoid()))
        elif se == "linear":
            layers.append(LinearSqueezeExcite(mid, max(8, mid // 4)))
        layers.append(conv_bn(mid, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.residual:
            y = y + x
        return y


class SmallMBConvNet(nn.Module):
    """MobileNetV3 / EfficientNet-style: stem conv + BN + hardswish, MBConv blocks (depthwise,
    squeeze-excitation by convs and by linears, ReLU/hardswish/SiLU), a 1x1 head conv, global
    average pool, classifier with hardswish and (eval) dropout."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, act=nn.Hardswish(inplace=True))
        self.blocks = nn.Sequential(
            MBConv(16, 16, 1, 3, 1, "relu", "conv"),
            MBConv(16, 24, 4, 3, 2, "relu", "none"),
            MBConv(24, 24, 3, 3, 1, "relu", "none"),
            MBConv(24, 40, 3, 5, 2, "hardswish", "conv"),
            MBConv(40, 40, 4, 5, 1, "hardswish", "conv"),
            MBConv(40, 48, 4, 3, 1, "silu", "linear"),
        )
        self.head = conv_bn(48, 96, 1, act=nn.Hardswish(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(96, 128), nn.Hardswish(inplace=True), nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


class LayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNeXt LayerNorm2d: layer norm over channels of an NCHW tensor by permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, permute to NHWC, LayerNorm, Linear 4x, GELU, Linear, permute back,
    layer scale, residual."""

    def __init__(self, c: int):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * c, c)
        self.layer_scale = nn.Parameter(0.5 + 0.1 * torch.randn(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.layer_scale * y.permute(0, 3, 1, 2)


class SmallConvNeXt(nn.Module):
    """ConvNeXt-style: 4x4 patchify stem + LayerNorm2d, stages of ConvNeXt blocks with
    LayerNorm2d + 2x2 stride-2 downsampling, global mean, LayerNorm, linear head."""

    def __init__(self, dims: Tuple[int, ...] = (24, 48, 96), depths: Tuple[int, ...] = (2, 2, 1)):
        super().__init__()
        layers: List[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (d, n) in enumerate(zip(dims, depths)):
            if i:
                layers.append(nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], d, 2, 2)))
            layers.extend(ConvNeXtBlock(d) for _ in range(n))
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(-2, -1))
        return self.head(self.norm(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class SmallResNet(nn.Module):
    """ResNet-style: 7x7 stride-2 conv + BN + ReLU, 3x3 max pool, basic blocks and bottlenecks
    (1x1 stride-2 conv + BN downsampling), global average pool, linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.layer3 = nn.Sequential(Bottleneck(32, 16, 64, 2), Bottleneck(64, 16, 64, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_small_cnn(cls, shape: Tuple[int, ...]):
    def build(_: argparse.Namespace):
        torch.manual_seed(SEED)
        model = cls()
        randomize_(model)
        randomize_batchnorm_(model)
        return model, (torch.randn(*shape),), ["image"], ["logits"], {"impl": f"scripts/export_models.py:{cls.__name__}"}
    return build


class TransformerEncoderOptional(nn.Module):
    """nn.TransformerEncoder (2 layers, d_model 48, 4 heads, batch first) behind a forward that
    keeps its optional arguments, forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None), plus defaults of the other plain kinds (float, int, an int tuple: TorchScript
    takes no list defaults, bool) that the graph runs must pass too. Only src is given. The CLI
    runs the scripted variant (runVariant): a trace would keep only src."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(48, 4, dim_feedforward=96, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, src: torch.Tensor, mask: Optional[torch.Tensor] = None,
                src_key_padding_mask: Optional[torch.Tensor] = None, is_causal: Optional[bool] = None,
                scale: float = 0.5, shift: int = 1, dims: Tuple[int] = (-1,), center: bool = True) -> torch.Tensor:
        out = self.encoder(src, mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        if center:
            out = out - out.mean(dims, keepdim=True)
        return out * scale + shift


def build_transformer_encoder_optional(_: argparse.Namespace):
    torch.manual_seed(SEED)
    model = TransformerEncoderOptional()
    randomize_(model)
    return model, (torch.randn(2, 7, 48),), ["src"], ["out"], {
        "impl": "scripts/export_models.py:TransformerEncoderOptional", "runVariant": "scripted"}


MODELS = {
    "attention_2048": build_attention_block(2048),
    "attention_core_2048": build_attention_core(2048),
    "attention_core_512": build_attention_core(512),
    "mha_demo": build_mha_demo,
    "vit_b_16": build_vit_b_16,
    "control_flow": build_control_flow,
    "encoder_post_norm": build_encoder(False),
    "encoder_pre_norm": build_encoder(True),
    "seq2seq": build_seq2seq,
    "seq2seq_runtime_causal": build_seq2seq_runtime_causal,
    "gqa_sdpa": build_gqa_sdpa,
    "separate_projections": build_separate_projections,
    "handwritten_attention": build_handwritten_attention,
    "transformer_encoder_optional": build_transformer_encoder_optional,
    "small_cnn_mbconv": build_small_cnn(SmallMBConvNet, (2, 3, 64, 64)),
    "small_cnn_convnext": build_small_cnn(SmallConvNeXt, (2, 3, 64, 64)),
    "small_cnn_resnet": build_small_cnn(SmallResNet, (1, 3, 96, 96)),  # batch 1: the im2col fallback convolution
}

# The one list of built-in model names, shared with lib/app/models.ts.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin-models.json")) as _f:
    BUILTIN_NAMES = json.load(_f)
if sorted(BUILTIN_NAMES) != sorted(MODELS):
    raise SystemExit(f"scripts/builtin-models.json lists {sorted(BUILTIN_NAMES)}, the exporter builds {sorted(MODELS)}")


def export_each(names: List[str], out: str, force: bool, what: str,
                export_one: Callable[[str, float], Dict[str, Any]], done: Callable[[Dict[str, Any]], str]) -> int:
    """Export each name into out/<name> (kept when its manifest exists, unless force); a failure
    is logged with its trace and makes the status 1, the others still run."""
    status = 0
    for name in names:
        final = os.path.join(out, name)
        if os.path.exists(os.path.join(final, "manifest.json")) and not force:
            log(f"{name}: already exported in {final}")
            continue
        if force and os.path.exists(final):
            shutil.rmtree(final)
        t0 = time.perf_counter()
        log(f"{name}: exporting {what}to {final}")
        try:
            m = export_one(name, t0)
        except Exception:  # noqa: BLE001
            log(f"{name}: FAILED\n{traceback.format_exc()}")
            status = 1
            continue
        log(f"{name}: {done(m)}")
    return status


def export_named(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in MODELS]
    if unknown:
        log(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(MODELS)}")
        return 2

    def one(name: str, t0: float) -> Dict[str, Any]:
        model, inputs, in_names, out_names, extra = MODELS[name](args)
        return export_fixture(args.out, name, model, inputs, in_names, out_names,
                              {"kind": "model", **extra}, SEED, t0, args.run_variant_only)

    def done(m: Dict[str, Any]) -> str:
        errors = f" (with errors: {', '.join(m['errors'])})" if m["errors"] else ""
        return f"done in {m['exportSeconds']:.1f}s{errors}"

    return export_each(args.names, args.out, args.force, "", one, done)


# ---------------------------------------------------------------------------------------------
# Attention-variant matrix

SPEC_DEFAULTS: Dict[str, Any] = {
    "batch_first": False, "bias": True, "add_bias_kv": False, "add_zero_attn": False,
    "kdim": None, "vdim": None, "dropout": 0.0, "L": 5, "S": None, "B": 2,
    "attn_mask": None, "key_padding_mask": None, "is_causal": False, "need_weights": True,
    "average_attn_weights": True, "cross": False,
}
ATTN_MASKS = (None, "bool2d", "float2d", "bool3d", "float3d", "causal2d")
KPM_KINDS = (None, "bool", "float")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SpecError(Exception):
    pass


def normalize_spec(raw: Any, index: int) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(f"config {index}: expected an object")
    cid = raw.get("id")
    if not isinstance(cid, str) or not _ID_RE.match(cid):
        raise SpecError(f"config {index}: id must match {_ID_RE.pattern} (it names a folder), got {cid!r}")
    unknown = set(raw) - set(SPEC_DEFAULTS) - {"id", "embed_dim", "num_heads"}
    if unknown:
        raise SpecError(f"config {cid}: unknown fields {sorted(unknown)}")
    cfg = {"id": cid, **SPEC_DEFAULTS, **{k: v for k, v in raw.items() if k != "id"}}
    for k in ("embed_dim", "num_heads"):
        if not isinstance(cfg.get(k), int) or cfg[k] <= 0:
            raise SpecError(f"config {cid}: {k} must be a positive integer")
    if cfg["S"] is None:
        cfg["S"] = cfg["L"]
    for k in ("L", "S"):
        if not isinstance(cfg[k], int) or cfg[k] <= 0:
            raise SpecError(f"config {cid}: {k} must be a positive integer")
    if not isinstance(cfg["B"], int) or cfg["B"] < 0:
        raise SpecError(f"config {cid}: B must be an integer >= 0 (0 = unbatched)")
    for k in ("kdim", "vdim"):
        if cfg[k] is not None and (not isinstance(cfg[k], int) or cfg[k] <= 0):
            raise SpecError(f"config {cid}: {k} must be null or a positive integer")
    for k in ("batch_first", "bias", "add_bias_kv", "add_zero_attn", "is_causal", "need_weights",
              "average_attn_weights", "cross"):
        if not isinstance(cfg[k], bool):
            raise SpecError(f"config {cid}: {k} must be a boolean")
    if not isinstance(cfg["dropout"], (int, float)) or not 0 <= cfg["dropout"] < 1:
        raise SpecError(f"config {cid}: dropout must be in [0, 1)")
    cfg["dropout"] = float(cfg["dropout"])
    if cfg["attn_mask"] not in ATTN_MASKS:
        raise SpecError(f"config {cid}: attn_mask must be one of {list(ATTN_MASKS)}")
    if cfg["key_padding_mask"] not in KPM_KINDS:
        raise SpecError(f"config {cid}: key_padding_mask must be one of {list(KPM_KINDS)}")
    return cfg


def config_problem(cfg: Dict[str, Any]) -> Optional[str]:
    """A config that cannot describe a valid call (recorded as that config's error)."""
    E = cfg["embed_dim"]
    if not cfg["cross"]:
        if cfg["S"] != cfg["L"]:
            return "self-attention (cross=false) needs S == L"
        if (cfg["kdim"] or E) != E or (cfg["vdim"] or E) != E:
            return "self-attention (cross=false) needs kdim and vdim null or equal to embed_dim"
    if cfg["attn_mask"] == "causal2d" and cfg["S"] < 1:
        return "causal2d needs S >= 1"
    return None


def config_seed(cid: str) -> int:
    return int(hashlib.sha256(cid.encode("utf8")).hexdigest()[:8], 16) & 0x7FFFFFFF


def class_name(i: int, cid: str) -> str:
    return f"V{i}_" + re.sub(r"[^A-Za-z0-9_]", "_", cid)


def wrapper_source(configs: List[Dict[str, Any]]) -> str:
    """One nn.Module per config whose forward makes exactly that call, so the scripted code
    reads like the config and every input is a plain tensor (traceable)."""
    lines = [
        '"""Generated by scripts/export_models.py --mha-variants: one wrapper per attention config."""',
        "from typing import Tuple",
        "",
        "import torch",
        "from torch import Tensor, nn",
        "",
        "",
        "class MhaVariantBase(nn.Module):",
        "    def __init__(self, mha: nn.MultiheadAttention):",
        "        super().__init__()",
        "        self.mha = mha",
        "",
    ]
    for i, cfg in enumerate(configs):
        params = ["query: Tensor", "key: Tensor", "value: Tensor"] if cfg["cross"] else ["x: Tensor"]
        qkv = "query, key, value" if cfg["cross"] else "x, x, x"
        if cfg["attn_mask"]:
            params.append("attn_mask: Tensor")
        if cfg["key_padding_mask"]:
            params.append("key_padding_mask: Tensor")
        call = (f"self.mha({qkv}, key_padding_mask={'key_padding_mask' if cfg['key_padding_mask'] else 'None'}, "
                f"need_weights={cfg['need_weights']}, attn_mask={'attn_mask' if cfg['attn_mask'] else 'None'}, "
                f"average_attn_weights={cfg['average_attn_weights']}, is_causal={cfg['is_causal']})")
        ret = "Tuple[Tensor, Tensor]" if cfg["need_weights"] else "Tensor"
        lines += ["", f"class {class_name(i, cfg['id'])}(MhaVariantBase):", f'    """config {cfg["id"]}"""', "",
                  f"    def forward(self, {', '.join(params)}) -> {ret}:"]
        if cfg["need_weights"]:
            lines += [f"        out, weights = {call}", "        assert weights is not None", "        return out, weights"]
        else:
            lines += [f"        out, _ = {call}", "        return out"]
        lines.append("")
    return "\n".join(lines)


def load_wrappers(path: str):
    spec = importlib.util.spec_from_file_location("mha_variants", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mha_variants"] = mod  # TorchScript reads class sources through the module
    spec.loader.exec_module(mod)
    return mod


def make_mask(kind: str, shape: Tuple[int, ...]) -> torch.Tensor:
    """Random mask, ~30% masked, never column 0, so no row is ever fully masked (even when
    attn_mask and key_padding_mask are combined)."""
    masked = torch.rand(shape) < 0.3
    masked[..., 0] = False
    if kind == "bool":
        return masked
    return torch.randn(shape).masked_fill(masked, float("-inf"))


def variant_inputs(cfg: Dict[str, Any]) -> Tuple[Tuple[torch.Tensor, ...], List[str]]:
    E, H, L, S, B = cfg["embed_dim"], cfg["num_heads"], cfg["L"], cfg["S"], cfg["B"]
    kdim, vdim = cfg["kdim"] or E, cfg["vdim"] or E

    def seq(n: int, d: int) -> torch.Tensor:
        if B == 0:
            return torch.randn(n, d)
        return torch.randn(B, n, d) if cfg["batch_first"] else torch.randn(n, B, d)

    if cfg["cross"]:
        tensors, names = [seq(L, E), seq(S, kdim), seq(S, vdim)], ["query", "key", "value"]
    else:
        tensors, names = [seq(L, E)], ["x"]
    am = cfg["attn_mask"]
    if am:
        if am == "causal2d":
            t = torch.triu(torch.full((L, S), float("-inf")), diagonal=1)
        else:
            shape = (L, S) if am.endswith("2d") else ((B * H if B else H), L, S)
            t = make_mask("bool" if am.startswith("bool") else "float", shape)
        tensors.append(t)
        names.append("attn_mask")
    kpm = cfg["key_padding_mask"]
    if kpm:
        tensors.append(make_mask(kpm, (B, S) if B else (S,)))
        names.append("key_padding_mask")
    return tuple(tensors), names


def export_mha_variants(args: argparse.Namespace) -> int:
    t_batch = time.perf_counter()
    try:
        with open(args.mha_variants) as f:
            raw = json.load(f)
        if not isinstance(raw, list):
            raise SpecError("the spec must be a JSON list of configs")
        configs = [normalize_spec(r, i) for i, r in enumerate(raw)]
        ids = [c["id"] for c in configs]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise SpecError(f"duplicate ids: {dup}")
    except (OSError, ValueError, SpecError) as e:
        log(f"bad spec {args.mha_variants}: {e}")
        return 2

    src_path = os.path.join(args.out, "mha_variants.py")
    with open(src_path + ".tmp", "w") as f:
        f.write(wrapper_source(configs))
    os.replace(src_path + ".tmp", src_path)
    mod = load_wrappers(src_path)

    entries = []
    status = 0
    for i, cfg in enumerate(configs):
        cid = cfg["id"]
        final = os.path.join(args.out, cid)
        mpath = os.path.join(final, "manifest.json")
        if os.path.exists(mpath) and not args.force:
            with open(mpath) as f:
                m = json.load(f)
        else:
            if os.path.exists(final):
                shutil.rmtree(final)
            t0 = time.perf_counter()
            seed = config_seed(cid)
            extra = {"kind": "mha_variant", "spec": cfg, "pythonClass": f"mha_variants.{class_name(i, cid)}"}
            problem = config_problem(cfg)
            try:
                if problem:
                    raise SpecError(problem)
                torch.manual_seed(seed)
                mha = nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], dropout=cfg["dropout"],
                                            bias=cfg["bias"], add_bias_kv=cfg["add_bias_kv"],
                                            add_zero_attn=cfg["add_zero_attn"], kdim=cfg["kdim"],
                                            vdim=cfg["vdim"], batch_first=cfg["batch_first"])
                randomize_(mha)
                model = getattr(mod, class_name(i, cid))(mha).eval()
                inputs, names = variant_inputs(cfg)
                out_names = ["out", "attn_weights"] if cfg["need_weights"] else ["out"]
                m = export_fixture(args.out, cid, model, inputs, names, out_names, extra, seed, t0)
            except Exception as e:  # noqa: BLE001 - the config cannot run eagerly: record it
                m = {"name": cid, **extra, "torch": torch.__version__, "seed": seed, "variants": {},
                     "errors": {"eager": error_text(e)}, "exportSeconds": round(time.perf_counter() - t0, 3)}
                tmp = tempfile.mkdtemp(prefix=f".{cid}.tmp-{os.getpid()}-", dir=args.out)
                write_json_atomic(os.path.join(tmp, "manifest.json"), _json_safe(m))
                make_public(tmp)
                publish(tmp, final)
            errs = ", ".join(f"{k}: {summary(v)[:160]}" for k, v in m["errors"].items())
            log(f"{cid}: {m['exportSeconds']:.2f}s, variants {sorted(m['variants'])}" + (f"; errors {errs}" if errs else ""))
        entries.append({"id": cid, "dir": cid, "variants": sorted(m["variants"]),
                        "errors": {k: summary(v) for k, v in m["errors"].items()}})
    index = {"torch": torch.__version__, "count": len(entries),
             "complete": sum(1 for e in entries if len(e["variants"]) == len(VARIANTS)),
             "exportSeconds": round(time.perf_counter() - t_batch, 3), "configs": entries}
    write_json_atomic(os.path.join(args.out, "index.json"), index)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--force", action="store_true", help="re-export even where a manifest exists")
    ap.add_argument("--torchvision", action="store_true",
                    help="vit_b_16 from torchvision (same weights) instead of scripts/vit.py")
    ap.add_argument("--run-variant-only", action="store_true",
                    help="export only the variant each model runs as (runVariant, else traced)")
    ap.add_argument("--mha-variants", metavar="SPEC.json", help="export the attention-variant matrix")
    ap.add_argument("names", nargs="*", help=f"models: {', '.join(MODELS)}")
    args = ap.parse_args(argv)
    if bool(args.names) == bool(args.mha_variants):
        ap.error("give model names or --mha-variants SPEC.json (not both)")
    os.makedirs(args.out, exist_ok=True)
    clean_stale_tmp(args.out)
    torch.set_grad_enabled(True)
    return export_mha_variants(args) if args.mha_variants else export_named(args)


if __name__ == "__main__":
    sys.exit(main())
