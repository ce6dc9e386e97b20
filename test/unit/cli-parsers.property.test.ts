// Property tests of the CLI's parsers (issue 14): on any string, an input spec, a seed, a device
// or a tolerance is either taken or refused as bad usage (exit 2, one line); nothing throws
// anything else (test/integration/cli-property.test.ts runs the whole CLI).
import { strict as assert } from 'assert';
import { InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { textish } from '../support/user-strings';
import { EXIT_USAGE, exitCodeFor } from '../../lib/app/cli/errors';
import { InputSpecError, parseInputSpec } from '../../lib/app/cli/input-spec';
import { MAX_SEED, parseDevice, parseSeed, parseTolerance } from '../../lib/app/cli/main';

function taken<T>(f: () => T, refused: (e: unknown) => boolean): void {
  try {
    f();
  } catch (e) {
    assert.ok(refused(e), `unexpected ${String((e as Error)?.stack ?? e)}`);
  }
}

describe('CLI parsers on any string', () => {
  it('parseInputSpec: a spec or an InputSpecError (exit 2)', () => {
    fc.assert(fc.property(textish, (s) => {
      taken(() => {
        const spec = parseInputSpec(s);
        if (spec.kind === 'random') assert.ok(spec.shape.every((d) => Number.isSafeInteger(d) && d > 0));
      }, (e) => e instanceof InputSpecError && exitCodeFor(e) === EXIT_USAGE && !e.message.includes('\n'));
    }), { numRuns: 3000 });
  });

  it('seeds, devices and tolerances: a value in range or an InvalidArgumentError', () => {
    fc.assert(fc.property(textish, (s) => {
      const usage = (e: unknown) => e instanceof InvalidArgumentError;
      taken(() => { const n = parseSeed(s); assert.ok(Number.isInteger(n) && n >= 0 && n <= MAX_SEED); }, usage);
      taken(() => assert.match(parseDevice(s), /^(cpu|cuda(:\d+)?)$/), usage);
      taken(() => { const x = parseTolerance(s); assert.ok(Number.isFinite(x) && x >= 0); }, usage);
    }), { numRuns: 3000 });
    assert.equal(parseSeed('4294967295'), MAX_SEED);
    assert.throws(() => parseSeed('4294967296'), InvalidArgumentError);
  });
});
