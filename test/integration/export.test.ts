// `torchgraph export FILE.py:FACTORY`: a user's module to TorchScript with the resolved Python
// torch (traced and scripted), then validated; bad targets are one-line usage errors.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { oneLine, runCli } from '../support/cli';

const MODEL_PY = `import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
        self.norm = nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(x + self.attn(x, x, x, need_weights=False)[0])


def make():
    torch.manual_seed(0)
    return Block()
`;

describe('torchgraph export', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-export-'));
  const py = path.join(tmp, 'mymodel.py');
  before(() => fs.writeFileSync(py, MODEL_PY));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const how of ['traced', 'scripted']) {
    it(`${how}: writes a TorchScript file that validate passes`, () => {
      const out = path.join(tmp, `${how}.pt`);
      const r = runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', out, ...(how === 'scripted' ? ['--script'] : [])]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, new RegExp(`wrote .*${how}\\.pt \\(${how}\\)`));
      const v = runCli(['validate', out, '--input', 'x=2x16x64', '--quiet']);
      assert.equal(v.code, 0, v.err + v.out);
      assert.match(v.out, /Attentions decomposed: 1 of 1/);
    });
  }

  it('a factory that is not there, or a target without :FACTORY, is exit 2 with one line', () => {
    const r = runCli(['export', `${py}:nope`, '--input', '2x16x64', '--out', path.join(tmp, 'x.pt')]);
    assert.equal(r.code, 2, r.err);
    assert.match(oneLine(r.err), /has no nope/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x.pt')), 'no file written');
    assert.match(oneLine(runCli(['export', py]).err), /expected FILE\.py:FACTORY/);
  });
});
