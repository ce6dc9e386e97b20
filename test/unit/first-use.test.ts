// The first use of an install says whether setup is done: nothing when it is; else one line with
// the command that fixes it, or setup run there when asked (no libtorch needed: the check and
// setup are passed in; the install test runs the real ones from a packed tarball).
import { strict as assert } from 'assert';
import { ensureSetUp } from '../../lib/app/cli/first-use';
import { CliError, EXIT_INTERNAL, formatError } from '../../lib/app/cli/errors';
import { notSetUpMessage } from '../../lib/torchscript/binding';
import type { CliIO } from '../../lib/app/cli/io';

function captureIO(): CliIO & { err: string } {
  const io = { err: '', stdout: () => {}, stderr: (s: string) => { io.err += s; }, stderrIsTTY: false, color: false };
  return io;
}

const NOT_RUN = notSetUpMessage(false, null, '/home/u/.cache/torchgraph');

describe('first use: is setup done', () => {
  let saved: string | undefined;
  beforeEach(() => { saved = process.env.TORCHGRAPH_AUTO_SETUP; delete process.env.TORCHGRAPH_AUTO_SETUP; });
  afterEach(() => { if (saved === undefined) delete process.env.TORCHGRAPH_AUTO_SETUP; else process.env.TORCHGRAPH_AUTO_SETUP = saved; });

  it('set up: says nothing and runs nothing', async () => {
    const io = captureIO();
    let ran = 0;
    await ensureSetUp(io, { problem: () => null, setup: async () => { ran++; return 0; }, ask: async () => { throw new Error('asked'); } });
    assert.equal(io.err, '');
    assert.equal(ran, 0);
  });

  it('never ran (install script skipped): one line, what happened and the one command, exit 3', async () => {
    const io = captureIO();
    let ran = 0;
    const e = await ensureSetUp(io, { problem: () => NOT_RUN, setup: async () => { ran++; return 0; } }).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof CliError);
    assert.equal(e.exitCode, EXIT_INTERNAL);
    const line = formatError(e, false);
    assert.equal(line.trimEnd().split('\n').length, 1, line);
    assert.match(line, /^torchgraph: setup has not run: npm skipped torchgraph's install script/);
    assert.match(line, /Fix: run `npx torchgraph setup`/);
    assert.match(line, /TORCHGRAPH_AUTO_SETUP=1/);
    assert.equal(ran, 0);
    assert.equal(io.err, '');
  });

  it('a yes at the prompt runs setup, then the command goes on', async () => {
    const io = captureIO();
    let state: string | null = NOT_RUN;
    let question = '';
    await ensureSetUp(io, {
      problem: () => state,
      ask: async (q) => { question = q; return true; },
      setup: async () => { state = null; return 0; },
    });
    assert.match(question, /setup has not run[\s\S]*Run `npx torchgraph setup` now\? \[Y\/n\] $/);
    assert.match(io.err, /^torchgraph: running `npx torchgraph setup` first\n$/);
  });

  it('a no at the prompt: the message, no setup', async () => {
    let ran = 0;
    await assert.rejects(ensureSetUp(captureIO(), { problem: () => NOT_RUN, ask: async () => false, setup: async () => { ran++; return 0; } }),
      (e: Error) => /npx torchgraph setup/.test(e.message) && !/AUTO_SETUP/.test(e.message));
    assert.equal(ran, 0);
  });

  it('TORCHGRAPH_AUTO_SETUP=1 runs setup without asking', async () => {
    process.env.TORCHGRAPH_AUTO_SETUP = '1';
    const io = captureIO();
    let state: string | null = NOT_RUN;
    await ensureSetUp(io, { problem: () => state, setup: async () => { state = null; return 0; } });
    assert.match(io.err, /TORCHGRAPH_AUTO_SETUP=1: running `npx torchgraph setup` first/);
  });

  it('setup that fails: the command does not go on', async () => {
    process.env.TORCHGRAPH_AUTO_SETUP = '1';
    await assert.rejects(ensureSetUp(captureIO(), { problem: () => NOT_RUN, setup: async () => 1 }),
      (e: CliError) => e.exitCode === EXIT_INTERNAL && /setup did not finish/.test(e.message));
  });
});

describe('the not-set-up message says which case it is', () => {
  it('never ran: the install script was skipped, and where the cache is', () => {
    assert.match(NOT_RUN, /setup has not run: .*--ignore-scripts or npm's allowScripts.*\(\/home\/u\/\.cache\/torchgraph\)\. Fix: run `npx torchgraph setup`$/);
  });

  it('failed: the recorded reason, its fix, then setup', () => {
    const msg = notSetUpMessage(false, { ok: false, error: 'pip could not install torch==2.13.0 (exit 1):\nno network' });
    assert.equal(msg.split('\n').length, 1);
    assert.match(msg, /^torchgraph: setup failed: pip could not install torch==2\.13\.0 \(exit 1\): no network\. Fix that; then run `npx torchgraph setup`$/);
    const withFix = notSetUpMessage(false, { ok: false, error: 'cmake not found. Fix: install cmake >= 3.18' });
    assert.match(withFix, /^torchgraph: setup failed: cmake not found\. Fix: install cmake >= 3\.18; then run `npx torchgraph setup`$/);
  });

  it('ran, and its torch is gone since', () => {
    assert.match(notSetUpMessage(false, { ok: true }, '/c'), /setup ran, but no libtorch is found now \(the cache \(\/c\) was cleaned/);
  });
});
