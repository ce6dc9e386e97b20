#!/usr/bin/env python3
"""Export torch.export programs (.pt2) of the built-in models, with Python's outputs.

    export_programs.py --out DIR [--force] NAME...
        For each model of export_models.py's MODELS: DIR/NAME/program.pt2 (torch.export.export
        under no_grad in eval mode, saved with torch.export.save), input_<i>.npy (the same seeded
        inputs as the TorchScript fixture), output_<i>.npy (torch.export.load(program).module()
        run on them: the reference a .pt2 reader must match) and manifest.json, written last.

The folder is built under a temporary name and renamed into place (export_models.publish).
    export_programs.py --out DIR --corpus ID...
        The same for models of the real-model corpus (scripts/corpus.py ids such as bert_sdpa,
        gpt2_eager, vit_sdpa), built as corpus.py builds them (transformers on PYTHONPATH); a
        model that fails to export is recorded in DIR/index.json's skips with its reason.
    export_programs.py --out DIR --bad
        DIR/bad/: programs this reader cannot run, all written by PyTorch: cond.pt2 (a torch.cond
        higher-order op), newer.pt2 (a real program whose model.json claims schema version 99),
        checkpoint.pt2 (a torch.save() state dict named .pt2), then manifest.json.

Logs go to stderr. Exit status: 0 ok, 1 an export failed, 2 bad arguments.
"""
import argparse
import os
import shutil
import sys
import tempfile
import math
import time
import traceback

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as em  # noqa: E402


def log(msg: str) -> None:
    print(f"export_programs: {msg}", file=sys.stderr, flush=True)


def build_vit_b_16_dynamic_batch(args):
    """ViT-B/16 exported with a symbolic batch (example batch 2, at most 16), checked at batch 3."""
    model, _, in_names, out_names, extra = em.build_vit_b_16(args)
    torch.manual_seed(em.SEED + 3)
    batch = torch.export.Dim("batch", max=16)
    return model, (torch.randn(2, 3, 224, 224),), in_names, out_names, {
        **extra, "dynamicShapes": {"x": {0: "batch"}}, "_dynamic": {"x": {0: batch}}, "_check": (torch.randn(3, 3, 224, 224),)}


class NoGradRotary(torch.nn.Module):
    """Rotary angles computed under @torch.no_grad(), as transformers' rotary embeddings are."""
    def __init__(self, dim):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    @torch.no_grad()
    def forward(self, x):
        t = torch.arange(x.shape[1], dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


class RotaryAttention(torch.nn.Module):
    """q and k rotated by angles from a no-grad region, then SDPA-free attention (4 heads of 12)."""
    def __init__(self, d=48, h=4):
        super().__init__()
        self.h = h
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.rotary = NoGradRotary(d // h)

    def forward(self, x):
        b, l, d = x.shape
        q, k, v = (t.view(b, l, self.h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        cos, sin = self.rotary(x)
        rot = lambda t: torch.cat((-t[..., t.shape[-1] // 2:], t[..., : t.shape[-1] // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        a = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
        return (a @ v).transpose(1, 2).reshape(b, l, d)


def build_rotary_grad_region(args):
    """A no-grad region exported with gradients on (torch.export's default): a
    wrap_with_set_grad_enabled higher-order op around the rotary angles."""
    torch.manual_seed(em.SEED + 4)
    model = RotaryAttention()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model, (torch.randn(2, 16, 48),), ["x"], ["out"], {"_grad": True}


# Programs with no TorchScript twin: symbolic sizes, a grad-mode region.
PROGRAMS = {"vit_b_16_dynamic_batch": build_vit_b_16_dynamic_batch, "rotary_grad_region": build_rotary_grad_region}


def export_program(out: str, name: str, model, inputs, in_names, out_names, extra, t0: float) -> dict:
    model.eval()
    dynamic = extra.pop("_dynamic", None)
    check = extra.pop("_check", None)
    grad = extra.pop("_grad", False)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=out)
    try:
        with torch.set_grad_enabled(grad):
            ep = torch.export.export(model, tuple(inputs), dynamic_shapes=dynamic)
        with torch.no_grad():
            inputs = check or inputs  # a symbolic size is checked at a size other than the example's
            eager = em.flatten_outputs(model(*inputs))
        pt2 = os.path.join(tmp, "program.pt2")
        torch.export.save(ep, pt2)
        loaded = torch.export.load(pt2).module()
        with torch.no_grad():
            refs = [r.detach().clone() for r in em.flatten_outputs(loaded(*inputs))]
        in_files = [{"name": in_names[i] if i < len(in_names) else f"input_{i}",
                     **em.write_npy(os.path.join(tmp, f"input_{i}.npy"), t)} for i, t in enumerate(inputs)]
        out_files = [{"name": out_names[i] if i < len(out_names) else f"output_{i}",
                      **em.write_npy(os.path.join(tmp, f"output_{i}.npy"), t)} for i, t in enumerate(refs)]
        kinds: dict = {}
        for n in ep.graph.nodes:
            if n.op == "call_function":
                kinds[str(n.target)] = kinds.get(str(n.target), 0) + 1
        manifest = {
            "name": name, "kind": "program", **extra, "torch": torch.__version__, "seed": em.SEED,
            "variants": {"program": "program.pt2"}, "inputs": in_files, "outputs": out_files,
            "parameters": em.parameter_stats(model),
            "exportSeconds": round(time.perf_counter() - t0, 3),
            "errors": {}, "warnings": {},
            "maxAbsDiff": {"program": em.max_abs_diff(refs, eager)},
            "graphs": {"program": {"nodes": len(ep.graph.nodes), "topLevelNodes": len(ep.graph.nodes), "kinds": kinds}},
            "timings": {},
        }
        em.write_json_atomic(os.path.join(tmp, "manifest.json"), em._json_safe(manifest))
        em.make_public(tmp)
        em.publish(tmp, os.path.join(out, name))
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class CondModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: self.lin(t), lambda t: t * 2.0, (x,))


def export_bad(out: str) -> int:
    import zipfile
    final = os.path.join(out, "bad")
    if os.path.exists(os.path.join(final, "manifest.json")):
        return 0
    tmp = tempfile.mkdtemp(prefix=f".bad.tmp-{os.getpid()}-", dir=out)
    torch.manual_seed(em.SEED)
    x = (torch.randn(2, 8),)
    model = CondModel().eval()
    torch.export.save(torch.export.export(model, x), os.path.join(tmp, "cond.pt2"))
    plain = torch.export.export(model.lin, x)
    good = os.path.join(tmp, "plain.pt2")
    torch.export.save(plain, good)
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(os.path.join(tmp, "newer.pt2"), "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("models/model.json"):
                data = data.replace(b'"schema_version": {"major": 8', b'"schema_version": {"major": 99')
            zout.writestr(info, data)
    torch.save(model.state_dict(), os.path.join(tmp, "checkpoint.pt2"))
    em.write_json_atomic(os.path.join(tmp, "manifest.json"), {"files": ["cond.pt2", "newer.pt2", "checkpoint.pt2", "plain.pt2"]})
    em.make_public(tmp)
    em.publish(tmp, final)
    return 0


def export_corpus(out: str, ids) -> int:
    import corpus
    specs = {corpus.model_id(sp, a): (sp, a) for sp in corpus.SPECS + corpus.STANDARD for a in sp.attn}
    models, skips = [], []
    for mid in ids:
        if mid not in specs:
            log(f"unknown corpus model {mid}; known: {', '.join(specs)}")
            return 2
        spec, attn = specs[mid]
        t0 = time.perf_counter()
        extra = {"family": spec.family, "category": spec.category, "library": "transformers",
                 "class": f"transformers.{spec.model}", "attnImplementation": attn, "size": spec.size, "corpus": True}
        if os.path.exists(os.path.join(out, mid, "manifest.json")):
            models.append({"id": mid, "dir": mid})
            continue
        try:
            model, inputs, names = corpus.build_transformers(spec, attn)
            export_program(out, mid, model, inputs, names, ["out"], extra, t0)
            models.append({"id": mid, "dir": mid})
            log(f"{mid}: done in {time.perf_counter() - t0:.1f}s")
        except Exception:  # noqa: BLE001
            log(f"{mid}: FAILED\n{traceback.format_exc()}")
            skips.append({"id": mid, "reason": em.summary(traceback.format_exc().splitlines()[-1])})
    em.write_json_atomic(os.path.join(out, "index.json"), {"models": models, "skips": skips})
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--torchvision", action="store_true")
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--corpus", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    if args.bad:
        os.makedirs(args.out, exist_ok=True)
        return export_bad(args.out)
    if args.corpus:
        os.makedirs(args.out, exist_ok=True)
        return export_corpus(args.out, args.names)
    unknown = [n for n in args.names if n not in em.MODELS and n not in PROGRAMS]
    if unknown:
        log(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(em.MODELS)}")
        return 2
    os.makedirs(args.out, exist_ok=True)

    def one(name: str, t0: float):
        model, inputs, in_names, out_names, extra = (PROGRAMS.get(name) or em.MODELS[name])(args)
        return export_program(args.out, name, model, inputs, in_names, out_names, extra, t0)

    return em.export_each(args.names, args.out, args.force, "a program ", one,
                          lambda m: f"done in {m['exportSeconds']:.1f}s (loaded vs eager {m['maxAbsDiff']['program']:.3g})")


if __name__ == "__main__":
    sys.exit(main())
