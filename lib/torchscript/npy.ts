// A small reader and writer for NumPy .npy files (format versions 1.0, 2.0 and 3.0), for the
// dtypes the fixtures use: float32, float64, int64 (as BigInt64Array), int32, uint8 and bool (as
// Uint8Array holding 0/1). Either byte order is read; Fortran-order arrays are returned in C
// order. Files are written as version 1.0, little-endian, with the data 64-byte aligned, as numpy
// does.
//
// Why not an npm package: npyjs (the maintained one) reads from URLs with fetch, takes the whole
// ArrayBuffer of a Node Buffer (wrong for pooled Buffers), ignores byte order and fortran_order,
// needs aligned data offsets, does not tell bool from uint8 in its return type, and brings a
// fetch polyfill as a dependency.
import { numel } from '../core/ops/classes';
import * as buffer from 'buffer';
import * as fs from 'fs';
import * as os from 'os';

export type NpyDtype = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';
export type NpyData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** A dense C-order array. `data.length` is the product of `shape` (1 for shape []). */
export interface NpyArray<D extends NpyData = NpyData> {
  shape: number[];
  dtype: NpyDtype;
  data: D;
}

interface DtypeInfo {
  code: string; // numpy type code without byte order: f4, f8, i8, i4, u1, b1
  size: number;
  make(buf: ArrayBuffer, byteOffset: number, length: number): NpyData;
  alloc(length: number): NpyData;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { code: 'f4', size: 4, make: (b, o, n) => new Float32Array(b, o, n), alloc: (n) => new Float32Array(n) },
  float64: { code: 'f8', size: 8, make: (b, o, n) => new Float64Array(b, o, n), alloc: (n) => new Float64Array(n) },
  int64: { code: 'i8', size: 8, make: (b, o, n) => new BigInt64Array(b, o, n), alloc: (n) => new BigInt64Array(n) },
  int32: { code: 'i4', size: 4, make: (b, o, n) => new Int32Array(b, o, n), alloc: (n) => new Int32Array(n) },
  uint8: { code: 'u1', size: 1, make: (b, o, n) => new Uint8Array(b, o, n), alloc: (n) => new Uint8Array(n) },
  bool: { code: 'b1', size: 1, make: (b, o, n) => new Uint8Array(b, o, n), alloc: (n) => new Uint8Array(n) },
};

const BY_CODE = new Map<string, NpyDtype>(
  (Object.keys(DTYPES) as NpyDtype[]).map((d) => [DTYPES[d].code, d]),
);

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const HOST_LITTLE = os.endianness() === 'LE';

export class NpyError extends Error {
  override name = 'NpyError';
}

/** Number of elements of a shape (1 for a scalar, shape []). */
function parseHeader(header: string, where: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(header)?.[1];
  const fortranStr = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortranStr === undefined || shapeStr === undefined) {
    throw new NpyError(`${where}: malformed .npy header ${JSON.stringify(header.trim())}`);
  }
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(n) || n < 0) throw new NpyError(`${where}: bad dimension ${JSON.stringify(s)} in shape`);
    return n;
  });
  return { descr, fortran: fortranStr === 'True', shape };
}

function dtypeFromDescr(descr: string, where: string): { dtype: NpyDtype; swap: boolean } {
  const m = /^([<>|=]?)([a-z]\d+)$/.exec(descr);
  const dtype = m ? BY_CODE.get(m[2]) : undefined;
  if (!m || dtype === undefined) {
    throw new NpyError(`${where}: unsupported dtype '${descr}' (supported: ${[...BY_CODE.keys()].join(', ')})`);
  }
  const order = m[1];
  const little = order === '<' ? true : order === '>' ? false : HOST_LITTLE;
  return { dtype, swap: DTYPES[dtype].size > 1 && little !== HOST_LITTLE };
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** Fortran (column-major) element order to C (row-major) order. */
function fortranToC<D extends NpyData>(src: D, shape: number[], alloc: (n: number) => NpyData): D {
  const n = src.length;
  const rank = shape.length;
  if (rank <= 1 || n === 0) return src; // the same order
  // Walk C order with a counter; track the matching Fortran offset incrementally.
  const fStride = new Array<number>(rank);
  fStride[0] = 1;
  for (let k = 1; k < rank; k++) fStride[k] = fStride[k - 1] * shape[k - 1];
  const dst = alloc(n) as D;
  const idx = new Array<number>(rank).fill(0);
  let f = 0;
  for (let c = 0; c < n; c++) {
    (dst as unknown as Record<number, number | bigint>)[c] = (src as unknown as Record<number, number | bigint>)[f];
    for (let k = rank - 1; k >= 0; k--) {
      idx[k]++;
      f += fStride[k];
      if (idx[k] < shape[k]) break;
      f -= fStride[k] * shape[k];
      idx[k] = 0;
    }
  }
  return dst;
}

interface NpyLayout { dataStart: number; shape: number[]; dtype: NpyDtype; swap: boolean; fortran: boolean; nbytes: number }

/** The header of a .npy file: where the data starts and how many bytes it must hold. `bytes`
 * needs only the header, not the data. */
function readLayout(bytes: Uint8Array, where: string): NpyLayout {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new NpyError(`${where}: not a .npy file (bad magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyError(`${where}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new NpyError(`${where}: unsupported .npy format version ${major}.${bytes[7]}`);
  }
  const dataStart = headerStart + headerLen;
  if (bytes.length < dataStart) throw new NpyError(`${where}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const { descr, fortran, shape } = parseHeader(header, where);
  const { dtype, swap } = dtypeFromDescr(descr, where);
  const nbytes = numel(shape) * DTYPES[dtype].size;
  if (!Number.isSafeInteger(nbytes)) throw new NpyError(`${where}: shape (${shape.join(', ')}) is too large`);
  return { dataStart, shape, dtype, swap, fortran, nbytes };
}

/** Parse the bytes of a .npy file. The result may share memory with `bytes` (when aligned). */
export function parseNpy(bytes: Uint8Array, where = '<buffer>'): NpyArray {
  const { dataStart, shape, dtype, swap, fortran, nbytes } = readLayout(bytes, where);
  const info = DTYPES[dtype];
  const n = numel(shape);
  if (bytes.length - dataStart !== nbytes) {
    throw new NpyError(
      `${where}: expected ${nbytes} data bytes for shape (${shape.join(', ')}) ${dtype}, found ${bytes.length - dataStart}`);
  }
  let data: NpyData;
  const abs = bytes.byteOffset + dataStart;
  if (!swap && abs % info.size === 0) {
    data = info.make(bytes.buffer as ArrayBuffer, abs, n);
  } else {
    const copy = new Uint8Array(nbytes); // not bytes.slice(): Buffer#slice makes a view, not a copy
    copy.set(bytes.subarray(dataStart, dataStart + nbytes));
    if (swap) swapBytes(copy, info.size);
    data = info.make(copy.buffer, 0, n);
  }
  if (fortran) data = fortranToC(data, shape, info.alloc);
  return { shape, dtype, data };
}

/** Most bytes one .npy file may hold: the largest Buffer (4 GiB on 64-bit Node). */
export const MAX_NPY_BYTES = buffer.constants.MAX_LENGTH;
const MAX_HEADER_BYTES = 1 << 20; // numpy writes a few hundred bytes
const READ_CHUNK = 1 << 30; // read(2) moves at most about 2 GiB per call

function openError(path: string, e: unknown): NpyError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'not found' : code === 'ELOOP' ? 'a symlink loop' : code === 'EACCES' ? 'permission denied'
    : code === 'ENOTDIR' ? 'a parent of it is not a folder' : `cannot open (${code ?? String(e)})`;
  return new NpyError(`${path}: ${why}`);
}

/** `n` bytes at `pos`, or fewer where the file ends. */
function readAt(fd: number, n: number, pos: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let got = 0;
  while (got < n) {
    const r = fs.readSync(fd, out, got, Math.min(READ_CHUNK, n - got), pos + got);
    if (r === 0) break;
    got += r;
  }
  return got === n ? out : out.subarray(0, got);
}

/** Open a .npy file and check it against its header (regular file, size as the header says)
 * without reading the data; `use` gets the open fd and the layout. */
function withNpyFile<T>(path: string, use: (fd: number, layout: NpyLayout, size: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw openError(path, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new NpyError(`${path}: is a folder, not a .npy file`);
    if (!st.isFile()) throw new NpyError(`${path}: not a regular file (a FIFO, device or socket); only regular .npy files are read`);
    const pre = readAt(fd, Math.min(st.size, 12), 0);
    if (pre.length < 12 || ![1, 2, 3].includes(pre[6])) readLayout(pre, path); // throws: bad magic, version or length
    const headerEnd = pre[6] === 1 ? 10 + pre.readUInt16LE(8) : 12 + pre.readUInt32LE(8);
    if (headerEnd > MAX_HEADER_BYTES) {
      throw new NpyError(`${path}: a .npy header of ${headerEnd} bytes is implausible (at most ${MAX_HEADER_BYTES})`);
    }
    const layout = readLayout(readAt(fd, Math.min(st.size, headerEnd), 0), path);
    if (st.size !== layout.dataStart + layout.nbytes) {
      throw new NpyError(`${path}: expected ${layout.nbytes} data bytes for shape (${layout.shape.join(', ')}) ${layout.dtype}, `
        + `found ${st.size - layout.dataStart}`);
    }
    return use(fd, layout, st.size);
  } catch (e) {
    if (e instanceof NpyError) throw e;
    throw new NpyError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The shape and dtype of a .npy file, checked as readNpy checks it, without reading the data. */
export function statNpy(path: string): { shape: number[]; dtype: NpyDtype } {
  return withNpyFile(path, (_fd, layout) => ({ shape: layout.shape, dtype: layout.dtype }));
}

/**
 * Read a .npy file synchronously. Only a regular file is read (a FIFO, a device such as
 * /dev/zero or a folder is refused before any data is read: it is opened non-blocking and
 * checked with fstat), and its size must be what the header says, so nothing unbounded is read.
 * Every failure is an NpyError naming the file.
 */
export function readNpy(path: string): NpyArray {
  return withNpyFile(path, (fd, _layout, size) => {
    if (size > MAX_NPY_BYTES) throw new NpyError(`${path}: ${size} bytes is more than the ${MAX_NPY_BYTES} one .npy input may hold`);
    const bytes = readAt(fd, size, 0);
    if (bytes.length !== size) throw new NpyError(`${path}: the file shrank while it was read`);
    return parseNpy(bytes, path);
  });
}

const ARRAY_TYPES: Record<NpyDtype, new (n: number) => NpyData> = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array,
};

/** Encode an array as a version 1.0 .npy file (little-endian descr on little-endian hosts). */
export function encodeNpy(arr: NpyArray): Buffer {
  const info = DTYPES[arr.dtype];
  if (!info) throw new NpyError(`encodeNpy: unsupported dtype ${String(arr.dtype)}`);
  const want = ARRAY_TYPES[arr.dtype];
  if (!(arr.data instanceof want)) {
    throw new NpyError(`encodeNpy: dtype ${arr.dtype} needs a ${want.name} but got ${arr.data.constructor.name}`);
  }
  for (const d of arr.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new NpyError(`encodeNpy: bad dimension ${d}`);
  }
  if (numel(arr.shape) !== arr.data.length) {
    throw new NpyError(`encodeNpy: shape (${arr.shape.join(', ')}) holds ${numel(arr.shape)} elements, data has ${arr.data.length}`);
  }
  if (arr.dtype === 'bool' && (arr.data as Uint8Array).some((v) => v !== 0 && v !== 1)) {
    throw new NpyError('encodeNpy: bool data must hold only 0 and 1');
  }
  const order = info.size === 1 ? '|' : HOST_LITTLE ? '<' : '>';
  const shapeStr = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(', ')})`;
  let header = `{'descr': '${order}${info.code}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new NpyError('encodeNpy: header too long for format 1.0');
  const out = Buffer.alloc(10 + header.length + arr.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  out.set(new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength), 10 + header.length);
  return out;
}

/** Write a .npy file synchronously. */
export function writeNpy(path: string, arr: NpyArray): void {
  fs.writeFileSync(path, encodeNpy(arr));
}
