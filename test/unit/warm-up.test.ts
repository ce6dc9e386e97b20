// Warm-up until the time settles, and the machine-load verdict behind validate's and bench's times.
import { strict as assert } from 'assert';
import { availableParallelism } from 'os';
import { warmUp } from '../../lib/pipeline/warm-up';
import { machineLoad } from '../../lib/pipeline/machine-load';

const feed = (times: number[]) => { let i = 0; return async () => times[Math.min(i++, times.length - 1)]; };

describe('warm-up until the time settles', () => {
  it('runs until three successive runs agree: a slow first run or a specialising executor takes more', async () => {
    assert.deepEqual(await warmUp(feed([50, 10, 10.5, 10.2])), { runs: 4, settled: true });
    assert.deepEqual(await warmUp(feed([274, 274, 0.5, 0.5, 0.5])), { runs: 5, settled: true });
    assert.deepEqual(await warmUp(feed([10, 10, 10])), { runs: 3, settled: true });
  });
  it('at least `min` runs; timer noise under floorMs counts as agreement', async () => {
    assert.deepEqual(await warmUp(feed([10, 10, 10, 10]), { min: 4 }), { runs: 4, settled: true });
    assert.deepEqual(await warmUp(feed([0.02, 0.06, 0.03])), { runs: 3, settled: true });
  });
  it('bounded by a count and says it did not settle', async () => {
    let i = 0;
    assert.deepEqual(await warmUp(async () => (i++ % 2 ? 10 : 20), { max: 6 }), { runs: 6, settled: false });
  });
});

describe('machine load', () => {
  it('warns when the load average reaches the core count or one graph\'s runs spread widely', () => {
    const cores = availableParallelism();
    assert.equal(machineLoad(0, [[10, 10.5, 11]]).warning, undefined);
    assert.match(machineLoad(cores + 1, [[10, 10.5]]).warning!, new RegExp(`load average ${(cores + 1).toFixed(1)} on ${cores} cores`));
    const spread = machineLoad(0, [[10, 10, 30]]);
    assert.ok(Math.abs(spread.spread - 2) < 1e-9);
    assert.match(spread.warning!, /spread over 200% of their median/);
  });
});
