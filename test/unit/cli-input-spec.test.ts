import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { canonicalSpec, describeSpec, InputSpecError, inputSeed, parseInputSpec, readSpecFile } from '../../lib/app/cli/input-spec';
import { TorchGraphError } from '../../lib/core/errors';
import { writeNpy } from '../../lib/torchscript/npy';

describe('cli: --input SPEC parsing', () => {
  const good: [string, number[], string][] = [
    ['1x3x224x224', [1, 3, 224, 224], 'float32'],
    ['2x7x64:float64', [2, 7, 64], 'float64'],
    ['3x9:bool', [3, 9], 'bool'],
    ['4x16:int64', [4, 16], 'int64'],
    ['5:int32', [5], 'int32'],
    ['2X3:uint8', [2, 3], 'uint8'],
    [' 2x3 ', [2, 3], 'float32'],
    ['2x3:double', [2, 3], 'float64'],
    ['2x3:long', [2, 3], 'int64'],
    ['2x3:FLOAT32', [2, 3], 'float32'],
  ];
  for (const [text, shape, dtype] of good) {
    it(`parses ${JSON.stringify(text)}`, () => {
      const s = parseInputSpec(text);
      assert.equal(s.kind, 'random');
      if (s.kind !== 'random') return;
      assert.deepEqual(s.shape, shape);
      assert.equal(s.dtype, dtype);
    });
  }

  const fills: [string, number[], string, unknown][] = [
    ['2x128:int64:ones', [2, 128], 'int64', { kind: 'ones' }],
    ['2x128:int64:zeros', [2, 128], 'int64', { kind: 'zeros' }],
    ['2x128:int64:0..30522', [2, 128], 'int64', { kind: 'range', low: 0, high: 30522 }],
    ['2x128:long:-5..5', [2, 128], 'int64', { kind: 'range', low: -5, high: 5 }],
    ['2x3:uint8:0..256', [2, 3], 'uint8', { kind: 'range', low: 0, high: 256 }],
    ['2x3:ones', [2, 3], 'float32', { kind: 'ones' }],
    ['2x3:float64:ZEROS', [2, 3], 'float64', { kind: 'zeros' }],
    ['2x3:float32:-1..0.5', [2, 3], 'float32', { kind: 'range', low: -1, high: 0.5 }],
    ['2x3:-1..1', [2, 3], 'float32', { kind: 'range', low: -1, high: 1 }],
    ['3x9:bool:ones', [3, 9], 'bool', { kind: 'ones' }],
  ];
  for (const [text, shape, dtype, fill] of fills) {
    it(`parses the fill of ${JSON.stringify(text)}`, () => {
      const s = parseInputSpec(text);
      assert.ok(s.kind === 'random');
      assert.deepEqual([s.shape, s.dtype, s.fill], [shape, dtype, fill]);
      // Written out in full and read back, it is the same spec (what export passes to Python).
      const again = parseInputSpec(canonicalSpec(s));
      assert.ok(again.kind === 'random');
      assert.deepEqual([again.shape, again.dtype, again.fill], [shape, dtype, fill]);
    });
  }

  it('has no fill unless one is given', () => {
    const s = parseInputSpec('2x3:int64');
    assert.ok(s.kind === 'random' && !('fill' in s));
    assert.equal(canonicalSpec(s as Extract<typeof s, { kind: 'random' }>), '2x3:int64');
  });

  it('takes .npy paths and anything with a slash as files', () => {
    for (const p of ['x.npy', './data/x.npy', '/abs/in.NPY', 'dir/x.npy']) {
      const s = parseInputSpec(p);
      assert.equal(s.kind, 'npy', p);
      assert.equal(s.kind === 'npy' && s.path, p);
    }
  });

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['1x3x', /dimension 3 is empty/],
    ['x3', /dimension 1 is empty/],
    ['1x0x3', /dimension 2 is 0/],
    ['1x-3', /dimension 2 is "-3": dimensions must be positive integers/],
    ['1.5x3', /dimension 1 is "1.5"/],
    ['1x3:float16', /unknown dtype "float16" \(one of float32, float64, int64, int32, uint8, bool\)/],
    // Names every object has are no aliases (they read as functions and objects from a plain lookup).
    ['1x3:constructor', /unknown dtype "constructor"/],
    ['1x3:__proto__', /unknown dtype "__proto__"/],
    ['1x3:', /missing dtype after ':'/],
    ['1x3:int64:bool', /unknown fill "bool" \(ones, zeros or LOW\.\.HIGH/],
    ['1x3:int64:ones:2', /more than two ':'/],
    ['1x3:int64:', /missing fill after 'int64:'/],
    ['1x3:ones:int64', /the dtype comes before the fill: SHAPE:DTYPE:FILL \(e\.g\. 2x128:int64:ones\)/],
    ['2x3:int64:5..5', /range 5\.\.5 is empty: LOW\.\.HIGH draws from \[LOW, HIGH\)/],
    ['2x3:int64:9..1', /range 9\.\.1 is empty/],
    ['2x3:int64:0..1.5', /int64 takes integer bounds/],
    ['2x3:uint8:0..300', /range 0\.\.300 does not fit uint8/],
    ['2x3:int32:0..3000000000', /does not fit int32/],
    ['2x3:bool:0..2', /a bool input takes ones or zeros, not a range/],
    ['2x3:int64:0...9', /unknown fill "0\.\.\.9"/],
    ['2x3:int64:a..b', /unknown fill "a\.\.b"/],
    ['1,3,224,224', /separate dimensions with 'x'/],
    ['abc', /expected a shape like 1x3x224x224/],
    ['1x3x224x224x9999999', /elements is more than/],
    ['data/x.pt', /must name a \.npy file/],
    ['99999999999999999999x2', /too large/],
  ];
  for (const [text, re] of bad) {
    it(`rejects ${JSON.stringify(text)} with a precise message`, () => {
      assert.throws(() => parseInputSpec(text), (e: unknown) => {
        assert.ok(e instanceof InputSpecError, String(e));
        assert.ok(e instanceof TorchGraphError);
        assert.equal((e as TorchGraphError).code, 'ERR_INVALID_ARG');
        assert.match((e as Error).message, new RegExp(`^bad input spec ${escapeRe(JSON.stringify(text))}: `));
        assert.match((e as Error).message, re);
        assert.ok(!(e as Error).message.includes('\n'), 'one line');
        return true;
      });
    });
  }

  it('gives each input its own seed and describes where data comes from', () => {
    assert.equal(inputSeed(7, 0), 7);
    assert.equal(inputSeed(7, 2), 9);
    assert.equal(describeSpec(parseInputSpec('2x3'), 7, 1), 'random normal (seed 8)');
    assert.equal(describeSpec(parseInputSpec('2x3:bool'), 0, 0), 'random bools (seed 0)');
    assert.equal(describeSpec(parseInputSpec('2x3:int64'), 0, 0), 'random integers 0..9 (seed 0)');
    assert.equal(describeSpec(parseInputSpec('a/b.npy'), 0, 0), 'file a/b.npy');
    assert.equal(describeSpec(parseInputSpec('2x3:int64:ones'), 0, 0), 'ones');
    assert.equal(describeSpec(parseInputSpec('2x3:zeros'), 0, 0), 'zeros');
    assert.equal(describeSpec(parseInputSpec('2x3:int64:0..1000'), 5, 1), 'random integers in [0, 1000) (seed 6)');
    assert.equal(describeSpec(parseInputSpec('2x3:-1..1'), 0, 0), 'random uniform in [-1, 1) (seed 0)');
  });

  describe('.npy files', () => {
    let dir: string;
    before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-spec-')); });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reads a good file', () => {
      const f = path.join(dir, 'x.npy');
      writeNpy(f, { shape: [2, 3], dtype: 'float32', data: new Float32Array([1, 2, 3, 4, 5, 6]) });
      const s = parseInputSpec(f);
      assert.equal(s.kind, 'npy');
      const a = readSpecFile(s as Extract<typeof s, { kind: 'npy' }>);
      assert.deepEqual(a.shape, [2, 3]);
      assert.equal(a.dtype, 'float32');
    });

    it('says so for a missing file, a folder, and a file that is not .npy', () => {
      const read = (p: string) => readSpecFile(parseInputSpec(p) as { kind: 'npy'; text: string; path: string });
      assert.throws(() => read(path.join(dir, 'missing.npy')), /^InputSpecError: input file not found: .*missing\.npy$/);
      fs.mkdirSync(path.join(dir, 'folder.npy'));
      assert.throws(() => read(path.join(dir, 'folder.npy')), /is a folder, not a \.npy file/);
      fs.writeFileSync(path.join(dir, 'junk.npy'), 'not numpy');
      assert.throws(() => read(path.join(dir, 'junk.npy')), (e: unknown) => e instanceof InputSpecError && /not a \.npy file \(bad magic\)/.test((e as Error).message));
    });
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
