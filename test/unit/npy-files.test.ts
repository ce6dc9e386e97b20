// .npy files that are not what they say: only regular files are read, the size is bounded by the
// header, and every failure names the file (issue 14, case 2).
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { encodeNpy, MAX_NPY_BYTES, NpyError, parseNpy, readNpy } from '../../lib/torchscript/npy';
import { InputSpecError, parseInputSpec, readSpecFile } from '../../lib/app/cli/input-spec';

/** A .npy header (version 1.0) for a 1-d uint8 array of `n` elements, padded as numpy pads it. */
function uint8Header(n: number): Buffer {
  let h = `{'descr': '|u1', 'fortran_order': False, 'shape': (${n},), }`;
  h += ' '.repeat((64 - ((10 + h.length + 1) % 64)) % 64) + '\n';
  const out = Buffer.alloc(10 + h.length);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(out);
  out.writeUInt16LE(h.length, 8);
  out.write(h, 10, 'latin1');
  return out;
}

describe('.npy files that are not what they say', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-npy-files-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const fails = (file: string, why: RegExp) => {
    assert.throws(() => readNpy(file), (e: unknown) => e instanceof NpyError && e.message.startsWith(file) && why.test(e.message));
    // Through the CLI's reader: an InputSpecError (exit 2) that names the file.
    const spec = parseInputSpec(file) as Extract<ReturnType<typeof parseInputSpec>, { kind: 'npy' }>;
    assert.throws(() => readSpecFile(spec), (e: unknown) => e instanceof InputSpecError && e.code === 'ERR_INVALID_ARG' && e.message.includes(file));
  };

  it('a FIFO is refused at once (no hang), and so is a symlink to /dev/zero', () => {
    const fifo = path.join(dir, 'fifo.npy');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const t0 = Date.now();
    fails(fifo, /not a regular file/);
    assert.ok(Date.now() - t0 < 5000);
    const zero = path.join(dir, 'zero.npy');
    fs.symlinkSync('/dev/zero', zero);
    fails(zero, /not a regular file/);
  });

  it('a symlink loop, a missing file and a folder say what they are', () => {
    const loop = path.join(dir, 'loop.npy');
    fs.symlinkSync(loop, loop);
    fails(loop, /symlink loop/);
    fails(path.join(dir, 'missing.npy'), /not found/);
    fs.mkdirSync(path.join(dir, 'd.npy'));
    fails(path.join(dir, 'd.npy'), /folder/);
  });

  it('the size must be what the header says: truncated, padded, empty, a header past the end', () => {
    const good = encodeNpy({ shape: [4, 4], dtype: 'float32', data: new Float32Array(16) });
    const write = (name: string, b: Uint8Array) => { const f = path.join(dir, name); fs.writeFileSync(f, b); return f; };
    fails(write('short.npy', good.subarray(0, good.length - 3)), /expected 64 data bytes .* found 61/);
    fails(write('long.npy', Buffer.concat([good, Buffer.alloc(5)])), /expected 64 data bytes .* found 69/);
    fails(write('empty.npy', Buffer.alloc(0)), /bad magic/);
    fails(write('header-only.npy', good.subarray(0, 30)), /truncated \.npy header/);
    const v2 = Buffer.from(good);
    v2[6] = 2;
    v2.writeUInt32LE(0xfffffff0, 8);
    fails(write('huge-header.npy', v2), /implausible/);
    const v9 = Buffer.from(good);
    v9[6] = 9;
    fails(write('v9.npy', v9), /unsupported \.npy format version 9/);
  });

  it('reads a file over 2 GiB, and refuses one over the largest Buffer clearly', function () {
    this.timeout(300_000);
    // Sparse files: the holes read as zeros and take no disk.
    const big = path.join(dir, 'big.npy');
    const n = 2 ** 31 + 8;
    const header = uint8Header(n);
    assert.deepEqual(parseNpy(Buffer.concat([uint8Header(3), Buffer.from([1, 2, 3])])).shape, [3], 'the header helper writes a readable header');
    fs.writeFileSync(big, header);
    fs.truncateSync(big, header.length + n);
    fs.appendFileSync(big, Buffer.from([7])); // one byte too many first: refused by size
    fails(big, /found 2147483657/);
    fs.truncateSync(big, header.length + n - 1);
    fs.appendFileSync(big, Buffer.from([7]));
    {
      const a = readNpy(big);
      assert.deepEqual(a.shape, [n]);
      assert.equal(a.data.length, n);
      assert.equal(a.data[n - 1], 7);
      assert.equal(a.data[0], 0);
    }
    fs.rmSync(big);
    const huge = path.join(dir, 'huge.npy');
    const m = MAX_NPY_BYTES + 1;
    const h2 = uint8Header(m);
    fs.writeFileSync(huge, h2);
    fs.truncateSync(huge, h2.length + m);
    fails(huge, /is more than the \d+ one \.npy input may hold/);
  });
});
