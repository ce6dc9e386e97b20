// What kind of PyTorch zip archive a file is, from the names in its zip central directory: a
// TorchScript archive (torch.jit.save), a torch.export program (torch.export.save, .pt2), a
// torch.save() checkpoint. Used to say what a file that does not load is, and to check cached
// fixtures before the addon loads (lib/app/cache-check.ts), so it is synchronous and pure JS;
// the .pt2 reader (lib/program/archive.ts) reads records with libtorch's own zip reader.
//
// Why not an npm zip reader (yauzl, adm-zip): only the entry names are needed, never the data;
// the central directory is a fixed record layout (PKWARE APPNOTE 4.3.12, 4.3.14-16) read here
// in one pass, with zip64 for archives over 4 GiB, synchronously and without a dependency.
import * as fs from 'fs';

export type ArchiveKind =
  | 'torchscript'          // code/ and constants.pkl and data.pkl
  | 'torchscript-no-data'  // a TorchScript archive without data.pkl (damaged or incomplete)
  | 'torch-export'         // a torch.export program: <name>/archive_format, <name>/models/*.json
  | 'torch-save'           // data.pkl without code/: a torch.save() checkpoint
  | 'zip'                  // some other zip archive
  | 'not-zip';             // no zip central directory (not a zip, or truncated)

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const MAX_DIRECTORY_BYTES = 64 << 20;

function readAt(fd: number, pos: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  const got = fs.readSync(fd, b, 0, n, pos);
  return b.subarray(0, got);
}

/** Where the central directory is, from the end-of-central-directory record (and zip64's). */
function findDirectory(fd: number, size: number): { offset: number; bytes: number } | undefined {
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = readAt(fd, size - tailLen, tailLen);
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== EOCD) continue;
    let bytes = tail.readUInt32LE(i + 12);
    let offset = tail.readUInt32LE(i + 16);
    if ((bytes === 0xffffffff || offset === 0xffffffff) && i >= 20 && tail.readUInt32LE(i - 20) === ZIP64_LOCATOR) {
      const rec = readAt(fd, Number(tail.readBigUInt64LE(i - 20 + 8)), 56);
      if (rec.length < 56 || rec.readUInt32LE(0) !== ZIP64_EOCD) return undefined;
      bytes = Number(rec.readBigUInt64LE(40));
      offset = Number(rec.readBigUInt64LE(48));
    }
    return offset + bytes <= size && bytes <= MAX_DIRECTORY_BYTES ? { offset, bytes } : undefined;
  }
  return undefined;
}

/** The names of a zip archive's entries, or undefined when `file` is not a readable zip. Reads
 * only regular files (a FIFO or a device is not opened for reading data). */
export function zipEntryNames(file: string): string[] | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size < 22) return undefined;
    const dir = findDirectory(fd, st.size);
    if (!dir) return undefined;
    const cd = readAt(fd, dir.offset, dir.bytes);
    const names: string[] = [];
    for (let p = 0; p + 46 <= cd.length && cd.readUInt32LE(p) === CENTRAL;) {
      const nameLen = cd.readUInt16LE(p + 28);
      names.push(cd.toString('utf8', p + 46, Math.min(cd.length, p + 46 + nameLen)));
      p += 46 + nameLen + cd.readUInt16LE(p + 30) + cd.readUInt16LE(p + 32);
    }
    return names;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** A torch.export program (torch.export.save's .pt2 archive), from its entry names. */
export function isTorchExportArchive(names: readonly string[]): boolean {
  return names.some((n) => /^[^/]+\/archive_format$/.test(n) || /^[^/]+\/models\/[^/]+\.json$/.test(n));
}

/** What kind of archive `file` is, from its entry names (see ArchiveKind). */
export function archiveKind(file: string): ArchiveKind {
  const names = zipEntryNames(file);
  if (!names) return 'not-zip';
  if (isTorchExportArchive(names)) return 'torch-export';
  // PyTorch archives keep every record under one top-level folder: <name>/code/..., <name>/data.pkl.
  const has = (re: RegExp) => names.some((n) => re.test(n));
  const data = has(/^[^/]+\/data\.pkl$/);
  const script = has(/^[^/]+\/code\//) || has(/^[^/]+\/constants\.pkl$/);
  if (script) return data ? 'torchscript' : 'torchscript-no-data';
  return data ? 'torch-save' : 'zip';
}

/** A sentence on what `file` is, for a load failure, when its archive kind says more than
 * libtorch did; undefined otherwise. */
export function describeLoadFailure(file: string): string | undefined {
  switch (archiveKind(file)) {
    case 'torch-export':
      return 'a torch.export program (.pt2), not TorchScript: load it with loadModel() or loadProgram() (the CLI does), ' +
        'or save TorchScript with torch.jit.save(torch.jit.trace(model, example_inputs), "model.pt")';
    case 'torchscript-no-data':
      return 'a TorchScript archive without data.pkl (the module\'s state): the file is damaged or incomplete; '
        + 'save it again with torch.jit.save';
    default:
      return undefined;
  }
}
