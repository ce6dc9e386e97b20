// lib/pipeline/interleaved-runs.ts: the one warm-up + interleave loop (compare, optimize's faster
// form) and the one test of "slower" (compare's profiling, optimize's choice).
import { strict as assert } from 'assert';
import { interleavedRuns, ranSlower, SLOWER_MARGIN } from '../../lib/pipeline/interleaved-runs';

describe('interleaved runs: warm-up, then the forms in a rotating order', () => {
  it('warms each form up in turn, then rotates which form runs first every repetition', async () => {
    const log: string[] = [];
    const form = (name: string) => ({
      warm: async () => { log.push(`warm ${name}`); return 1; },
      timed: async (rep: number) => { log.push(`${name}${rep}`); return `${name}${rep}`; },
    });
    const { warmUps, results } = await interleavedRuns([form('a'), form('b'), form('c')], {
      repetitions: 3, warmUp: null, beforeTiming: () => log.push('timing'), afterRepetition: async (rep) => { log.push(`end ${rep}`); },
    });
    assert.deepEqual(log, ['warm a', 'warm b', 'warm c', 'timing',
      'a0', 'b0', 'c0', 'end 0', 'b1', 'c1', 'a1', 'end 1', 'c2', 'a2', 'b2', 'end 2']);
    assert.deepEqual(results, [['a0', 'a1', 'a2'], ['b0', 'b1', 'b2'], ['c0', 'c1', 'c2']]);
    assert.deepEqual(warmUps, [undefined, undefined, undefined]);
  });

  it('with warm-up options, warms each form until its times settle and reports it', async () => {
    const times = [9, 1, 1, 1, 1];
    let i = 0;
    const { warmUps } = await interleavedRuns([{ warm: async () => times[i++], timed: async () => 0 }], { repetitions: 1, warmUp: { min: 2 } });
    assert.deepEqual(warmUps, [{ runs: 4, settled: true }]);
  });
});

describe('ranSlower: every run slower, and by more than SLOWER_MARGIN in the medians', () => {
  it('holds only when both hold', () => {
    assert.equal(SLOWER_MARGIN, 0.05);
    assert.equal(ranSlower([1.3, 1.31, 1.32], [1.0, 1.05, 1.2]), true);
    assert.equal(ranSlower([1.3, 1.0, 1.35], [1.0, 1.05, 1.2]), false, 'overlapping runs');
    assert.equal(ranSlower([1.031, 1.032, 1.033], [1.0, 1.01, 1.03]), false, 'every run slower, by under 5%');
    assert.equal(ranSlower([0.5, 0.52], [1.0, 1.02]), false);
  });
});
