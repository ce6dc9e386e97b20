// scripts/cuda-check.sh checks its assumptions before anything slow, so a run on a lent GPU
// machine cannot waste its budget: one line per missing assumption, exit 2, within a second.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '../..');

function preflight(env: Record<string, string>): { status: number | null; out: string; ms: number } {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-cuda-check-'));
  const t0 = Date.now();
  const r = spawnSync('bash', ['scripts/cuda-check.sh'], { cwd: root, env: { ...process.env, OUT: out, ...env }, encoding: 'utf8', timeout: 60_000 });
  fs.rmSync(out, { recursive: true, force: true });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

describe('scripts/cuda-check.sh preflight (integration)', () => {
  it('a CPU torch: one line saying so, exit 2, before building anything', function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const info = (require(path.join(root, 'scripts', 'libtorch.js')) as { recorded(): { python?: { exe: string; pythonPath?: string } } | null }).recorded();
    if (!info?.python) {
      console.log('      skipped: setup recorded no Python torch (libtorch came from elsewhere)');
      this.skip();
    }
    const r = preflight({ TORCHGRAPH_PYTHON: info.python.exe, PYTHONPATH: info.python.pythonPath ?? '' });
    assert.equal(r.status, 2, r.out);
    assert.match(r.out, /cuda-check: missing: .*torch is a CPU build/);
    assert.doesNotMatch(r.out, /Building|cmake-js/);
  });

  it('every missing assumption is listed, one line each', () => {
    const r = preflight({ TORCHGRAPH_PYTHON: '/nonexistent/python3' });
    assert.equal(r.status, 2, r.out);
    const lines = r.out.split('\n').filter((l) => l.startsWith('cuda-check: missing:'));
    assert.ok(lines.some((l) => /python \/nonexistent\/python3 not found/.test(l)), r.out);
  });
});
