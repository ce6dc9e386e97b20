// `torchgraph export FILE.py:FACTORY`: a user's module to TorchScript with the resolved Python
// torch (traced and scripted), then validated; bad targets are one-line usage errors. A Hugging
// Face BertModel, as its factory returns it (no wrapper): its ModelOutput is cut to one output,
// its inputs keep forward's names, and SPEC fills (ones, LOW..HIGH) draw in Python what validate
// draws.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module, randomTensor } from '../../lib';
import { canonicalSpec, parseInputSpec } from '../../lib/app/cli/input-spec';
import { ensureCorpusPython } from '../../lib/app/corpus';
import { torchInfo } from '../../lib/app/models';
import { oneLine, ROOT, runCli } from '../support/cli';

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

  it('--pt2 writes a torch.export program: validate, inspect --view fused and bench take it with no --input, lowered as the .pt is', () => {
    const pt = path.join(tmp, 'twin.pt');
    const pt2 = path.join(tmp, 'block.pt2');
    assert.equal(runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', pt, '--quiet']).code, 0);
    const r = runCli(['export', `${py}:make`, '--input', '2x16x64', '--pt2', '--out', pt2]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /wrote .*block\.pt2 \(a torch\.export program\)/);
    // A torch.export archive, not TorchScript: its model.json is what torchgraph reads.
    assert.equal(fs.readFileSync(pt2).subarray(0, 2).toString(), 'PK');
    const lowered = (file: string, input: string[]) => {
      const v = runCli(['validate', file, ...input, '--json', '--quiet']);
      assert.equal(v.code, 0, v.err + v.out);
      const report = JSON.parse(v.out) as { inputs: { name: string; shape: number[] }[]; graphs: { fused: { lowering: Record<string, unknown> } } };
      const count = (k: string) => { const l = report.graphs.fused.lowering[k] as { lowered: boolean }[] | undefined; return `${l?.filter((o) => o.lowered).length ?? 0} of ${l?.length ?? 0}`; };
      return { inputs: report.inputs.map((i) => [i.name, i.shape]), ...Object.fromEntries(['attentionCores', 'projections', 'linearActs', 'packedLinears'].map((k) => [k, count(k)])) };
    };
    const got = lowered(pt2, []);
    assert.deepEqual(got, lowered(pt, ['--input', '2x16x64']));
    assert.equal((got as Record<string, unknown>).projections, '1 of 1');
    const i = runCli(['inspect', pt2, '--view', 'fused', '--quiet']);
    assert.equal(i.code, 0, i.err);
    assert.match(i.out, /fused view/);
    const b = runCli(['bench', pt2, '--repeat', '1', '--warmup', '0', '--json', '--quiet']);
    assert.equal(b.code, 0, b.err);
    // --out FILE.pt2 alone asks for a program; --pt2 with --script or a .pt name cannot be.
    const named = path.join(tmp, 'named.pt2');
    assert.equal(runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', named, '--quiet']).code, 0);
    assert.equal(fs.readFileSync(named).subarray(0, 2).toString(), 'PK');
    assert.equal(runCli(['validate', named, '--quiet']).code, 0);
    const s = runCli(['export', `${py}:make`, '--pt2', '--script', '--out', path.join(tmp, 's.pt2')]);
    assert.equal(s.code, 2, s.err);
    assert.match(oneLine(s.err), /drop --script/);
    const wrongName = runCli(['export', `${py}:make`, '--input', '2x16x64', '--pt2', '--out', path.join(tmp, 'w.pt')]);
    assert.equal(wrongName.code, 2, wrongName.err);
    assert.match(oneLine(wrongName.err), /name it FILE\.pt2/);
  });

  it('an existing --out is replaced only with --force, and refused before Python runs', () => {
    const out = path.join(tmp, 'kept.pt');
    fs.writeFileSync(out, 'precious');
    const r = runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', out]);
    assert.equal(r.code, 2, r.err);
    assert.match(oneLine(r.err), /kept\.pt exists \(pass --force to replace it\)/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'precious');
    assert.match(oneLine(runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', '-q']).err), /--out -q: looks like an option/);
    const f = runCli(['export', `${py}:make`, '--input', '2x16x64', '--out', out, '--force', '--quiet']);
    assert.equal(f.code, 0, f.err);
    assert.equal(fs.readFileSync(out).subarray(0, 2).toString(), 'PK');
  });

  it('a factory that is not there, or a target without :FACTORY, is exit 2 with one line', () => {
    const r = runCli(['export', `${py}:nope`, '--input', '2x16x64', '--out', path.join(tmp, 'x.pt')]);
    assert.equal(r.code, 2, r.err);
    assert.match(oneLine(r.err), /has no nope/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x.pt')), 'no file written');
    assert.match(oneLine(runCli(['export', py]).err), /expected FILE\.py:FACTORY/);
  });
});

const BERT_PY = `import torch
from transformers import BertConfig, BertModel


def build():
    torch.manual_seed(0)
    return BertModel(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, vocab_size=1000))
`;

describe('torchgraph export: a Hugging Face model, no wrapper', function () {
  this.timeout(900_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-export-hf-'));
  const py = path.join(tmp, 'bert.py');
  let env: NodeJS.ProcessEnv;
  before(() => {
    fs.writeFileSync(py, BERT_PY);
    // transformers from the corpus libraries (a user's own Python has it on its path).
    env = { PYTHONPATH: [ensureCorpusPython().libPath, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const IDS = 'input_ids=2x16:int64:0..1000';
  const MASK = 'attention_mask=2x16:int64:ones';

  async function inputNames(file: string): Promise<string[]> {
    const m = await Module.load(file);
    try {
      return m.inputs().map((a) => a.name);
    } finally {
      m.dispose();
    }
  }

  it('named inputs: keeps the first output, names it, and validate passes on the same SPECs', async () => {
    const out = path.join(tmp, 'bert.pt');
    const r = runCli(['export', `${py}:build`, '-i', IDS, '-i', MASK, '-o', out], { env });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /^torchgraph: export: forward returns BaseModelOutputWithPoolingAndCrossAttentions \(last_hidden_state, pooler_output\); kept output 'last_hidden_state' \(the first tensor; pick another with --output NAME or INDEX\)$/m);
    assert.match(r.err, /wrote .*bert\.pt \(traced\)/);
    assert.doesNotMatch(r.err, /TracerWarning/, 'library warnings stay out of the user\'s stderr');
    assert.deepEqual(await inputNames(out), ['input_ids', 'attention_mask']);
    const v = runCli(['validate', out, '-i', IDS, '-i', MASK]);
    assert.equal(v.code, 0, v.err + v.out);
    assert.match(v.out, /inputs input_ids 2x16 int64, attention_mask 2x16 int64 \|/);
    assert.match(v.out, /Attentions decomposed: 2 of 2/);
    const j = runCli(['validate', out, '-i', IDS, '-i', MASK, '--json', '--quiet']);
    assert.equal(j.code, 0, j.err);
    assert.deepEqual((JSON.parse(j.out) as { inputs: unknown }).inputs, [
      { name: 'input_ids', shape: [2, 16], dtype: 'int64', source: 'random integers in [0, 1000) (seed 0)' },
      { name: 'attention_mask', shape: [2, 16], dtype: 'int64', source: 'ones' },
    ]);
  });

  it('inputs by position take forward\'s names; --output picks an output by name', async () => {
    const out = path.join(tmp, 'pooled.pt');
    const r = runCli(['export', `${py}:build`, '-i', '2x16:int64:0..1000', '-i', '2x16:int64:ones', '--output', 'pooler_output', '-o', out], { env });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /kept output 'pooler_output'$/m);
    assert.deepEqual(await inputNames(out), ['input_ids', 'attention_mask']);
    const m = await Module.load(out);
    const ids = randomTensor([2, 16], 'int64', 0, { kind: 'range', low: 0, high: 1000 });
    const mask = randomTensor([2, 16], 'int64', 1, { kind: 'ones' });
    const y = await m.forward(ids, mask) as { shape: number[]; dispose(): void };
    assert.deepEqual(y.shape, [2, 64], 'the pooled output, not the hidden states');
    [ids, mask, y].forEach((t) => t.dispose());
    m.dispose();
    // validate, inputs by position: the report names them from the file.
    const v = runCli(['validate', out, '-i', '2x16:int64:0..1000', '-i', '2x16:int64:ones', '--quiet']);
    assert.equal(v.code, 0, v.err + v.out);
    assert.match(v.out, /inputs input_ids 2x16 int64, attention_mask 2x16 int64 \|/);
  });

  it('an output, an argument or --script that cannot work is exit 2 with one line saying what can', () => {
    const none = runCli(['export', `${py}:build`, '-i', IDS, '--output', 'logits', '-o', path.join(tmp, 'x.pt')], { env });
    assert.equal(none.code, 2, none.err);
    assert.match(oneLine(none.err), /--output logits: forward returned BaseModelOutputWithPoolingAndCrossAttentions without it \(outputs: last_hidden_state, pooler_output\)/);
    const typo = runCli(['export', `${py}:build`, '-i', IDS, '-i', 'atention_mask=2x16:int64:ones', '-o', path.join(tmp, 'x.pt')], { env });
    assert.equal(typo.code, 2, typo.err);
    assert.match(oneLine(typo.err), /forward has no argument 'atention_mask' \(input_ids, attention_mask, token_type_ids, /);
    const script = runCli(['export', `${py}:build`, '--script', '-o', path.join(tmp, 'x.pt')], { env });
    assert.equal(script.code, 2, script.err);
    assert.match(oneLine(script.err), /torch\.jit\.script failed \(.+\); scripting Hugging Face models usually fails: trace instead \(drop --script and give --input SPEC/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x.pt')), 'no file written');
    // Checked before Python starts.
    assert.match(oneLine(runCli(['export', `${py}:build`, '-i', IDS, '-i', '2x16']).err), /give every input by name \(name=SPEC\) or none/);
    assert.match(oneLine(runCli(['export', `${py}:build`, '-i', '2x16:int64:7..7']).err), /range 7\.\.7 is empty/);
    assert.match(oneLine(runCli(['export', `${py}:build`, '--script', '--output', '0']).err), /--output picks from a traced run: drop --script/);
  });

  it('export draws in Python the very inputs validate draws (every SPEC form)', () => {
    const specs = ['3x5', '7:float64', '4x6:int64', '50:int64:0..30522', '9:uint8:3..200', '8:bool', '6:-1..0.5',
      '5:int32:ones', '2x3:float64:zeros', '3:bool:zeros', '40:int64:-9007199254740991..9007199254740991', '2x2x3:int32:-5..5'];
    const info = torchInfo();
    assert.ok(info.python, 'a Python torch');
    const code = `import json, sys
sys.path.insert(0, ${JSON.stringify(path.join(ROOT, 'scripts'))})
import torch
from export_model import make_input, parse_spec
out = []
for i, text in enumerate(json.loads(sys.argv[1])):
    _, shape, dtype, fill = parse_spec(text)
    t = make_input(shape, dtype, fill, i)
    out.append([list(t.shape), str(t.dtype), t.reshape(-1).to(torch.float64).tolist()])
print(json.dumps(out))`;
    const canonical = specs.map((s) => { const p = parseInputSpec(s); assert.ok(p.kind === 'random'); return canonicalSpec(p); });
    const r = spawnSync(info.python!.exe, ['-c', code, JSON.stringify(canonical)], {
      encoding: 'utf8', env: { ...process.env, PYTHONPATH: [info.python!.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as [number[], string, number[]][];
    specs.forEach((text, i) => {
      const p = parseInputSpec(text);
      assert.ok(p.kind === 'random');
      const t = randomTensor(p.shape, p.dtype, i, p.fill);
      assert.deepEqual(got[i][0], p.shape, text);
      assert.equal(got[i][1], `torch.${p.dtype}`, text);
      assert.deepEqual(got[i][2], t.toNumbers(), text);
      t.dispose();
    });
  });
});
