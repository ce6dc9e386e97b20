"""A TorchScript file saved by torchgraph -> a torch.export program (.pt2), by torch's own
TorchScript-to-ExportedProgram converter, on seeded random sample inputs.

usage: to_program.py TS_FILE OUT_FILE SPECS_JSON METADATA_JSON
"""
import json
import sys

import torch
from torch._export.converter import TS2EPConverter


def sample(spec):
    g = torch.Generator().manual_seed(0)
    dtype = getattr(torch, spec["dtype"])
    if dtype.is_floating_point:
        return torch.randn(spec["shape"], generator=g, dtype=dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, spec["shape"], generator=g).bool()
    return torch.randint(0, 16, spec["shape"], generator=g, dtype=dtype)


def main(ts_file, out_file, specs_json, metadata):
    ts = torch.jit.load(ts_file)
    args = tuple(sample(s) for s in json.loads(specs_json))
    with torch.no_grad():
        ep = TS2EPConverter(ts, args).convert()
        expected = ts(*args)
        got = ep.module()(*args)
    flat = lambda v: [v] if isinstance(v, torch.Tensor) else [t for x in v for t in flat(x)]
    diff = max(float((a - b).abs().max()) for a, b in zip(flat(expected), flat(got))) if flat(expected) else 0.0
    if diff > 1e-4:
        sys.exit(f"to_program: the converted program differs from the TorchScript file by {diff}")
    torch.export.save(ep, out_file, extra_files={"torchgraph.json": metadata})


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
