"""Write model files that are not loadable TorchScript archives, for the loader's error tests
(test/integration/addon.test.ts, test/integration/bad-models.test.ts): each one a real file made
by torch, damaged where a damaged file would be.

  state_dict.pt, pickled_module.pt   torch.save()d checkpoints
  custom_op.pt                       scripted, calls mylib::twice (registered only in this process)
  bad_code.pt                        a TorchScript archive whose code/ source does not parse
  bad_data_pkl.pt                    a TorchScript archive whose data.pkl is garbage
  no_data_pkl.pt                     a TorchScript archive without data.pkl
  short_weight.pt                    a TorchScript archive whose weight's record is cut short
  no_weight.pt                       a TorchScript archive without its weight's record
  short_constant.pt                  traced, its tensor constant's record (constants/) cut short
  export.pt2                         a torch.export program (torch.export.save)
  foreign_zip.pt, foreign_zip.pt2    zip archives torch did not write (a file at the top; one
                                     folder without a version record)
and one good model with awkward outputs:
  nonfinite.pt                       traced; its outputs hold inf, -inf and NaN on any input
"""
import io
import os
import sys
import zipfile

import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
torch.save(m.state_dict(), os.path.join(out, "state_dict.pt"))
torch.save(m, os.path.join(out, "pickled_module.pt"))


def rewrite(src_bytes, dst, change):
    """Copy a zip archive entry by entry; change(name, data) returns the new data or None to drop."""
    with zipfile.ZipFile(io.BytesIO(src_bytes)) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


buf = io.BytesIO()
torch.jit.save(torch.jit.script(m), buf)
good = buf.getvalue()
rewrite(good, os.path.join(out, "bad_code.pt"),
        lambda n, d: b"def forward(self, x:\n  return ((( x\n" if "/code/" in n and n.endswith(".py") else d)
rewrite(good, os.path.join(out, "bad_data_pkl.pt"),
        lambda n, d: b"\x80\x02garbage that is not a pickle" if n.endswith("/data.pkl") else d)
rewrite(good, os.path.join(out, "no_data_pkl.pt"), lambda n, d: None if n.endswith("/data.pkl") else d)
# The weight (12 floats, the largest record under data/) keeps 8 of its 48 bytes: libtorch loads
# it and a run would read past the buffer.
rewrite(good, os.path.join(out, "short_weight.pt"), lambda n, d: d[:8] if "/data/" in n and len(d) == 48 else d)
rewrite(good, os.path.join(out, "no_weight.pt"), lambda n, d: None if "/data/" in n and len(d) == 48 else d)


class AddsConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.t = torch.arange(64.0)  # a plain attribute: tracing makes it a constant of the code

    def forward(self, x):
        return x + self.t


buf = io.BytesIO()
torch.jit.save(torch.jit.trace(AddsConstant(), (torch.randn(2, 64),)), buf)
rewrite(buf.getvalue(), os.path.join(out, "short_constant.pt"), lambda n, d: d[:16] if "/constants/" in n else d)

torch.library.define("mylib::twice", "(Tensor x) -> Tensor")
torch.library.impl("mylib::twice", "CompositeExplicitAutograd", lambda x: x * 2)


class UsesCustomOp(torch.nn.Module):
    def forward(self, x):
        return torch.ops.mylib.twice(x)


torch.jit.save(torch.jit.script(UsesCustomOp()), os.path.join(out, "custom_op.pt"))

for name, entry in (("foreign_zip.pt", "notes.txt"), ("foreign_zip.pt2", "docs/notes.txt")):
    with zipfile.ZipFile(os.path.join(out, name), "w") as z:
        z.writestr(entry, "a zip archive, not a model")

ep = torch.export.export(m, (torch.randn(2, 4),))
torch.export.save(ep, os.path.join(out, "export.pt2"))


class NonFinite(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        return torch.cat([y / 0.0, (y - y) / 0.0, y], dim=-1)


torch.jit.save(torch.jit.trace(NonFinite().eval(), (torch.randn(2, 4),)), os.path.join(out, "nonfinite.pt"))
