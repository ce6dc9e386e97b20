"""Check scripts/vit.py against torchvision's vit_b_16: same module tree, same state_dict keys,
bit-identical outputs for the same (random, non-zero) weights, eager and traced.

Exit codes: 0 = identical, 1 = mismatch, 3 = skipped because torchvision does not import
(prints ``SKIP: torchvision does not import: <reason>``).
"""
import os
import sys
import warnings

import torch

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit  # noqa: E402


def main() -> int:
    try:
        import torchvision  # noqa: F401
        from torchvision.models import vit_b_16 as tv_vit_b_16
    except Exception as e:  # ImportError, or RuntimeError from a CUDA torchvision next to a CPU torch
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        print(f"SKIP: torchvision does not import: {type(e).__name__}: {reason}")
        return 3

    torch.manual_seed(0)
    ours = vit.vit_b_16().eval()
    # Random everything, biases and head included: torchvision zero-initialises the head, which
    # would make any comparison of logits vacuous.
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    theirs = tv_vit_b_16(weights=None).eval()

    failures = []
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    if list(ours_sd) != list(theirs_sd):
        failures.append(f"state_dict keys differ: only ours {sorted(set(ours_sd) - set(theirs_sd))[:5]}, "
                        f"only torchvision {sorted(set(theirs_sd) - set(ours_sd))[:5]}, or order differs")
    if len(ours_sd) != 152:
        failures.append(f"expected 152 state_dict keys, got {len(ours_sd)}")
    for k in ours_sd:
        if k in theirs_sd and ours_sd[k].shape != theirs_sd[k].shape:
            failures.append(f"shape of {k}: ours {tuple(ours_sd[k].shape)} vs {tuple(theirs_sd[k].shape)}")
    ours_mods = [(n, type(m).__name__) for n, m in ours.named_modules()]
    theirs_mods = [(n, type(m).__name__) for n, m in theirs.named_modules()]
    if [n for n, _ in ours_mods] != [n for n, _ in theirs_mods]:
        failures.append(f"module tree differs: {len(ours_mods)} vs {len(theirs_mods)} modules")
    else:
        for (n, ot), (_, tt) in zip(ours_mods, theirs_mods):
            if ot != tt:
                failures.append(f"module {n or '<root>'}: ours {ot} vs torchvision {tt}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures[:20]))
        return 1

    theirs.load_state_dict(ours_sd, strict=True)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
        ta = torch.jit.trace(ours, (x,), check_trace=False)(x)
        tb = torch.jit.trace(theirs, (x,), check_trace=False)(x)
    for what, u, v in (("eager", a, b), ("traced", ta, tb)):
        if not torch.equal(u, v):
            print(f"FAIL: {what} outputs differ, max abs diff {(u - v).abs().max().item():.3g}")
            return 1
    if float(a.abs().max()) == 0.0:
        print("FAIL: outputs are all zero (the comparison would be vacuous)")
        return 1
    print(f"OK: 152 state_dict keys, {len(ours_mods)} modules, outputs bit-identical "
          f"(torchvision {torchvision.__version__}, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
