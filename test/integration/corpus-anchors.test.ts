// The bench's anchors on corpus fixtures (bench --corpus --anchors): scripts/anchors.py rebuilds
// the transformers class with corpus.py's builder, loads the traced file's weights strictly and runs
// on the fixture's own input files, and proves it: eager's output within 1e-4 of the fixture's, or
// it refuses. Eager only: torch.compile takes minutes here, which is the benchmark's business.
//
// The before hook loads the corpus as corpus.test.ts does (TORCHGRAPH_CORPUS=small: without the
// standard-size models), so both share its cache.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCorpus, type Corpus } from '../../lib/app/corpus';
import { startAnchors } from '../../lib/app/anchors';
import { torchInfo } from '../../lib/app/models';
import { runCase } from '../../lib/pipeline/bench';

const TOLERANCE = 1e-4;

/** A copy of TorchScript file `file` with one element of its first floating-point parameter moved by `delta`. */
function alteredWeights(file: string, pythonPath: string, delta: number): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tg-anchors-')), 'altered.pt');
  const code = [
    'import sys, torch',
    'm = torch.jit.load(sys.argv[1])',
    'p = next(p for p in m.parameters() if p.dtype.is_floating_point)',
    'with torch.no_grad(): p.view(-1)[0] += float(sys.argv[3])',
    'm.save(sys.argv[2])',
  ].join('\n');
  const r = spawnSync(torchInfo().python!.exe, ['-c', code, file, out, String(delta)], { env: { ...process.env, PYTHONPATH: pythonPath }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

describe('corpus anchors', function () {
  this.timeout(600_000);
  let corpus: Corpus;

  before(async () => {
    corpus = await loadCorpus({ small: process.env.TORCHGRAPH_CORPUS === 'small' });
  });

  for (const id of ['resnet', 'bert_eager']) {
    it(`${id}: eager on the fixture's weights and inputs, within ${TOLERANCE} of its output, timed on request`, async () => {
      const fx = corpus.byId[id];
      assert.ok(fx?.variants.traced, `${id} is in the corpus, traced`);
      const anchors = await startAnchors({ manifest: fx.manifestPath, pythonPath: corpus.pythonPath }, ['eager']);
      try {
        assert.equal(typeof anchors.eagerMaxAbsDiff, 'number');
        assert.ok(anchors.eagerMaxAbsDiff! <= TOLERANCE, `eager max abs diff ${anchors.eagerMaxAbsDiff}`);
        assert.deepEqual(anchors.runners.map((r) => r.name), ['eager']);
        assert.ok((await anchors.runners[0].time()) > 0);
        if (id !== 'resnet') return;
        // In the bench's own repetitions, beside the three graphs, on the same input files.
        const inputs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
        const r = await runCase({ name: id, model: fx.variants.traced!, file: fx.variants.traced!, inputs, files: fx.inputs.map((i) => i.file), warmup: 0, repetitions: 2 },
          { external: anchors.runners });
        assert.equal(r.comparison.external!.eager.samples.length, 2);
        assert.ok(r.comparison.external!.eager.medianMs > 0);
      } finally {
        anchors.close();
      }
    });
  }

  it('refuses weights that do not fit: another model\'s file, or the same keys with one weight moved', async () => {
    const resnet = corpus.byId.resnet;
    const other = corpus.byId.bert_eager.variants.traced!;
    await assert.rejects(startAnchors({ manifest: resnet.manifestPath, pythonPath: corpus.pythonPath, file: other }, ['eager']),
      /anchors for resnet: RuntimeError: the weights of .*bert_eager.traced\.pt do not fit resnet: \d+ missing/);
    // Keys and shapes fit, so only the output check can tell.
    const altered = alteredWeights(resnet.variants.traced!, corpus.pythonPath, 0.5);
    try {
      await assert.rejects(startAnchors({ manifest: resnet.manifestPath, pythonPath: corpus.pythonPath, file: altered }, ['eager']),
        /anchors for resnet: RuntimeError: eager's output is [\d.e+-]+ from the TorchScript file's \(limit 0\.0001\)/);
    } finally {
      fs.rmSync(path.dirname(altered), { recursive: true, force: true });
    }
  });
});
