// Checks that must not fail a correct model (issue 14, case 6): the same inf or NaN at the same
// place in every graph agrees, and tiny peaks are judged with an absolute floor.
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { maxAbsDiff } from '../../lib/pipeline/compare';
import { estimateAgreement, estimateVsMeasuredCheck, ESTIMATE_ABSOLUTE_FLOOR } from '../../lib/pipeline/estimate-check';
import { Tensor } from '../../lib/torchscript/tensor';
import { main } from '../../lib/app/cli/main';
import type { CliIO } from '../../lib/app/cli/io';
import { validateReportJson } from '../../lib/report/json';

const ROOT = path.resolve(__dirname, '..', '..');
const f32 = (xs: number[]) => Tensor.from(new Float32Array(xs), [xs.length]);

describe('no false failures (issue 14)', function () {
  this.timeout(300_000);

  it('maxAbsDiff: equal non-finite values at the same places agree; anything else does not', () => {
    const cases: [number[], number[], number | null][] = [
      [[Infinity, -Infinity, NaN, 1], [Infinity, -Infinity, NaN, 1.5], 0.5],
      [[Infinity, 1], [-Infinity, 1], Infinity],
      [[Infinity, 1], [3, 1], Infinity],
      [[NaN, 1], [1, 1], null],
      [[1, 2], [1, NaN], null],
      [[NaN, 2], [2, NaN], null],
    ];
    for (const [a, b, want] of cases) {
      const x = [f32(a)];
      const y = [f32(b)];
      assert.equal(maxAbsDiff(x, y), want, `${a} vs ${b}`);
      [...x, ...y].forEach((t) => t.dispose());
    }
  });

  it('a model whose outputs hold inf and NaN in every graph validates (exit 0)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-nonfinite-'));
    try {

      const py = require('../../scripts/libtorch.js').current().python;
      execFileSync(py.exe, [path.join(ROOT, 'scripts', 'make_bad_inputs.py'), dir], { env: { ...process.env, PYTHONPATH: py.pythonPath } });
      let out = '';
      let err = '';
      const io: CliIO = { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false };
      const code = await main(['validate', path.join(dir, 'nonfinite.pt'), '--input', '2x4', '--json'], io);
      const report = JSON.parse(out);
      validateReportJson(report);
      const check = (n: string) => report.checks.find((c: { name: string }) => c.name === n);
      assert.equal(check('unfused-matches').passed, true, check('unfused-matches').detail);
      assert.equal(check('fused-matches').passed, true, check('fused-matches').detail);
      assert.equal(code, 0, `${err}\n${JSON.stringify(report.checks)}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('estimate vs measured: a relative limit with an absolute floor, and the detail says which applied', () => {
    const tiny = estimateAgreement('unfused', 48, 60);
    assert.equal(tiny.passed, true);
    assert.match(tiny.detail, /off by 12 B \(20\.0%\), within the 64\.00 KiB floor/);
    const big = estimateAgreement('fused', 20 << 20, 25 << 20);
    assert.equal(big.passed, false);
    assert.match(big.detail, /off by 5\.00 MiB \(20\.0%\), over the 10% limit/);
    const near = estimateAgreement('fused', (20 << 20) * 1.05, 20 << 20);
    assert.equal(near.passed, true);
    assert.match(near.detail, /within the 10% limit/);
    assert.equal(estimateAgreement('x', ESTIMATE_ABSOLUTE_FLOOR + 1, 0).passed, false);
    const c = estimateVsMeasuredCheck({ unfused: 48, fused: 20 << 20 }, { unfused: 60, fused: 25 << 20 });
    assert.equal(c.name, 'estimate-vs-measured');
    assert.equal(c.passed, false);
  });
});
