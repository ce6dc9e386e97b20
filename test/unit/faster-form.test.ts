// optimize()'s choice between the rewritten graph and the original (lib/pipeline/faster-form.ts).
import { strict as assert } from 'assert';
import { chooseForm } from '../../lib/pipeline/faster-form';

describe('faster form: the rewritten graph is kept unless it ran slower', () => {
  it('keeps the original only when every rewritten run is slower than every original run, by more than 5% in the medians', () => {
    const slower = chooseForm([1.3, 1.31, 1.32, 1.35, 1.4], [1.0, 1.02, 1.05, 1.1, 1.2]);
    assert.equal(slower.kept, 'original');
    assert.equal(slower.rewrittenMs, 1.32);
    assert.equal(slower.originalMs, 1.05);
    assert.match(slower.reason, /ran slower: 1\.320 ms against the original's 1\.050 ms \(medians of 5 runs each, timed apart\), every run slower; the original graph is kept/);
    // Overlapping runs: within the spread, the rewrite stays.
    assert.equal(chooseForm([1.3, 1.31, 1.0, 1.35, 1.4], [1.0, 1.02, 1.05, 1.1, 1.2]).kept, 'rewritten');
    // Every run slower, but by less than 5%: timer-level, the rewrite stays.
    assert.equal(chooseForm([1.031, 1.032, 1.033], [1.0, 1.01, 1.03]).kept, 'rewritten');
    const faster = chooseForm([0.5, 0.52, 0.55], [1.0, 1.02, 1.05]);
    assert.equal(faster.kept, 'rewritten');
    assert.match(faster.reason, /ran 0\.520 ms against the original's 1\.020 ms/);
  });
});
