// The CLI end to end on real TorchScript models: `inspect` on mha_demo (standard and inlined,
// text, --dot, --json), bad model files, and `validate` through the real loading, input and
// report paths.
// Skipped where the fixtures cannot be exported (no Python torch) or the addon does not load.
import { strict as assert } from 'assert';
import { packedLinearOp } from '../../lib/fusion/linear-packed';
import { runCli, oneLine, type CliResult } from '../support/cli';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { validateReportJson } from '../../lib/report/json';
import { runtimeInfo } from '../../lib/torchscript/runtime-info';

function cli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  return runCli(args, { env, timeoutMs: 300_000 });
}

describe('cli: end to end on real models (integration)', function () {
  this.timeout(600_000);
  let fx: ModelFixture;
  let tmp: string;

  before(async function () {
    try {
      fx = await ensureModel('mha_demo');
      runtimeInfo();
    } catch (e) {
      console.log(`      skipped: ${(e as Error).message.split('\n')[0]}`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-cli-e2e-'));
  });
  after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

  describe('inspect mha_demo', () => {
    it('standard view as text: the attention stays one call_module node', () => {
      const r = cli(['inspect', 'mha_demo']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^# mha_demo: standard view, 6 nodes \(/);
      // The built-in model's example input gives every view its shapes.
      assert.match(r.out, /^# shapes for input x float32\[4, 196, 768\] \(example input of mha_demo\)$/m);
      assert.match(r.out, /^graph\(%self\.1 : MhaDemo, %x\.1 : float32\[4, 196, 768\]\):$/m);
      assert.match(r.out, /: MultiheadAttention += prim::GetAttr\[name="attn"\]/);
      // Module calls by the name JSON and DOT give them.
      assert.match(r.out, /: float32\[4, 196, 768\] += call_module:LayerNorm\(%norm\.1, %x\.1\)/);
      assert.match(r.out, /: float32\[4, 196, 768\] += call_module:MultiheadAttention\(/);
      assert.doesNotMatch(r.out, /prim::CallMethod/);
      assert.doesNotMatch(r.out, /_native_multi_head_attention/);
      // The traced file's lines are TorchScript's generated code: left out, with a note.
      assert.doesNotMatch(r.out, /\(code\/__torch__\S*:\d+\)/);
      assert.match(r.out, /^# source lines of the code TorchScript generated/m);
    });

    it('a model file with -i NAME=SPEC: the decomposed view with shapes and the partitioner\'s groups', () => {
      const r = cli(['inspect', fx.variants.traced!, '--view', 'decomposed', '-i', 'x=2x9x768']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^# shapes for input x float32\[2, 9, 768\] \(random normal \(seed 0\)\)$/m);
      assert.match(r.out, /^# \S+: decomposed view, \d+ nodes, 3 fusion groups/m);
      assert.match(r.out, /: float32\[2, 12, 9, 9\] += aten::softmax\(.*# \[g\d+ attn: attention softmax\]/);
      assert.match(r.out, /= aten::linear\(.*# \[g\d+ attn: qkv_projection projection\]/);
      const positional = cli(['inspect', fx.variants.traced!, '--view', 'decomposed', '--input', '2x9x768']);
      assert.equal(positional.code, 0, positional.err);
      assert.equal(positional.out.replace(/^# shapes.*\n/m, ''), r.out.replace(/^# shapes.*\n/m, ''));
    });

    it('fused view as JSON: shapes, groups lowered or not, op names beside the IR kinds', () => {
      const r = cli(['inspect', 'mha_demo', '--view', 'fused', '--json']);
      assert.equal(r.code, 0, r.err);
      const o = JSON.parse(r.out);
      assert.equal(o.graph.format, 'torchgraph.graph');
      assert.deepEqual(o.inputs.find((i: { name: string }) => i.name === 'x.1'), { id: o.inputs[1].id, name: 'x.1', type: 'Tensor', shape: [4, 196, 768], dtype: 'float32' });
      const sdpa = o.annotations.find((n: { kind: string }) => n.kind === 'aten::scaled_dot_product_attention');
      assert.deepEqual(sdpa.group, { id: 'attn', kind: 'attention_core', lowered: true });
      assert.deepEqual(sdpa.outputs[0].shape, [4, 12, 196, 64]);
      // The traced file's generated code maps back to the Python that ran when it was traced (torch's functional.py here).
      const lnSource = o.annotations.find((n: { kind: string }) => n.kind === 'aten::layer_norm').source;
      assert.equal(lnSource.generated, false);
      assert.match(lnSource.file, /\/torch\/nn\/functional\.py$/);
      assert.equal(o.annotations.find((n: { kind: string }) => n.kind === 'aten::layer_norm').op, 'aten::layer_norm');
      assert.ok(o.groups.some((g: { kind: string; lowered: boolean }) => g.kind === 'attention_core' && g.lowered), JSON.stringify(o.groups));
      assert.ok(o.groups.some((g: { kind: string; lowered: boolean }) => g.kind === 'residual' && !g.lowered), JSON.stringify(o.groups));
    });

    it('fused view: --no-packed-linears switches that lowering off (text and DOT clusters)', function () {
      if (!runtimeInfo().hasMkldnn) this.skip();
      const on = cli(['inspect', 'mha_demo', '--view', 'fused']);
      assert.equal(on.code, 0, on.err);
      assert.match(on.out, new RegExp(`${packedLinearOp()}\\(.*packed_linear, fused\\]`));
      const off = cli(['inspect', 'mha_demo', '--view', 'fused', '--no-packed-linears']);
      assert.equal(off.code, 0, off.err);
      assert.doesNotMatch(off.out, new RegExp(packedLinearOp()));
      assert.match(off.out, /^# lowerings switched off: --no-packed-linears$/m);
      assert.match(off.out, /aten::scaled_dot_product_attention\(.*# \[attn: attention_core, fused\]/);
      const dot = cli(['inspect', 'mha_demo', '--view', 'fused', '--dot', '--no-packed-linears']);
      assert.equal(dot.code, 0, dot.err);
      assert.match(dot.out, /subgraph "cluster_group_attn attention_core" \{ label="attn attention_core"; [^}]*n\d+; \}/);
      assert.match(dot.out, /label="aten::scaled_dot_product_attention\\n%\S+ : float32\[4, 12, 196, 64\]\\n\[attn: attention_core, fused\]"/);
    });

    it('inlined view as text: down to aten ops, the fast-path attention op visible', () => {
      const r = cli(['inspect', 'mha_demo', '--view', 'inlined']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^# mha_demo: inlined view, \d+ nodes/);
      assert.match(r.out, /aten::_native_multi_head_attention\(/);
      assert.match(r.out, /aten::layer_norm\(/);
      assert.doesNotMatch(r.out, /prim::CallMethod/);
    });

    for (const view of ['standard', 'inlined']) {
      it(`${view} view as DOT: well-formed, edges between declared nodes`, () => {
        const r = cli(['inspect', 'mha_demo', '--view', view, '--dot']);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, new RegExp(`^digraph "mha_demo \\(${view}\\)" \\{`));
        assert.ok(r.out.trimEnd().endsWith('}'));
        const declared = new Set([...r.out.matchAll(/^\s*(\w+) \[label=/gm)].map((m) => m[1]));
        const edges = [...r.out.matchAll(/^\s*(\w+) -> (\w+)/gm)];
        assert.ok(edges.length >= 4);
        for (const [, a, b] of edges) assert.ok(declared.has(a) && declared.has(b), `${a} -> ${b}`);
        assert.match(r.out, view === 'standard' ? /label="call_module:MultiheadAttention/ : /label="aten::_native_multi_head_attention/);
      });
    }

    it('--json: the graph in torchgraph.graph format with op counts', () => {
      const r = cli(['inspect', 'mha_demo', '--json']);
      assert.equal(r.code, 0, r.err);
      const o = JSON.parse(r.out);
      assert.equal(o.view, 'standard');
      assert.equal(o.nodes, 6);
      assert.equal(o.ops['call_module:MultiheadAttention'], 1);
      assert.equal(o.ops['call_module:LayerNorm'], 1);
      assert.equal(o.graph.format, 'torchgraph.graph');
    });

    it('a model file by path works the same as the built-in name', () => {
      const r = cli(['inspect', fx.variants.traced!]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /standard view, 6 nodes/);
    });
  });

  describe('bad model files: exit 2 with one line', () => {
    it('not TorchScript', () => {
      const f = path.join(tmp, 'junk.pt');
      fs.writeFileSync(f, 'this is not a zip archive');
      for (const args of [['inspect', f], ['validate', f, '--input', '2x3']]) {
        const r = cli(args);
        assert.equal(r.code, 2, r.err);
        assert.match(oneLine(r.err), /^torchgraph: cannot load '.*junk\.pt' as TorchScript: /);
        assert.equal(r.out, '');
      }
    });

    it('empty', () => {
      const f = path.join(tmp, 'empty.pt');
      fs.writeFileSync(f, '');
      const r = cli(['inspect', f]);
      assert.equal(r.code, 2);
      assert.match(oneLine(r.err), /the file is empty/);
    });

    it('--verbose adds the stack trace', () => {
      const f = path.join(tmp, 'junk.pt');
      const r = cli(['inspect', f, '--verbose']);
      assert.equal(r.code, 2);
      assert.match(r.err, /code: ERR_LOAD/);
      assert.match(r.err, /\n\s+at /);
    });
  });

  describe('validate: loading, inputs and reports', () => {
    it('--no-packed-linears --no-in-place: those lowerings are off in the fused graph validate runs', function () {
      if (!runtimeInfo().hasMkldnn) this.skip();
      const r = cli(['validate', 'mha_demo', '--json', '--quiet', '--no-packed-linears', '--no-in-place']);
      assert.equal(r.code, 0, r.err);
      const lw = JSON.parse(r.out).graphs.fused.lowering;
      assert.ok(!lw.packedLinears?.some((l: { lowered: boolean }) => l.lowered), JSON.stringify(lw));
      assert.ok(!lw.inPlaceOps, JSON.stringify(lw));
      assert.equal(lw.attentionCores[0].lowered, true);
    });

    it('--json: one object on stdout that matches the contract; exit 0', () => {
      const r = cli(['validate', 'mha_demo', '--json', '--quiet']);
      assert.equal(r.code, 0, r.err);
      const o = JSON.parse(r.out);
      assert.deepEqual(validateReportJson(o), []);
      assert.equal(o.model, 'mha_demo');
      assert.equal(o.passed, true);
      assert.equal(o.graphs.standard.nodes, 6);
      assert.equal(o.graphs.standard.ops['call_module:MultiheadAttention'], 1);
      assert.equal(o.graphs.decomposed.ops['aten::_native_multi_head_attention'], undefined);
      assert.deepEqual([o.attention.found, o.attention.decomposed], [1, 1]);
      assert.ok(o.runs.original.peakBytes > 0, 'measured by the addon');
      // Named from the file's forward(x), as given by position.
      assert.deepEqual(o.inputs, [{ name: 'x', shape: [4, 196, 768], dtype: 'float32', source: 'example input of mha_demo' }]);
      assert.match(o.environment.torchVersion, /^\d+\.\d+/);
      assert.equal(r.err, '', 'nothing on stderr with --quiet');
    });

    it('the table, the HTML report, and exit 1 when a check fails', () => {
      const html = path.join(tmp, 'r.html');
      // A report from an earlier run is replaced (only a report is: test/unit/report-target.test.ts).
      fs.writeFileSync(html, '<!DOCTYPE html>\n<meta name="generator" content="torchgraph">\n<title>an earlier run</title>\n');
      const r = cli(['validate', 'mha_demo', '--report', html, '--tolerance', '1e-30']);
      assert.equal(r.code, 1, r.err);
      assert.match(r.out, /^torchgraph validate: mha_demo$/m);
      assert.match(r.out, /^Graph nodes +6 +\d+ +\d+/m);
      assert.match(r.out, /FAIL {2}fused-matches/);
      assert.match(r.out, /^Result: FAILED \(\d+ of \d+ checks passed\)$/m);
      // Not a terminal: one line per finished stage with its time, then the report's path.
      assert.match(r.err, /^torchgraph: loading mha_demo \(\d+\.\d s\)\ntorchgraph: building the standard view \(\d+\.\d s\)$/m);
      assert.match(r.err, /^torchgraph: running original, unfused and fused on cpu \(\d+\.\d s\)$/m);
      assert.ok(r.err.endsWith(`torchgraph: report written to ${html}\n`), r.err);
      assert.ok(!r.err.includes('\r') && !r.err.includes('\x1b'), 'no terminal control characters');
      const page = fs.readFileSync(html, 'utf8');
      assert.doesNotMatch(page, /an earlier run/);
      assert.match(page, /<span class="verdict fail">FAILED<\/span>/);
      assert.match(page, /<g class="node node-op"/);
      assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
    });

    it('a model file with --input specs, seeded', () => {
      const a = cli(['validate', fx.variants.traced!, '--input', '2x5x768', '--seed', '4', '--json']);
      assert.equal(a.code, 0, a.err);
      const o = JSON.parse(a.out);
      // Named from the file's forward(x), as given by position.
      assert.deepEqual(o.inputs, [{ name: 'x', shape: [2, 5, 768], dtype: 'float32', source: 'random normal (seed 4)' }]);
    });

    it('an input the model rejects is one line on stderr', () => {
      const r = cli(['validate', fx.variants.traced!, '--input', '2x5x7', '--quiet']);
      assert.ok(r.code === 2 || r.code === 3, `exit ${r.code}`);
      oneLine(r.err);
    });

    it('--device cuda without a GPU is exit 2 with one line', function () {
      const info = runtimeInfo();
      if (info.cudaAvailable) this.skip();
      const r = cli(['validate', 'mha_demo', '--device', 'cuda', '--quiet']);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
    });
  });
});
