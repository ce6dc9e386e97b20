// --quiet: nothing on stderr but errors, for every command that reports progress; without it
// and without a terminal, progress is plain lines (CI logs).
import { strict as assert } from 'assert';
import { runCli } from '../support/cli';

describe('cli --quiet', function () {
  this.timeout(300_000);
  it('bench: one line per case without a terminal, nothing with --quiet', () => {
    const loud = runCli(['bench', 'mha_demo', '--repeat', '1', '--warmup', '0']);
    assert.ok(loud.code === 0 || loud.code === 1, loud.err);
    assert.match(loud.err, /^bench: mha_demo$/m);
    const quiet = runCli(['bench', 'mha_demo', '--repeat', '1', '--warmup', '0', '--quiet']);
    assert.ok(quiet.code === 0 || quiet.code === 1, quiet.err);
    assert.equal(quiet.err, '');
  });

  it('validate and inspect: nothing on stderr with --quiet, the output unchanged', () => {
    const v = runCli(['validate', 'mha_demo', '--quiet']);
    assert.equal(v.code, 0, v.err);
    assert.equal(v.err, '');
    assert.match(v.out, /Result: PASSED/);
    const i = runCli(['inspect', 'mha_demo', '--quiet']);
    assert.equal(i.code, 0, i.err);
    assert.equal(i.err, '');
  });
});
