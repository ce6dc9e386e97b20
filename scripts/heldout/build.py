#!/usr/bin/env python3
"""Held-out model batch for torchgraph validate (issue: attention, round 3; run by hand, not by CI): builds tiny random-weight models from
transformers / timm / torchvision (configs in code, no downloads), exports each as
TorchScript (torch.jit.trace) to models/<id>.pt and as torch.export program to models/<id>.pt2,
saves the example inputs as models/<id>.in<i>.npy and a manifest models/<id>.json.

    build.py [--only id1,id2] [--no-pt2]        (HELDOUT_L=128 for the _L128 variants)
    scripts/heldout/run.sh [id ...]; python3 scripts/heldout/summarize.py

Python: the pinned torch plus the corpus libraries, e.g. PYTHONPATH=.torchgraph/torch/2.13.0-cpu:
.torchgraph/corpus-python/lib:.torchgraph/corpus-python/torchvision (npm test installs them).
Families in none of the tests; on 2026-12-06 all 65 variants (42 classes, at L=16 and L=128)
passed validate as .pt and as .pt2 (exported with gradients on), 196 of 202 attention cores
lowered; the 6 refused are Gemma 2's tanh soft-capping and CaiT's talking heads.
"""
import argparse
import json
import os
import sys
import time
import traceback

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Outside the sources: models and logs go under the checkout's cache (git-ignored).
HERE = os.environ.get("HELDOUT_DIR", os.path.join(ROOT, ".torchgraph", "heldout"))
OUT = os.path.join(HERE, "models")
SEED = 1234
B, L = 2, int(os.environ.get("HELDOUT_L", "16"))
SUFFIX = "" if L == 16 else f"_L{L}"  # HELDOUT_L=128: longer sequences (ids get a suffix)
MAXPOS = max(64, 2 * L)
HID, HEADS, LAYERS, FFN, VOCAB = 64, 4, 2, 128, 512


def log(m):
    print(f"build: {m}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ randomization
def randomize_(model: nn.Module) -> None:
    """Every bias ~N(0,.1), norm weights 1+N(0,.1), BN running stats random, zero params ~N(0,.02)."""
    with torch.no_grad():
        done = set()
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and getattr(m, "weight", None) is not None:
                m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight)); done.add(id(m.weight))
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn_like(m.bias)); done.add(id(m.bias))
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(1.0 + 0.2 * torch.rand_like(m.running_var))
                if m.weight is not None:
                    m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight)); done.add(id(m.weight))
        for name, p in model.named_parameters():
            if id(p) in done:
                continue
            last = name.rsplit(".", 1)[-1]
            if "bias" in last:
                p.copy_(0.1 * torch.randn_like(p))
            elif not bool(p.any()):
                p.copy_(0.02 * torch.randn_like(p))
            else:  # every parameter gets some noise
                p.add_(0.01 * torch.randn_like(p))


# ------------------------------------------------------------------ wrappers
class Text(nn.Module):
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]


class TextIdsOnly(nn.Module):
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, input_ids: Tensor) -> Tensor:
        return self.model(input_ids=input_ids)[0]


class Seq2Seq(nn.Module):
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, input_ids: Tensor, attention_mask: Tensor, decoder_input_ids: Tensor) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)[0]


class Pixel(nn.Module):
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model(pixel_values=pixel_values)[0]


class PixelNoise(nn.Module):  # ViTMAE: the random masking noise is an input
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, pixel_values: Tensor, noise: Tensor) -> Tensor:
        return self.model(pixel_values=pixel_values, noise=noise)[0]


class Audio(nn.Module):
    def __init__(self, m, kw): super().__init__(); self.model = m; self.kw = kw
    def forward(self, x: Tensor) -> Tensor:
        return self.model(**{self.kw: x})[0]


class Plain(nn.Module):
    def __init__(self, m): super().__init__(); self.model = m
    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out if isinstance(out, Tensor) else out[0]


# ------------------------------------------------------------------ inputs
def ids(b=B, l=L, v=VOCAB):
    return torch.randint(3, v, (b, l), dtype=torch.int64)


def pad_mask(b=B, l=L):
    m = torch.ones(b, l, dtype=torch.int64)
    for r in range(1, b):
        m[r, l - min(l - 1, (l // 4) * r):] = 0
    return m


def text_in():
    return (ids(), pad_mask()), ["input_ids", "attention_mask"]


def ids_in():
    return (ids(),), ["input_ids"]


def s2s_in():
    return (ids(), pad_mask(), ids(l=L // 2)), ["input_ids", "attention_mask", "decoder_input_ids"]


def img_in(size, b=B, c=3):
    return lambda: ((torch.randn(b, c, size, size),), ["pixel_values"])


# ------------------------------------------------------------------ specs
def tcfg(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=HID, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=FFN, max_position_embeddings=MAXPOS)
    base.update(kw)
    return base


def dcfg(**kw):
    return tcfg(use_cache=False, **kw)


def vcfg(**kw):
    base = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=HID, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=FFN)
    base.update(kw)
    return base


# Whisper's encoder, one config for its eager and sdpa variants.
WHISPER = dict(vocab_size=VOCAB, num_mel_bins=16, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
               decoder_attention_heads=HEADS, d_model=HID, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_source_positions=16,
               max_target_positions=32, use_cache=False, pad_token_id=1, bos_token_id=2, eos_token_id=2,
               decoder_start_token_id=2)
S2S = dict(vocab_size=VOCAB, d_model=HID, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
           decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_position_embeddings=MAXPOS,
           use_cache=False, pad_token_id=1, decoder_start_token_id=2)

# (id, model class, config class, cfg, wrapper, inputs, attn)
HF = [
    ("hf_deberta_v2", "DebertaV2Model", "DebertaV2Config",
     tcfg(relative_attention=True, position_buckets=8, max_relative_positions=32, pos_att_type=["p2c", "c2p"]),
     Text, text_in, "eager"),
    ("hf_mpnet", "MPNetModel", "MPNetConfig", tcfg(max_position_embeddings=MAXPOS),
     Text, text_in, "eager"),
    ("hf_funnel", "FunnelBaseModel", "FunnelConfig",
     dict(vocab_size=VOCAB, d_model=HID, n_head=HEADS, d_head=HID // HEADS, d_inner=FFN, block_sizes=[1, 1],
          num_decoder_layers=1), Text, text_in, "eager"),
    ("hf_convbert", "ConvBertModel", "ConvBertConfig", tcfg(embedding_size=HID, head_ratio=2, conv_kernel_size=3),
     Text, text_in, "eager"),
    ("hf_falcon", "FalconModel", "FalconConfig",
     dict(vocab_size=VOCAB, hidden_size=HID, num_hidden_layers=LAYERS, num_attention_heads=HEADS, use_cache=False,
          new_decoder_architecture=True, num_kv_heads=2, alibi=False, bias=True, max_position_embeddings=MAXPOS),
     Text, text_in, "eager"),
    ("hf_phi", "PhiModel", "PhiConfig", dcfg(partial_rotary_factor=0.5), Text, text_in, "eager"),
    ("hf_gemma", "GemmaModel", "GemmaConfig", dcfg(num_key_value_heads=1, head_dim=16), Text, text_in, "eager"),
    ("hf_gemma_sdpa", "GemmaModel", "GemmaConfig", dcfg(num_key_value_heads=1, head_dim=16), Text, text_in, "sdpa"),
    ("hf_gemma2", "Gemma2Model", "Gemma2Config",
     dcfg(num_key_value_heads=2, head_dim=16, sliding_window=8, attn_logit_softcapping=50.0,
          final_logit_softcapping=30.0, query_pre_attn_scalar=16), Text, text_in, "eager"),
    ("hf_bloom", "BloomModel", "BloomConfig",
     dict(vocab_size=VOCAB, hidden_size=HID, n_layer=LAYERS, n_head=HEADS, use_cache=False), Text, text_in, "eager"),
    ("hf_opt", "OPTModel", "OPTConfig",
     dict(vocab_size=VOCAB, hidden_size=HID, num_hidden_layers=LAYERS, num_attention_heads=HEADS, ffn_dim=FFN,
          max_position_embeddings=MAXPOS, word_embed_proj_dim=HID, use_cache=False, pad_token_id=1), Text, text_in, "eager"),
    ("hf_opt_sdpa", "OPTModel", "OPTConfig",
     dict(vocab_size=VOCAB, hidden_size=HID, num_hidden_layers=LAYERS, num_attention_heads=HEADS, ffn_dim=FFN,
          max_position_embeddings=MAXPOS, word_embed_proj_dim=HID, use_cache=False, pad_token_id=1), Text, text_in, "sdpa"),
    ("hf_gptj", "GPTJModel", "GPTJConfig",
     dict(vocab_size=VOCAB, n_embd=HID, n_layer=LAYERS, n_head=HEADS, rotary_dim=8, n_positions=MAXPOS, use_cache=False),
     Text, text_in, "eager"),
    ("hf_codegen", "CodeGenModel", "CodeGenConfig",
     dict(vocab_size=VOCAB, n_embd=HID, n_layer=LAYERS, n_head=HEADS, rotary_dim=8, n_positions=MAXPOS, n_ctx=MAXPOS,
          use_cache=False), Text, text_in, "eager"),
    ("hf_stablelm", "StableLmModel", "StableLmConfig", dcfg(num_key_value_heads=2, partial_rotary_factor=0.25),
     Text, text_in, "eager"),
    ("hf_pegasus", "PegasusModel", "PegasusConfig", dict(S2S), Seq2Seq, s2s_in, "eager"),
    ("hf_marian", "MarianModel", "MarianConfig", dict(S2S, decoder_vocab_size=VOCAB), Seq2Seq, s2s_in, "eager"),
    ("hf_whisper_enc", "WhisperModel", "WhisperConfig",
     dict(WHISPER),
     "whisper_enc", lambda: ((torch.randn(B, 16, 32),), ["input_features"]), "eager"),
    ("hf_whisper_enc_sdpa", "WhisperModel", "WhisperConfig",
     dict(WHISPER),
     "whisper_enc", lambda: ((torch.randn(B, 16, 32),), ["input_features"]), "sdpa"),
    ("hf_wav2vec2", "Wav2Vec2Model", "Wav2Vec2Config",
     dict(hidden_size=HID, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
          conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
          num_conv_pos_embedding_groups=4, feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0),
     lambda m: Audio(m, "input_values"), lambda: ((torch.randn(B, 1600),), ["input_values"]), "eager"),
    ("hf_segformer", "SegformerModel", "SegformerConfig",
     dict(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
     Pixel, img_in(64), "eager"),
    ("hf_dinov2", "Dinov2Model", "Dinov2Config", vcfg(layerscale_value=0.5), Pixel, img_in(32), "eager"),
    ("hf_dinov2_sdpa", "Dinov2Model", "Dinov2Config", vcfg(layerscale_value=0.5), Pixel, img_in(32), "sdpa"),
    ("hf_mobilevit", "MobileViTModel", "MobileViTConfig",
     dict(num_channels=3, image_size=64, patch_size=2, hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 16, 24, 32, 40, 48, 64],
          num_attention_heads=4, mlp_ratio=2.0, expand_ratio=2.0), Pixel, img_in(64), "eager"),
    ("hf_levit", "LevitModel", "LevitConfig",
     dict(image_size=64, num_channels=3, hidden_sizes=[32, 48, 64], num_attention_heads=[2, 3, 4], depths=[1, 1, 1],
          key_dim=[8, 8, 8], mlp_ratio=[2, 2, 2], attention_ratio=[2, 2, 2]), Pixel, img_in(64), None),
    ("hf_pvt", "PvtModel", "PvtConfig",
     dict(image_size=64, num_channels=3, num_encoder_blocks=2, depths=[1, 1], sequence_reduction_ratios=[2, 1],
          hidden_sizes=[16, 32], patch_sizes=[4, 2], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
     Pixel, img_in(64), None),
    ("hf_yolos", "YolosModel", "YolosConfig", vcfg(image_size=[32, 32], num_detection_tokens=4), Pixel, img_in(32), "eager"),
    ("hf_vitmae", "ViTMAEModel", "ViTMAEConfig", vcfg(mask_ratio=0.5), PixelNoise,
     lambda: ((torch.randn(B, 3, 32, 32), torch.rand(B, 16)), ["pixel_values", "noise"]), "eager"),
    ("hf_siglip_vision", "SiglipVisionModel", "SiglipVisionConfig", vcfg(), Pixel, img_in(32), "eager"),
    ("hf_siglip_vision_sdpa", "SiglipVisionModel", "SiglipVisionConfig", vcfg(), Pixel, img_in(32), "sdpa"),
    ("hf_data2vec_vision", "Data2VecVisionModel", "Data2VecVisionConfig",
     vcfg(use_relative_position_bias=True, use_mean_pooling=False), Pixel, img_in(32), "eager"),
    ("hf_esm", "EsmModel", "EsmConfig", tcfg(vocab_size=33, position_embedding_type="rotary", pad_token_id=1,
                                             mask_token_id=32, token_dropout=False),
     Text, lambda: ((ids(v=33), pad_mask()), ["input_ids", "attention_mask"]), "eager"),
]


def build_hf(spec):
    import transformers
    mid, mcls, ccls, cfg, wrap, inputs, attn = spec
    kw = dict(cfg)
    if attn is not None:
        kw["attn_implementation"] = attn
    config = getattr(transformers, ccls)(**kw)
    torch.manual_seed(SEED)
    model = getattr(transformers, mcls)(config)
    got = getattr(model.config, "_attn_implementation", None)
    note = f"attn_implementation={got}"
    if attn is not None and got != attn:
        raise RuntimeError(f"asked attn_implementation={attn!r}, model has {got!r}")
    randomize_(model)
    model.eval()
    if mcls == "BloomModel":  # GeLUFunction (autograd.Function) cannot be saved by TorchScript
        from transformers.models.bloom import modeling_bloom as mb
        mb.BloomGelu.forward = lambda self, x: mb.bloom_gelu_forward(x)
        note += "; BloomGelu patched to bloom_gelu_forward (same tanh-GELU) so the trace saves"
    if wrap == "whisper_enc":
        w = Audio(model.encoder, "input_features")
    else:
        w = wrap(model)
    torch.manual_seed(SEED + 1)
    x, names = inputs()
    return w.eval(), x, names, "transformers", f"transformers.{mcls}", note


# timm / torchvision: (id, lib, class label, builder, image size, batch)
def timm_m(name, **kw):
    return lambda: __import__("timm").create_model(name, pretrained=False, num_classes=10, **kw)


def tm_mvit():
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg
    return MultiScaleVit(MultiScaleVitCfg(depths=(1, 1, 1, 1), embed_dim=32, num_heads=1), img_size=(64, 64), num_classes=10)


def tv_swin(v2):
    from torchvision.models import swin_transformer as st
    if v2:
        return st.SwinTransformer(patch_size=[2, 2], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                                  stochastic_depth_prob=0.0, num_classes=10, block=st.SwinTransformerBlockV2,
                                  downsample_layer=st.PatchMergingV2)
    return st.SwinTransformer(patch_size=[2, 2], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                              stochastic_depth_prob=0.0, num_classes=10)


def tv_maxvit():
    from torchvision.models.maxvit import MaxVit
    return MaxVit(input_size=(64, 64), stem_channels=16, partition_size=4, block_channels=[32, 64], block_layers=[1, 1],
                  head_dim=16, stochastic_depth_prob=0.0, num_classes=10)


def tv_mvit():
    from torchvision.models.video.mvit import MViT, MSBlockConfig
    cfgs = [MSBlockConfig(num_heads=1, input_channels=32, output_channels=32, kernel_q=[3, 3, 3], kernel_kv=[3, 3, 3],
                          stride_q=[1, 1, 1], stride_kv=[1, 2, 2]),
            MSBlockConfig(num_heads=2, input_channels=32, output_channels=64, kernel_q=[3, 3, 3], kernel_kv=[3, 3, 3],
                          stride_q=[1, 2, 2], stride_kv=[1, 1, 1])]
    return MViT(spatial_size=(32, 32), temporal_size=4, block_setting=cfgs, residual_pool=True, residual_with_cls_embed=False,
                rel_pos_embed=True, proj_after_attn=True, stochastic_depth_prob=0.0, num_classes=10,
                patch_embed_kernel=(3, 7, 7), patch_embed_stride=(2, 4, 4), patch_embed_padding=(1, 3, 3))


VISION = [
    ("timm_cait", "timm", "timm Cait", timm_m("cait_xxs24_224", img_size=32, patch_size=8, depth=2, depth_token_only=1), 32),
    ("timm_twins_svt", "timm", "timm Twins (svt)", timm_m("twins_svt_small", img_size=64, embed_dims=(32, 64), depths=(1, 1),
                                                         num_heads=(1, 2), sr_ratios=(2, 1), patch_size=4, mlp_ratios=(2, 2), wss=(4, 4)), 64),
    ("timm_crossvit", "timm", "timm CrossVit", timm_m("crossvit_tiny_240", embed_dim=[32, 64], depth=[[1, 1, 0]],
                                                      num_heads=[2, 2], mlp_ratio=[2, 2, 1]), (240, 1)),
    ("timm_maxvit", "timm", "timm MaxxVit (maxvit)", timm_m("maxvit_rmlp_pico_rw_256", img_size=64), 64),
    ("timm_coatnet", "timm", "timm MaxxVit (coatnet)", timm_m("coatnet_pico_rw_224", img_size=64), 64),
    ("timm_efficientformer", "timm", "timm EfficientFormer", timm_m("efficientformer_l1", depths=(1, 1, 1, 2), embed_dims=(16, 32, 48, 64), num_vit=1), (224, 1)),
    ("timm_levit", "timm", "timm Levit", timm_m("levit_128s", img_size=64), 64),
    ("timm_pvt_v2", "timm", "timm PyramidVisionTransformerV2", timm_m("pvt_v2_b0", depths=(1, 1, 1, 1)), 64),
    ("timm_mvitv2", "timm", "timm MultiScaleVit", tm_mvit, 64),
    ("timm_eva", "timm", "timm Eva (eva02)", timm_m("eva02_tiny_patch14_224", img_size=56, depth=2), 56),
    ("timm_fastvit", "timm", "timm FastVit (sa)", timm_m("fastvit_sa12", layers=(1, 1, 1, 1)), 64),
    ("timm_edgenext", "timm", "timm EdgeNeXt", timm_m("edgenext_xx_small", depths=(1, 1, 1, 1)), 64),
    ("timm_deit_distilled", "timm", "timm VisionTransformerDistilled",
     timm_m("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2), 32),
    ("tv_swin_t", "torchvision", "torchvision SwinTransformer", lambda: tv_swin(False), 32),
    ("tv_swin_v2_t", "torchvision", "torchvision SwinTransformer (V2 blocks)", lambda: tv_swin(True), 32),
    ("tv_maxvit", "torchvision", "torchvision MaxVit", tv_maxvit, 64),
    ("tv_mvit_v2", "torchvision", "torchvision video MViT (v2-style)", tv_mvit, None),
]


def build_vision(spec):
    mid, lib, label, builder, size = spec
    torch.manual_seed(SEED)
    m = builder()
    randomize_(m)
    m.eval()
    torch.manual_seed(SEED + 1)
    if size is None:  # video: B, C, T, H, W
        x = torch.randn(1, 3, 4, 32, 32)
    elif isinstance(size, tuple):
        x = torch.randn(size[1], 3, size[0], size[0])
    else:
        x = torch.randn(B, 3, size, size)
    return Plain(m).eval(), (x,), ["x"], lib, label, f"{type(m).__name__}"


def export(mid, build, do_pt2):
    rec = {"id": mid}
    t0 = time.time()
    try:
        model, x, names, lib, label, note = build()
    except Exception as e:
        rec.update(build_error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        log(f"{mid}: BUILD FAILED {rec['build_error']}")
        traceback.print_exc()
        return rec
    rec.update(library=lib, cls=label, note=note, inputs=[])
    try:
        with torch.no_grad():
            ref = model(*x)
    except Exception as e:
        rec.update(build_error=f"eager run failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        log(f"{mid}: BUILD FAILED {rec['build_error']}")
        traceback.print_exc()
        return rec
    for i, (t, n) in enumerate(zip(x, names)):
        p = os.path.join(OUT, f"{mid}.in{i}.npy")
        np.save(p, t.numpy())
        rec["inputs"].append({"name": n, "file": p, "shape": list(t.shape), "dtype": str(t.dtype)})
    rec["out_shape"] = list(ref.shape)
    try:
        with torch.no_grad():
            tr = torch.jit.trace(model, x, check_trace=False)
        tr.save(os.path.join(OUT, f"{mid}.pt"))
        with torch.no_grad():
            d = (tr(*x) - ref).abs().max().item()
        rec["ts"] = "ok"; rec["ts_selfdiff"] = d
    except Exception as e:
        rec["ts"] = f"trace failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        log(f"{mid}: {rec['ts']}")
        traceback.print_exc()
    if do_pt2:
        try:
            ep = torch.export.export(model, x)
            torch.export.save(ep, os.path.join(OUT, f"{mid}.pt2"))
            with torch.no_grad():
                d = (ep.module()(*x) - ref).abs().max().item()
            rec["pt2"] = "ok"; rec["pt2_selfdiff"] = d
        except Exception as e:
            msg = str(e).strip().splitlines()
            rec["pt2"] = f"export failed: {type(e).__name__}: {msg[0] if msg else ''}"
            log(f"{mid}: {rec['pt2']}")
            traceback.print_exc()
    rec["seconds"] = round(time.time() - t0, 1)
    log(f"{mid}: ts={rec.get('ts')} pt2={rec.get('pt2')} ({rec['seconds']}s)")
    return rec


def export_nograd(mid, build):
    """Only <id>.nograd.pt2: torch.export.export under torch.no_grad() (what torchgraph's own
    scripts/export_programs.py does); writes nothing else."""
    model, x, names, *_ = build()
    with torch.no_grad():
        ref = model(*x)
        ep = torch.export.export(model, x)
    torch.export.save(ep, os.path.join(OUT, f"{mid}.nograd.pt2"))
    with torch.no_grad():
        d = (ep.module()(*x) - ref).abs().max().item()
    log(f"{mid}: nograd pt2 ok, selfdiff {d:.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--no-pt2", action="store_true")
    ap.add_argument("--nograd-pt2-only", action="store_true", help="write only <id>.nograd.pt2 (export under no_grad)")
    a = ap.parse_args()
    only = set(s for s in a.only.split(",") if s)
    os.makedirs(OUT, exist_ok=True)
    jobs = [(s[0], (lambda s=s: build_hf(s))) for s in HF] + [(s[0], (lambda s=s: build_vision(s))) for s in VISION]
    for mid, b in jobs:
        if only and mid not in only:
            continue
        mid = mid + SUFFIX
        if a.nograd_pt2_only:
            try:
                export_nograd(mid, b)
            except Exception as e:
                log(f"{mid}: nograd pt2 FAILED {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            continue
        rec = export(mid, b, not a.no_pt2)
        with open(os.path.join(OUT, f"{mid}.json"), "w") as f:
            json.dump(rec, f, indent=1)


if __name__ == "__main__":
    main()
