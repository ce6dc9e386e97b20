// The bench's onnxruntime-node anchor on a small model (mha_demo): the same weights exported with
// torch.onnx.export(dynamo=True) and ORT's optimizers (scripts/onnx_export.py), run by
// onnxruntime-node in a child process. Its outputs are checked against ours (the optimized fused
// model on the same input file) within 1e-4, and the bench times it in the same repetitions as its
// own graphs, with a row of the ours / ORT-node table and both processes' peak RSS.
//
// onnxruntime-node installs from the npm registry into <cache>/ort-node/ on first use; where it
// cannot, the test skips saying why, but never where TORCHGRAPH_ORT_REQUIRED is set (.ci/run: CI
// reaches the registry), and the Python side installs from pip's local wheels as the corpus' does.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { builtinFile } from '../../lib/app/cli/model';
import { ensureModel } from '../../lib/app/models';
import { runBench } from '../../lib/app/bench';
import { exportOnnx, ORT_RUNNER, startOrtNode, type OnnxExport } from '../../lib/app/ort-anchor';
import { ensureOrtNode, OrtInstallError } from '../../lib/app/ort-install';
import { loadModel } from '../../lib/program/load-model';
import { optimize } from '../../lib/pipeline/optimize';
import { readNpy } from '../../lib/torchscript/npy';
import { flattenTensors, Tensor } from '../../lib/torchscript/tensor';
import type { TypedArray } from '../../lib/torchscript/binding';
import { withOrtNode } from '../../scripts/bench-ort';

const TOLERANCE = 1e-4;
const INPUTS = [{ shape: [4, 196, 768], dtype: 'float32' as const }];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe('bench: onnxruntime-node anchor', function () {
  this.timeout(900_000);
  let file: string;
  let exp: OnnxExport;

  before(function () {
    try {
      ensureOrtNode();
    } catch (e) {
      if (!(e instanceof OrtInstallError) || process.env.TORCHGRAPH_ORT_REQUIRED) throw e;
      this.skip(); // onnxruntime-node could not be installed here (no npm registry): e.message says why
    }
  });

  before(async () => {
    file = builtinFile(await ensureModel('mha_demo'));
    exp = await exportOnnx({ builtin: 'mha_demo', file, inputs: INPUTS });
  });

  it(`exports the same weights to ONNX within ${TOLERANCE} of the TorchScript file, optimized by ORT's tools`, () => {
    assert.ok(exp.info.maxAbsDiff <= TOLERANCE, `export max abs diff ${exp.info.maxAbsDiff}`);
    assert.ok(['transformers', 'ort_fusions', 'transformers_on_export', 'export'].includes(exp.info.chosen), exp.info.chosen);
    assert.ok(fs.statSync(exp.model).size > 4 * 768 * 768 * 4, 'the ONNX file holds the weights');
    assert.equal(exp.inputs.length, 1);
  });

  it(`onnxruntime-node's output is within ${TOLERANCE} of ours (the optimized model) on the same input`, async () => {
    const anchor = await startOrtNode(exp);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-ort-'));
    try {
      assert.ok(anchor.maxAbsDiff <= TOLERANCE, `ORT-node max abs diff from the TorchScript file ${anchor.maxAbsDiff}`);
      assert.equal(anchor.versions.node, '1.31.1');
      const [saved] = await anchor.saveOutputs(dir);
      const ortOut = readNpy(saved);
      const o = await optimize(await loadModel(file), INPUTS);
      try {
        const x = readNpy(exp.inputs[0]);
        const input = Tensor.from(x.data as TypedArray, x.shape, x.dtype);
        const [ours] = flattenTensors(await o.forward(input));
        assert.deepEqual(ortOut.shape, ours.shape);
        const d = maxAbsDiff(ortOut.data as Float32Array, ours.toNumbers());
        assert.ok(d <= TOLERANCE, `ORT-node vs ours: max abs diff ${d}`);
        assert.ok(d > 0 || maxAbsDiff(ortOut.data as Float32Array, new Float32Array(ortOut.data.length)) > 0, 'outputs are not all zero');
      } finally {
        o.dispose();
      }
    } finally {
      anchor.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the bench times it in the same repetitions: a fused / ORT-node column and the ORT-node table with both peaks', async () => {
    const logs: string[] = [];
    const ort = withOrtNode([{ name: 'mha_demo', model: 'mha_demo', inputs: INPUTS, warmup: 1, repetitions: 3 }], (s) => logs.push(s));
    let table = '';
    const report = await runBench({
      models: [], inputs: [], device: 'cpu', seed: 0, cases: ort.cases, json: false, verbose: false, quiet: true, project: true,
      stdout: (s) => { table += s; }, stderr: () => {},
    });
    const timed = report.cases[0].comparison.external?.[ORT_RUNNER];
    assert.ok(timed, `an ${ORT_RUNNER} timing (logs: ${logs.join('; ')})`);
    assert.equal(timed.samples.length, 3);
    assert.ok(timed.samples.every((ms) => ms > 0));
    assert.match(table, /fused \/ ORT-node/);
    const ortTable = await ort.table(report);
    const row = ortTable.split('\n').find((l) => l.startsWith('mha_demo'));
    assert.ok(row, ortTable);
    // ms, ms, ratio, diff, "fused peak / ORT peak" in MiB: both processes load the ~9 MiB of weights.
    const m = /^mha_demo\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\d+) \/ (\d+)$/.exec(row);
    assert.ok(m, row);
    assert.ok(Number(m[3]) > 0 && Number(m[4]) <= TOLERANCE, row);
    assert.ok(Number(m[5]) > 9 && Number(m[6]) > 9, row);
  });
});
