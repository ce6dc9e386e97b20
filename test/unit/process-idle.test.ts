// lib/pipeline/process-idle.ts and compare.ts's external runs: a run in another process (ORT-node,
// PyTorch's anchors) is waited out until its threads stop spinning, so that the run timed next
// does not share the cores with them; the external runs rotate as the forms do.
import { strict as assert } from 'assert';
import { spawn, type ChildProcess } from 'child_process';
import { processCpuNs, untilIdle } from '../../lib/pipeline/process-idle';
import { timeExternals, type ExternalRunner } from '../../lib/pipeline/compare';

const linux = process.platform === 'linux';

/** A node child that prints "go" and then busy-loops for `busyMs` before idling until killed. */
function child(busyMs: number): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e',
    `process.stdout.write('go\\n'); const end = Date.now() + ${busyMs}; while (Date.now() < end); setInterval(() => {}, 1e6);`]);
  return new Promise((resolve, reject) => {
    c.stdout!.once('data', () => resolve(c));
    c.once('error', reject);
  });
}

describe('process idle: waiting out another process\'s spinning threads', () => {
  const children: ChildProcess[] = [];
  after(() => children.forEach((c) => c.kill()));

  it('reads a process\'s CPU time from /proc, and none for a process that is not there', function () {
    if (!linux) this.skip();
    const a = processCpuNs(process.pid)!;
    const end = performance.now() + 5_000;
    while (performance.now() < end && processCpuNs(process.pid)! - a < 20e6);
    assert.ok(processCpuNs(process.pid)! - a >= 20e6, 'a busy loop adds CPU time, read back within 5 s');
    assert.equal(processCpuNs(2 ** 22 + 12345), null);
  });

  it('waits while a process is busy, and returns at once when it is idle', async function () {
    if (!linux) this.skip();
    this.timeout(20_000);
    const busy = await child(600);
    children.push(busy);
    const waited = await untilIdle([busy.pid!], { maxMs: 3_000 });
    assert.ok(waited >= 200, `waited ${waited.toFixed(0)} ms for a process busy for ~600 ms`);
    assert.ok(waited < 2_500, `waited ${waited.toFixed(0)} ms: the busy loop ended long before`);
    const again = await untilIdle([busy.pid!], { maxMs: 3_000 });
    assert.ok(again < 150, `waited ${again.toFixed(0)} ms on an idle process`);
  });

  it('gives up after maxMs on a process that never idles', async function () {
    if (!linux) this.skip();
    this.timeout(20_000);
    const busy = await child(60_000);
    children.push(busy);
    const waited = await untilIdle([busy.pid!], { maxMs: 200 });
    assert.ok(waited >= 200 && waited < 1_000, `waited ${waited.toFixed(0)} ms with maxMs 200`);
  });
});

describe('external runs in the bench\'s repetitions', () => {
  it('rotate their order with the repetition, and wait out a runner\'s own process after it', async function () {
    if (!linux) this.skip();
    this.timeout(20_000);
    // b's process answers at once, then spins for 400 ms (as a thread pool does after a run).
    const b = spawn(process.execPath, ['-e', 'process.stdin.on(\'data\', () => { process.stdout.write(\'ms\\n\'); '
      + 'const end = Date.now() + 400; while (Date.now() < end); }); process.stdout.write(\'go\\n\');']);
    await new Promise((resolve) => b.stdout.once('data', resolve));
    const log: { name: string; at: number }[] = [];
    const times = new Map<string, number[]>([['a', []], ['b', []], ['c', []]]);
    const local = (name: string): ExternalRunner => ({ name, time: async () => { log.push({ name, at: performance.now() }); return log.length; } });
    const inB: ExternalRunner = {
      name: 'b', pid: b.pid!,
      time: async () => {
        log.push({ name: 'b', at: performance.now() });
        const answered = new Promise((resolve) => b.stdout.once('data', resolve));
        b.stdin.write('time\n');
        await answered;
        return log.length;
      },
    };
    try {
      for (let rep = 0; rep < 3; rep++) await timeExternals([local('a'), inB, local('c')], rep, times);
    } finally {
      b.kill();
    }
    assert.deepEqual(log.map((l) => l.name), ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
    assert.deepEqual(times.get('a'), [1, 6, 8]);
    log.forEach((l, i) => {
      if (l.name === 'b' && log[i + 1]) {
        const gap = log[i + 1].at - l.at;
        assert.ok(gap >= 200, `the run after b's started ${gap.toFixed(0)} ms after b's, while b's process was still spinning`);
      }
    });
  });
});
