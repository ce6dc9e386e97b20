import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { encodeNpy, parseNpy, readNpy, writeNpy, NpyArray, NpyError } from '../../lib/torchscript/npy';

// Files written by numpy 2.4 (np.save), base64: the reader must accept numpy's own output,
// including big-endian and Fortran-order arrays, and the writer must reproduce it byte for byte.
const NUMPY = {
  // np.array([[0, -1, 2**62], [-(2**63), 5, 2**53 + 1]], dtype='<i8')
  i8: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAP//////////AAAAAAAAAEAAAAAAAAAAgAUAAAAAAAAAAQAAAAAAIAA=',
  // np.asfortranarray(np.arange(24, dtype='<f4').reshape(2, 3, 4))
  f4Fortran: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAABAQQAAgEAAAIBBAAAAQQAAoEEAAIA/AABQQQAAoEAAAIhBAAAQQQAAqEEAAABAAABgQQAAwEAAAJBBAAAgQQAAsEEAAEBAAABwQQAA4EAAAJhBAAAwQQAAuEE=',
  // np.array([1.5, -2.25, 1e300], dtype='>f8')
  f8BigEndian: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPmY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo/+AAAAAAAAMACAAAAAAAAfjfkPIgAdZw=',
  // np.array([[True, False, True], [False, False, True]])
  b1: 'k05VTVBZAQB2AHsnZGVzY3InOiAnfGIxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAEAAAE=',
  // np.array([1, -2, 70000], dtype='>i4')
  i4BigEndian: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPmk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAB/////gABEXA=',
  // np.float32(3.5): a 0-d array
  scalar: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAGBA',
  // np.array([0, 255, 7], dtype=np.uint8)
  u1: 'k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoA/wc=',
};

function fromNumpy(b64: string): NpyArray {
  return parseNpy(Buffer.from(b64, 'base64'));
}

function roundTrip(arr: NpyArray): NpyArray {
  const bytes = encodeNpy(arr);
  assert.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const headerLen = bytes.readUInt16LE(8);
  assert.equal((10 + headerLen) % 64, 0, 'data must start 64-byte aligned');
  return parseNpy(bytes);
}

describe('npy', () => {
  const cases: NpyArray[] = [
    { dtype: 'float32', shape: [2, 3], data: new Float32Array([0, -1.5, 3.25, Infinity, -Infinity, 1e-30]) },
    { dtype: 'float64', shape: [3], data: new Float64Array([Math.PI, -0, 1e300]) },
    { dtype: 'int64', shape: [2, 2], data: new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n]) },
    { dtype: 'int32', shape: [1, 3, 1], data: new Int32Array([2147483647, -2147483648, 7]) },
    { dtype: 'uint8', shape: [4], data: new Uint8Array([0, 1, 128, 255]) },
    { dtype: 'bool', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) },
  ];
  for (const c of cases) {
    it(`round-trips ${c.dtype} ${JSON.stringify(c.shape)}`, () => {
      const back = roundTrip(c);
      assert.equal(back.dtype, c.dtype);
      assert.deepEqual(back.shape, c.shape);
      assert.equal(back.data.constructor, c.data.constructor);
      assert.deepEqual(Array.from(back.data as ArrayLike<number | bigint>), Array.from(c.data as ArrayLike<number | bigint>));
    });
  }

  it('keeps NaN and negative zero bit for bit', () => {
    const back = roundTrip({ dtype: 'float32', shape: [2], data: new Float32Array([NaN, -0]) });
    const data = back.data as Float32Array;
    assert.ok(Number.isNaN(data[0]));
    assert.ok(Object.is(data[1], -0));
  });

  it('round-trips scalars, empty arrays and zero-size dimensions', () => {
    for (const shape of [[], [0], [3, 0, 2]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const back = roundTrip({ dtype: 'float64', shape, data: new Float64Array(n).fill(2) });
      assert.deepEqual(back.shape, shape);
      assert.equal(back.data.length, n);
    }
  });

  it('reads and writes files, including large ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'npy-test-'));
    try {
      const data = new Float32Array(1 << 20).map((_, i) => i * 0.5);
      const file = path.join(dir, 'big.npy');
      writeNpy(file, { dtype: 'float32', shape: [1024, 1024], data });
      const back = readNpy(file);
      assert.deepEqual(back.shape, [1024, 1024]);
      assert.equal((back.data as Float32Array)[12345], 12345 * 0.5);
      // Small files may come back in a pooled Buffer: offsets must still be right.
      const small = path.join(dir, 'small.npy');
      writeNpy(small, { dtype: 'int64', shape: [3], data: new BigInt64Array([1n, 2n, 3n]) });
      assert.deepEqual(Array.from(readNpy(small).data as BigInt64Array), [1n, 2n, 3n]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads misaligned data (a copy is made)', () => {
    const bytes = encodeNpy({ dtype: 'float64', shape: [2], data: new Float64Array([1.25, -8]) });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const back = parseNpy(shifted.subarray(3));
    assert.deepEqual(Array.from(back.data as Float64Array), [1.25, -8]);
  });

  describe('interoperates with numpy', () => {
    it('int64 as BigInt64Array, byte-identical when re-encoded', () => {
      const a = fromNumpy(NUMPY.i8);
      assert.equal(a.dtype, 'int64');
      assert.deepEqual(a.shape, [2, 3]);
      assert.ok(a.data instanceof BigInt64Array);
      assert.deepEqual(Array.from(a.data as BigInt64Array), [0n, -1n, 2n ** 62n, -(2n ** 63n), 5n, 2n ** 53n + 1n]);
      assert.ok(encodeNpy(a).equals(Buffer.from(NUMPY.i8, 'base64')));
    });

    it('Fortran order comes back in C order', () => {
      const a = fromNumpy(NUMPY.f4Fortran);
      assert.deepEqual(a.shape, [2, 3, 4]);
      assert.deepEqual(Array.from(a.data as Float32Array), Array.from({ length: 24 }, (_, i) => i));
    });

    it('big-endian float64 and int32', () => {
      assert.deepEqual(Array.from(fromNumpy(NUMPY.f8BigEndian).data as Float64Array), [1.5, -2.25, 1e300]);
      const i = fromNumpy(NUMPY.i4BigEndian);
      assert.equal(i.dtype, 'int32');
      assert.deepEqual(Array.from(i.data as Int32Array), [1, -2, 70000]);
    });

    it('bool, uint8 and 0-d arrays', () => {
      const b = fromNumpy(NUMPY.b1);
      assert.equal(b.dtype, 'bool');
      assert.ok(b.data instanceof Uint8Array);
      assert.deepEqual(Array.from(b.data as Uint8Array), [1, 0, 1, 0, 0, 1]);
      assert.ok(encodeNpy(b).equals(Buffer.from(NUMPY.b1, 'base64')));
      const u = fromNumpy(NUMPY.u1);
      assert.equal(u.dtype, 'uint8');
      assert.deepEqual(Array.from(u.data as Uint8Array), [0, 255, 7]);
      const s = fromNumpy(NUMPY.scalar);
      assert.deepEqual(s.shape, []);
      assert.deepEqual(Array.from(s.data as Float32Array), [3.5]);
    });
  });

  describe('rejects bad input clearly', () => {
    it('bad magic, truncated data, unsupported dtype', () => {
      assert.throws(() => parseNpy(Buffer.from('hello world, not npy')), NpyError);
      const good = encodeNpy({ dtype: 'int32', shape: [4], data: new Int32Array(4) });
      assert.throws(() => parseNpy(good.subarray(0, good.length - 1)), /expected 16 data bytes/);
      const f16 = Buffer.from(good);
      f16.write("'<f2'", f16.indexOf("'<i4'"), 'latin1');
      assert.throws(() => parseNpy(f16), /unsupported dtype '<f2'/);
    });

    it('mismatched data type or element count on write', () => {
      assert.throws(() => encodeNpy({ dtype: 'int64', shape: [2], data: new Int32Array(2) }), /needs a BigInt64Array/);
      assert.throws(() => encodeNpy({ dtype: 'float32', shape: [3], data: new Float32Array(2) }), /holds 3 elements/);
      assert.throws(() => encodeNpy({ dtype: 'bool', shape: [1], data: new Uint8Array([2]) }), /only 0 and 1/);
    });
  });
});
