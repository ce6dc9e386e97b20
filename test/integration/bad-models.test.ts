// Model files that do not load, made by torch (scripts/make_bad_inputs.py) and by the file
// system: every one is ERR_LOAD naming the file with what it is, and the CLI exits 2 with one
// line (issue 14, case 3).
import { strict as assert } from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TorchGraphError } from '../../lib/core/errors';
import { Module } from '../../lib/torchscript/module';
import { archiveKind, zipEntryNames } from '../../lib/torchscript/archive';
import { loadModel } from '../../lib/program/load-model';
import { main } from '../../lib/app/cli/main';
import type { CliIO } from '../../lib/app/cli/io';
import { ensureModel } from '../../lib/app/models';

const ROOT = path.resolve(__dirname, '..', '..');

describe('bad model files (issue 14)', function () {
  this.timeout(300_000);
  let dir: string;
  let good: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-bad-models-'));

    const py = require('../../scripts/libtorch.js').current().python;
    execFileSync(py.exe, [path.join(ROOT, 'scripts', 'make_bad_inputs.py'), dir], { env: { ...process.env, PYTHONPATH: py.pythonPath } });
    assert.equal(spawnSync('mkfifo', [path.join(dir, 'fifo.pt')]).status, 0);
    fs.symlinkSync(path.join(dir, 'loop.pt'), path.join(dir, 'loop.pt'));
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero.pt'));
    good = (await ensureModel('mha_demo')).variants.traced!;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cases: [string, RegExp][] = [
    ['custom_op.pt', /Unknown builtin op: mylib::twice.*custom op that is not registered/],
    ['bad_code.pt', /code\/ does not compile/],
    ['bad_data_pkl.pt', /data\.pkl is damaged/],
    ['no_data_pkl.pt', /a TorchScript archive without data\.pkl/],
    // libtorch loads these and a run would read past the record (a segfault, or garbage numbers).
    ['short_weight.pt', /its tensors need 60 bytes, its tensor records hold 20 \(the archive is damaged: a record was cut short\)/],
    ['short_constant.pt', /its tensors need 256 bytes, its tensor records hold 16 /],
    ['no_weight.pt', /failed locating file data\/\d+: file not found\. \(the archive is damaged: a tensor record is missing\)$/],
    // Module.load says what it is; the CLI loads it as a program (test/integration/program.test.ts).
    ['export.pt2', /a torch\.export program \(\.pt2\), not TorchScript: load it with loadModel\(\) or loadProgram\(\)/],
    ['state_dict.pt', /torch\.save\(\) checkpoint/],
    ['fifo.pt', /not a regular file/],
    ['zero.pt', /not a regular file/],
    ['loop.pt', /a symlink loop/],
  ];

  for (const [name, why] of cases) {
    it(`${name}: ERR_LOAD naming the file, and exit 2 with one line from the CLI`, async () => {
      const file = path.join(dir, name);
      await assert.rejects(Module.load(file), (e: unknown) => {
        assert.ok(e instanceof TorchGraphError, String(e));
        assert.equal(e.code, 'ERR_LOAD', e.message);
        assert.ok(e.message.startsWith(`cannot load '${file}'`), e.message);
        assert.match(e.message, why);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
      if (name.endsWith('.pt2')) return;
      let err = '';
      const io: CliIO = { stdout: () => {}, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false };
      const code = await main(['validate', file, '--input', '2x4'], io);
      assert.equal(code, 2, err);
      assert.equal(err.split('\n').filter(Boolean).length, 1, err);
      assert.ok(err.includes(name), err);
    });
  }

  it('.pt and .pt2 alike: empty, text and foreign zip files say what they are, in one line without libtorch\'s boilerplate', async () => {
    fs.writeFileSync(path.join(dir, 'empty.pt2'), '');
    fs.writeFileSync(path.join(dir, 'text.pt2'), 'this is not a model\n');
    const cases: [string, RegExp][] = [
      ['empty.pt2', /: the file is empty$/],
      ['text.pt2', /not a ZIP archive\. \(not a zip archive, or a truncated one\)$/],
      ['foreign_zip.pt', /: file in archive is not in a subdirectory: notes\.txt \(a zip archive, but not one torch wrote\)$/],
      ['foreign_zip.pt2', /\(a zip archive, but not one torch wrote\)$/],
    ];
    for (const [name, why] of cases) {
      await assert.rejects(loadModel(path.join(dir, name)), (e: unknown) => {
        assert.ok(e instanceof TorchGraphError && e.code === 'ERR_LOAD', String(e));
        assert.match(e.message, why);
        assert.doesNotMatch(e.message, /Could this error message be improved|internal miniz error|enforce fail|\n/);
        return true;
      });
    }
  });

  it('a FIFO named .pt2, or a FIFO that fails as TorchScript, is refused without blocking', async () => {
    const fifo = path.join(dir, 'fifo.pt2');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    for (const f of [fifo, path.join(dir, 'fifo.pt')]) {
      await assert.rejects(loadModel(f), (e: unknown) => e instanceof TorchGraphError && e.code === 'ERR_LOAD' && /not a regular file/.test(e.message));
    }
  });

  it('the archive listing tells the kinds apart (a good TorchScript file is one)', () => {
    assert.equal(archiveKind(good), 'torchscript');
    assert.equal(archiveKind(path.join(dir, 'export.pt2')), 'torch-export');
    assert.equal(archiveKind(path.join(dir, 'no_data_pkl.pt')), 'torchscript-no-data');
    assert.equal(archiveKind(path.join(dir, 'state_dict.pt')), 'torch-save');
    assert.equal(archiveKind(path.join(dir, 'fifo.pt')), 'not-zip');
    assert.ok(zipEntryNames(good)!.some((n) => n.endsWith('/data.pkl')));
  });

  it('library arguments: a NUL in the path, a device that is not a device', async () => {
    const invalid = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (e: unknown) => e instanceof TorchGraphError && e.code === 'ERR_INVALID_ARG' && re.test(e.message));
    await invalid(Module.load(`${good}\0junk`), /NUL/);
    await invalid(Module.load(good, { device: 123 as unknown as string }), /device must be/);
    await invalid(Module.load(good, { device: 'meta' }), /device must be/);
    await invalid(Module.load(good, null as unknown as object), /options must be an object/);
    await invalid(Module.load(42 as unknown as string), /non-empty string/);
  });
});
