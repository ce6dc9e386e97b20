#!/usr/bin/env python3
"""Export the real-model corpus: model classes from the model libraries (Hugging Face transformers;
timm and torchvision where they import beside this torch), built from small configs with random
weights (never a hub download), traced and scripted to TorchScript.

    corpus.py --out DIR [--only ID,...] [--no-standard] [--vision-path PATH]
    corpus.py --out DIR --bench [--only ID,...]

--bench exports the bench set instead (BENCH: BERT-base, GPT-2 small, ResNet-18 and ResNet-50 at
standard sizes, eager attention, traced only), for `bench --corpus --set bench`.

Each model goes to DIR/<id>/ in the format of scripts/export_models.py (its export_fixture writes
it: traced.pt, scripted.pt where the class scripts, input_<i>.npy, output_<i>.npy, manifest.json,
published atomically); DIR/index.json, written last, lists every model and every skip with its
reason. Run with PYTHONPATH holding the torch of scripts/libtorch.js and the libraries that
scripts/setup-corpus.js installs; --vision-path is torchvision's own folder, put on the path
only in the subprocess that tries timm and torchvision.

Skips are of two kinds: "unavailable" (a library does not import here, a class has no sdpa
attention) and "failed" (a model could not be built or run eagerly: a bug to fix, which the
corpus test reports). Logs go to stderr. Exit status: 0 ok (skips included), 2 bad arguments.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as em  # noqa: E402

SEED = em.SEED
# export_fixture's variants, less traced_grad: a grad-mode trace differs only where
# nn.MultiheadAttention takes its fast path, which no transformers class uses. Its trace runs
# under no_grad; the wrappers return one tensor, so trace's strict=False (for dict or list
# outputs) is not needed.
em.VARIANTS = ("traced", "scripted")

# Small configs: every model runs in well under a second here.
B, L = 2, 16
HIDDEN, HEADS, LAYERS, FFN, VOCAB = 64, 4, 2, 128, 512


def log(msg: str) -> None:
    print(f"corpus: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Wrappers: forward takes plain tensors and returns one tensor, so the class traces and scripts
# as itself (scripting compiles the library's own forward; a wrapper with *args would not script).

class TextModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Seq2SeqModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, decoder_input_ids: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          decoder_input_ids=decoder_input_ids).last_hidden_state


class VisionModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model(pixel_values=pixel_values).last_hidden_state


class ImageModel(nn.Module):
    """timm and torchvision classifiers: forward(x) already returns the logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model(image)


# ---------------------------------------------------------------------------------------------
# Inputs

def token_ids(batch: int, length: int, vocab: int) -> Tensor:
    # Above the few special ids (pad is 0 or 1 in these configs), below the vocabulary size.
    return torch.randint(3, vocab, (batch, length), dtype=torch.int64)


def padding_mask(batch: int, length: int) -> Tensor:
    """Row 0 attends everywhere; every later row has its last length//4 * row positions padded
    (zeros), so the masks really pad and differ between rows."""
    m = torch.ones(batch, length, dtype=torch.int64)
    for r in range(1, batch):
        m[r, length - min(length - 1, (length // 4) * r):] = 0
    return m


def text_inputs(vocab: int, batch: int = B, length: int = L):
    return (token_ids(batch, length, vocab), padding_mask(batch, length)), ["input_ids", "attention_mask"]


def seq2seq_inputs(vocab: int, batch: int = B, length: int = L):
    return ((token_ids(batch, length, vocab), padding_mask(batch, length), token_ids(batch, length // 2, vocab)),
            ["input_ids", "attention_mask", "decoder_input_ids"])


def image_inputs(size: int, batch: int = B, channels: int = 3):
    return (torch.randn(batch, channels, size, size),), ["pixel_values"]


# ---------------------------------------------------------------------------------------------
# The transformers corpus: (id, family, category, model class, config class, config kwargs,
# wrapper, inputs, attention implementations)

def text_cfg(**kw) -> Dict[str, Any]:
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=FFN, max_position_embeddings=64)
    base.update(kw)
    return base


def decoder_cfg(**kw) -> Dict[str, Any]:
    return text_cfg(use_cache=False, **kw)


def vit_cfg(**kw) -> Dict[str, Any]:
    base = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=FFN)
    base.update(kw)
    return base


BOTH = ("eager", "sdpa")


class Spec:
    def __init__(self, id: str, family: str, category: str, model: str, config: str, cfg: Dict[str, Any],
                 wrapper: Callable[[nn.Module], nn.Module], inputs: Callable[[], Tuple[Tuple[Tensor, ...], List[str]]],
                 attn: Tuple[Optional[str], ...] = BOTH, size: str = "small", note: str = "", suffix: str = ""):
        self.id, self.family, self.category, self.model, self.config = id, family, category, model, config
        self.cfg, self.wrapper, self.inputs, self.attn, self.size, self.note = cfg, wrapper, inputs, attn, size, note
        self.suffix = suffix  # after the attention in the model id, e.g. "_512" in bert_base_eager_512


SPECS: List[Spec] = [
    # encoder-only text, with padding attention masks
    Spec("bert", "bert", "text-encoder", "BertModel", "BertConfig", text_cfg(), TextModel, lambda: text_inputs(VOCAB)),
    Spec("roberta", "roberta", "text-encoder", "RobertaModel", "RobertaConfig",
         text_cfg(max_position_embeddings=L + 2 + 8), TextModel, lambda: text_inputs(VOCAB)),
    Spec("distilbert", "distilbert", "text-encoder", "DistilBertModel", "DistilBertConfig",
         dict(vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN, max_position_embeddings=64),
         TextModel, lambda: text_inputs(VOCAB)),
    Spec("albert", "albert", "text-encoder", "AlbertModel", "AlbertConfig", text_cfg(embedding_size=32),
         TextModel, lambda: text_inputs(VOCAB)),
    Spec("electra", "electra", "text-encoder", "ElectraModel", "ElectraConfig", text_cfg(embedding_size=32),
         TextModel, lambda: text_inputs(VOCAB)),
    # decoder-only: learned positions (GPT-2), rotary with grouped-query attention (Llama, Mistral,
    # Qwen2), rotary on part of the head with parallel attention and MLP (GPT-NeoX)
    Spec("gpt2", "gpt2", "decoder", "GPT2Model", "GPT2Config",
         dict(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=64, use_cache=False),
         TextModel, lambda: text_inputs(VOCAB)),
    Spec("llama_gqa", "llama", "decoder", "LlamaModel", "LlamaConfig", decoder_cfg(num_key_value_heads=2),
         TextModel, lambda: text_inputs(VOCAB)),
    Spec("mistral_gqa", "mistral", "decoder", "MistralModel", "MistralConfig",
         decoder_cfg(num_key_value_heads=2, sliding_window=None), TextModel, lambda: text_inputs(VOCAB)),
    Spec("qwen2_gqa", "qwen2", "decoder", "Qwen2Model", "Qwen2Config", decoder_cfg(num_key_value_heads=1),
         TextModel, lambda: text_inputs(VOCAB)),
    Spec("gpt_neox", "gpt_neox", "decoder", "GPTNeoXModel", "GPTNeoXConfig", decoder_cfg(rotary_pct=0.5),
         TextModel, lambda: text_inputs(VOCAB)),
    # encoder-decoder: relative position bias (T5), learned positions (BART)
    Spec("t5", "t5", "encoder-decoder", "T5Model", "T5Config",
         dict(vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS, num_heads=HEADS,
              relative_attention_num_buckets=8, relative_attention_max_distance=32, use_cache=False),
         Seq2SeqModel, lambda: seq2seq_inputs(VOCAB)),
    Spec("bart", "bart", "encoder-decoder", "BartModel", "BartConfig",
         dict(vocab_size=VOCAB, d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
              decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_position_embeddings=64,
              use_cache=False),
         Seq2SeqModel, lambda: seq2seq_inputs(VOCAB)),
    # vision transformers; Swin's second block of each stage shifts its windows, so the
    # shifted-window mask is there (16x16 patches, windows of 4, shift 2)
    Spec("vit", "vit", "vision-transformer", "ViTModel", "ViTConfig", vit_cfg(), VisionModel, lambda: image_inputs(32)),
    Spec("deit", "deit", "vision-transformer", "DeiTModel", "DeiTConfig", vit_cfg(), VisionModel, lambda: image_inputs(32)),
    Spec("beit", "beit", "vision-transformer", "BeitModel", "BeitConfig",
         vit_cfg(use_relative_position_bias=True, use_mean_pooling=False), VisionModel, lambda: image_inputs(32)),
    Spec("swin", "swin", "vision-transformer", "SwinModel", "SwinConfig",
         dict(image_size=32, patch_size=2, num_channels=3, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4,
              mlp_ratio=2.0),
         VisionModel, lambda: image_inputs(32)),
    Spec("clip_vision", "clip", "vision-transformer", "CLIPVisionModel", "CLIPVisionConfig", vit_cfg(),
         VisionModel, lambda: image_inputs(32)),
    # Swin V2: cosine attention (normalized q and k, a learned scale per head, exp(clamp(logit_scale))),
    # a 16*sigmoid continuous position bias; head dim 12
    Spec("swinv2", "swinv2", "vision-transformer", "Swinv2Model", "Swinv2Config",
         dict(image_size=32, patch_size=2, num_channels=3, embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=4,
              mlp_ratio=2.0),
         VisionModel, lambda: image_inputs(32), attn=(None,)),
    # CvT: convolutional q/k/v projections, scores and context written with einsum
    # ('bhlk,bhtk->bhlt', 'bhlt,bhtv->bhlv'); eager attention only; head dim 12. depth[i] > i: the
    # stage indexes its drop-path rates by the stage (transformers 5.18's CvtStage)
    Spec("cvt", "cvt", "vision-transformer", "CvtModel", "CvtConfig",
         dict(num_channels=3, patch_sizes=[7, 3], patch_stride=[4, 2], patch_padding=[2, 1], embed_dim=[24, 48],
              num_heads=[2, 4], depth=[1, 2], mlp_ratio=[2.0, 2.0], attention_drop_rate=[0.0, 0.0], drop_rate=[0.0, 0.0],
              drop_path_rate=[0.0, 0.0], qkv_bias=[True, True], cls_token=[False, True],
              qkv_projection_method=["dw_bn", "dw_bn"], kernel_qkv=[3, 3], padding_kv=[1, 1], stride_kv=[2, 2],
              padding_q=[1, 1], stride_q=[1, 1]),
         VisionModel, lambda: image_inputs(32), attn=(None,)),
    # convolutional vision models (no attention)
    Spec("resnet", "resnet", "vision-conv", "ResNetModel", "ResNetConfig",
         dict(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"),
         VisionModel, lambda: image_inputs(32), attn=(None,)),
    Spec("convnext", "convnext", "vision-conv", "ConvNextModel", "ConvNextConfig",
         dict(num_channels=3, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], patch_size=2), VisionModel,
         lambda: image_inputs(32), attn=(None,)),
]

# One standard-size model per main family (text encoder, decoder, vision transformer).
STANDARD: List[Spec] = [
    Spec("bert_base", "bert", "text-encoder", "BertModel", "BertConfig", dict(),
         TextModel, lambda: text_inputs(30522, length=128), attn=("sdpa",), size="standard",
         note="bert-base-uncased's config (12 layers, 768, 12 heads), batch 2, L=128"),
    Spec("gpt2_small", "gpt2", "decoder", "GPT2Model", "GPT2Config", dict(use_cache=False),
         TextModel, lambda: text_inputs(50257, length=128), attn=("sdpa",), size="standard",
         note="GPT-2 small's config (12 layers, 768, 12 heads), batch 2, L=128"),
    Spec("vit_base", "vit", "vision-transformer", "ViTModel", "ViTConfig", dict(),
         VisionModel, lambda: image_inputs(224, batch=1), attn=("sdpa",), size="standard",
         note="ViT-B/16's config (12 layers, 768, 12 heads), batch 1 at 224"),
    Spec("resnet18", "resnet", "vision-conv", "ResNetModel", "ResNetConfig",
         dict(num_channels=3, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic"),
         VisionModel, lambda: image_inputs(224, batch=2), attn=(None,), size="standard",
         note="ResNet-18's config (basic blocks 2-2-2-2), batch 2 at 224"),
]


# The bench set (corpus.py --bench, exported only when bench --corpus --set bench asks): the
# standard-size models of issue #15's bar, eager attention at the lengths where fusing counts,
# traced only.
BENCH: List[Spec] = [
    Spec("bert_base", "bert", "text-encoder", "BertModel", "BertConfig", dict(),
         TextModel, lambda: text_inputs(30522, batch=2, length=128), attn=("eager",), size="standard", suffix="_128",
         note="bert-base-uncased's config, eager attention, batch 2, L=128"),
    Spec("bert_base", "bert", "text-encoder", "BertModel", "BertConfig", dict(),
         TextModel, lambda: text_inputs(30522, batch=1, length=512), attn=("eager",), size="standard", suffix="_512",
         note="bert-base-uncased's config, eager attention, batch 1, L=512"),
    Spec("gpt2_small", "gpt2", "decoder", "GPT2Model", "GPT2Config", dict(use_cache=False),
         TextModel, lambda: text_inputs(50257, batch=1, length=512), attn=("eager",), size="standard", suffix="_512",
         note="GPT-2 small's config, eager attention, batch 1, L=512"),
    Spec("gpt2_small", "gpt2", "decoder", "GPT2Model", "GPT2Config", dict(use_cache=False),
         TextModel, lambda: text_inputs(50257, batch=2, length=128), attn=("eager",), size="standard", suffix="_128",
         note="GPT-2 small's config, eager attention, batch 2, L=128 (issue #28's ONNX Runtime comparison)"),
    next(s for s in STANDARD if s.id == "resnet18"),
    Spec("resnet50", "resnet", "vision-conv", "ResNetModel", "ResNetConfig",
         dict(num_channels=3, embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
              layer_type="bottleneck"),
         VisionModel, lambda: image_inputs(224, batch=1), attn=(None,), size="standard",
         note="ResNet-50's config (bottleneck blocks 3-4-6-3), batch 1 at 224"),
]


def model_id(spec: Spec, attn: Optional[str]) -> str:
    return spec.id if attn is None else f"{spec.id}_{attn}{spec.suffix}"


def find_spec(mid: str) -> Tuple[Spec, Optional[str]]:
    """The spec and attention implementation a transformers model id was exported from
    (scripts/anchors.py rebuilds corpus fixtures with it)."""
    for spec in SPECS + STANDARD + BENCH:
        for attn in spec.attn:
            if model_id(spec, attn) == mid:
                return spec, attn
    raise KeyError(f"{mid} is no transformers model of corpus.py (SPECS, STANDARD, BENCH)")


def build_transformers(spec: Spec, attn: Optional[str]):
    import transformers
    config_cls = getattr(transformers, spec.config)
    model_cls = getattr(transformers, spec.model)
    kw = dict(spec.cfg)
    if attn is not None:
        kw["attn_implementation"] = attn
    config = config_cls(**kw)
    torch.manual_seed(SEED)
    model = model_cls(config)
    got = getattr(model.config, "_attn_implementation", None)
    if attn is not None and got != attn:
        raise RuntimeError(f"asked for attn_implementation={attn!r}, the model has {got!r}")
    em.randomize_(model)
    model.eval()
    torch.manual_seed(SEED + 1)
    inputs, names = spec.inputs()
    return spec.wrapper(model).eval(), inputs, names


# ---------------------------------------------------------------------------------------------
# timm and torchvision: tried in a subprocess (a torchvision that fails beside this torch leaves
# operator registrations half done, which would break transformers in this process too).

VISION_PROBE = r"""
import json, sys, traceback
res = {}
for lib in ("torchvision", "timm"):
    try:
        mod = __import__(lib)
        res[lib] = {"ok": True, "version": mod.__version__}
    except Exception as e:
        # The last frame inside torchvision or timm: the line of theirs that failed.
        ours = [f for f in traceback.extract_tb(e.__traceback__) if "/torchvision/" in f.filename or "/timm/" in f.filename]
        where = ""
        if ours:
            f = ours[-1]
            name = f.filename[f.filename.rfind("/timm/" if "/timm/" in f.filename else "/torchvision/") + 1:]
            where = f" (in {name}:{f.lineno})"
        res[lib] = {"ok": False, "reason": f"import {lib} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"}
print(json.dumps(res))
"""


def probe_vision(vision_path: Optional[str]) -> Dict[str, Dict[str, Any]]:
    env = dict(os.environ)
    if vision_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), vision_path] if p)
    r = subprocess.run([sys.executable, "-c", VISION_PROBE], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        reason = f"the import probe failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}"
        return {lib: {"ok": False, "reason": reason} for lib in ("torchvision", "timm")}
    return json.loads(r.stdout.strip().splitlines()[-1])


# Exported traced only, with why the scripted form is not in the corpus.
TRACED_ONLY = {
    # Scripted, shifted_window_attention copies shift_size and zeroes it where the window covers
    # the padded map (a list mutated under a size test), then adds the mask under `if
    # sum(shift_size) > 0`: the scores reach the softmax through a prim::If that folding does not
    # decide (list mutation is not folded), so no core is read there.
    "torchvision_swin": "scripted: the mask is added under a run-time branch over a mutated list (not folded)",
}


def vision_builders() -> List[Tuple[str, str, str, str, Callable[[], nn.Module], int]]:
    """(id, library, family, class, builder, image size) for when timm and torchvision import."""
    return [
        ("timm_vit_tiny", "timm", "vit", "timm VisionTransformer",
         lambda: __import__("timm").create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                                                 depth=2, num_classes=10), 32),
        # XCiT: cross-covariance attention (over channels, q and k transposed, a learned
        # temperature per head) and class attention
        ("timm_xcit", "timm", "xcit", "timm Xcit",
         lambda: __import__("timm").create_model("xcit_nano_12_p16_224", pretrained=False, depth=2, img_size=64,
                                                 num_classes=10), 64),
        # MViTv2: decomposed relative positions written into the scores' slice (copy_ of the slice
        # viewed over the grids plus two einsum terms), a class token, pooled q/k/v, residual pooling
        ("timm_mvitv2", "timm", "mvitv2", "timm MultiScaleVit",
         lambda: __import__("timm.models.mvitv2", fromlist=["MultiScaleVit"]).MultiScaleVit(
             __import__("timm.models.mvitv2", fromlist=["MultiScaleVitCfg"]).MultiScaleVitCfg(
                 depths=(1, 2), embed_dim=24, num_heads=1, use_cls_token=True, stride_q=((1, 1), (2, 2))),
             img_size=64, num_classes=10), 64),
        ("timm_convnext", "timm", "convnext", "timm ConvNeXt",
         lambda: __import__("timm").create_model("convnext_atto", pretrained=False, num_classes=10), 64),
        ("torchvision_resnet18", "torchvision", "resnet", "torchvision ResNet",
         lambda: __import__("torchvision.models", fromlist=["resnet18"]).resnet18(weights=None, num_classes=10), 64),
        # Swin: shifted windows (torch.roll, a mask built with new_zeros and slice fills), a relative
        # position bias table, 4x4 windows of a 16x16 grid
        ("torchvision_swin", "torchvision", "swin", "torchvision SwinTransformer",
         lambda: __import__("torchvision.models.swin_transformer", fromlist=["SwinTransformer"]).SwinTransformer(
             patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], num_classes=10), 64),
        ("torchvision_vit_b_16", "torchvision", "vit", "torchvision VisionTransformer",
         lambda: __import__("torchvision.models", fromlist=["VisionTransformer"]).VisionTransformer(
             image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10), 32),
    ]


# ---------------------------------------------------------------------------------------------

def export_one(out: str, mid: str, build: Callable[[], Tuple[nn.Module, Tuple[Tensor, ...], List[str]]],
               extra: Dict[str, Any], traced_only: bool = False) -> Dict[str, Any]:
    manifest = os.path.join(out, mid, "manifest.json")
    if os.path.exists(manifest):  # published by an earlier run that died before the index
        with open(manifest) as f:
            return json.load(f)
    t0 = time.perf_counter()
    model, inputs, names = build()
    m = em.export_fixture(out, mid, model, inputs, names, ["out"], {"kind": "model", "corpus": True, **extra}, SEED, t0,
                          only_run_variant=traced_only)
    errs = "; ".join(f"{k}: {em.summary(v)[:160]}" for k, v in m["errors"].items())
    log(f"{mid}: {m['exportSeconds']:.1f}s, variants {sorted(m['variants'])}" + (f"; errors: {errs}" if errs else ""))
    return m


def entry(m: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "id": m["name"], **extra, "dir": m["name"], "variants": sorted(m["variants"]),
        "inputs": [{k: i[k] for k in ("name", "shape", "dtype")} for i in m["inputs"]],
        "errors": {k: em.summary(v) for k, v in m["errors"].items()},
        "exportSeconds": m["exportSeconds"],
    }


def export_vision(args: argparse.Namespace, only: Optional[set], versions: Dict[str, str],
                  models: List[Dict[str, Any]], skips: List[Dict[str, Any]]) -> None:
    """timm's and torchvision's models, where they import here (into models, skips, versions)."""
    probe = probe_vision(args.vision_path)
    for lib, p in sorted(probe.items()):
        if p["ok"]:
            versions[lib] = p["version"]
    builders = vision_builders()
    for lib in ("timm", "torchvision"):
        if not probe[lib]["ok"]:
            ids = [b[0] for b in builders if b[1] == lib]
            skips.append({"library": lib, "ids": ids, "kind": "unavailable", "reason": probe[lib]["reason"]})
            log(f"{lib}: skipped ({', '.join(ids)}): {probe[lib]['reason']}")
    if any(p["ok"] for p in probe.values()):
        # They import here: export their models in this process, with torchvision on the path.
        if args.vision_path:
            sys.path.append(args.vision_path)
        for mid, lib, family, cls, make, size in builders:
            if not probe[lib]["ok"] or (only and mid not in only):
                continue
            extra = {"family": family, "category": "vision-transformer" if family == "vit" else "vision-conv",
                     "library": lib, "libraryVersion": versions[lib], "class": cls, "attnImplementation": None,
                     "size": "small", "impl": f"{lib} {versions[lib]} {cls}"}

            def build(make=make, size=size):
                torch.manual_seed(SEED)
                model = make()
                em.randomize_(model)
                torch.manual_seed(SEED + 1)
                return ImageModel(model).eval(), (torch.randn(B, 3, size, size),), ["image"]
            if mid in TRACED_ONLY:
                extra["note"] = TRACED_ONLY[mid]
            try:
                models.append(entry(export_one(args.out, mid, build, extra, traced_only=mid in TRACED_ONLY), extra))
            except Exception:  # noqa: BLE001
                log(f"{mid}: FAILED\n{traceback.format_exc()}")
                skips.append({"id": mid, "library": lib, "class": cls, "kind": "failed",
                              "reason": f"could not build or run it eagerly: {em.summary(traceback.format_exc().splitlines()[-1])}"})


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="comma-separated ids (spec ids or model ids) to export")
    ap.add_argument("--no-standard", action="store_true", help="leave out the standard-size models")
    ap.add_argument("--vision-path", help="folder holding torchvision (tried only in a subprocess)")
    ap.add_argument("--bench", action="store_true", help="export the bench set (BENCH, traced only) instead")
    args = ap.parse_args(argv)
    if args.bench:
        em.VARIANTS = ("traced",)  # the bench runs traced models; scripting them would only cost time
    os.makedirs(args.out, exist_ok=True)
    em.clean_stale_tmp(args.out)
    t_all = time.perf_counter()
    only = set(args.only.split(",")) if args.only else None

    import transformers
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    models: List[Dict[str, Any]] = []
    skips: List[Dict[str, Any]] = []

    specs = BENCH if args.bench else SPECS + ([] if args.no_standard else STANDARD)
    for spec in specs:
        model_cls = getattr(transformers, spec.model)
        for attn in spec.attn:
            mid = model_id(spec, attn)
            if only and mid not in only and spec.id not in only:
                continue
            extra = {"family": spec.family, "category": spec.category, "library": "transformers",
                     "libraryVersion": transformers.__version__, "class": f"transformers.{spec.model}",
                     "config": {"class": f"transformers.{spec.config}", **spec.cfg}, "attnImplementation": attn,
                     "size": spec.size, "impl": f"transformers {transformers.__version__} {spec.model}"}
            if spec.note:
                extra["note"] = spec.note
            vocab = getattr(getattr(transformers, spec.config)(**spec.cfg), "vocab_size", None)
            if vocab is not None and spec.category != "vision-transformer":
                extra["vocabSize"] = vocab  # token ids of the inputs lie in [0, vocabSize)
            if attn == "sdpa" and not getattr(model_cls, "_supports_sdpa", False):
                skips.append({"id": mid, "library": "transformers", "class": spec.model, "kind": "unavailable",
                              "reason": f"{spec.model} has no sdpa attention (_supports_sdpa is False)"})
                continue
            try:
                m = export_one(args.out, mid, lambda: build_transformers(spec, attn), extra)
            except Exception:  # noqa: BLE001 - the model could not be built or run eagerly
                log(f"{mid}: FAILED\n{traceback.format_exc()}")
                skips.append({"id": mid, "library": "transformers", "class": spec.model, "kind": "failed",
                              "reason": f"could not build or run it eagerly: {em.summary(traceback.format_exc().splitlines()[-1])}"})
                continue
            models.append(entry(m, extra))

    if not args.bench:  # the bench set is transformers classes only
        export_vision(args, only, versions, models, skips)

    index = {
        "format": "torchgraph.corpus/1", "versions": versions, "seed": SEED, "variants": list(em.VARIANTS),
        "count": len(models), "families": sorted({m["family"] for m in models}),
        "exportSeconds": round(time.perf_counter() - t_all, 3), "models": models, "skips": skips,
    }
    em.write_json_atomic(os.path.join(args.out, "index.json"), em._json_safe(index))
    log(f"{len(models)} models in {len(index['families'])} families, {len(skips)} skips, {index['exportSeconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
