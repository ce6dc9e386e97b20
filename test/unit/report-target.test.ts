// --report targets: only a regular file is ever replaced, bad targets are refused before any
// work, and a signal during the write leaves no temporary file (issue 14, case 1).
import { strict as assert } from 'assert';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkReportTarget, ReportPathError, writeFileAtomic } from '../../lib/report/write';

const ROOT = path.resolve(__dirname, '..', '..');

describe('report targets', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-target-')); });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const refused = (file: string, why: RegExp) => {
    assert.throws(() => checkReportTarget(file), (e: unknown) => e instanceof ReportPathError && e.code === 'ERR_INVALID_ARG' && why.test(e.message));
  };

  it("refuses '', a trailing slash, a folder, NUL and a missing folder", () => {
    refused('', /empty path/);
    refused(path.join(tmp, 'newdir') + '/', /names a folder/);
    refused(tmp, /is a folder/);
    refused(tmp + '/..', /names a folder/);
    refused(path.join(tmp, 'a\0b.html'), /NUL/);
    refused(path.join(tmp, 'nope', 'r.html'), /does not exist/);
    fs.writeFileSync(path.join(tmp, 'plain'), 'x');
    refused(path.join(tmp, 'plain', 'r.html'), /not a folder/);
    assert.deepEqual(fs.readdirSync(tmp), ['plain']);
  });

  it('never replaces a FIFO, a device or a symlink to one; refuses a symlink loop', async () => {
    const fifo = path.join(tmp, 'r.html');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    refused(fifo, /not a regular file/);
    await assert.rejects(() => writeFileAtomic(fifo, 'x'), /not a regular file/);
    assert.ok(fs.lstatSync(fifo).isFIFO(), 'the FIFO is still there');
    const toNull = path.join(tmp, 'null.html');
    fs.symlinkSync('/dev/null', toNull);
    refused(toNull, /not a regular file/);
    assert.ok(fs.lstatSync(toNull).isSymbolicLink());
    const loop = path.join(tmp, 'loop.html');
    fs.symlinkSync(loop, loop);
    refused(loop, /symlink loop/);
    fs.symlinkSync(path.join(tmp, 'missing.html'), path.join(tmp, 'dangling.html'));
    refused(path.join(tmp, 'dangling.html'), /symlink to nothing/);
  });

  it('a folder that takes no file (/proc) is a ReportPathError, not a raw ENOENT', async () => {
    await assert.rejects(() => writeFileAtomic('/proc/tg-report-test.html', 'x'),
      (e: unknown) => e instanceof ReportPathError && /cannot be written in \/proc \(|folder \/proc is not writable/.test(e.message));
  });

  it('writes through a symlink to a regular file: the link stays a link', async () => {
    const real = path.join(tmp, 'real.html');
    fs.writeFileSync(real, 'old');
    const link = path.join(tmp, 'link.html');
    fs.symlinkSync(real, link);
    assert.equal(checkReportTarget(link), fs.realpathSync(real));
    await writeFileAtomic(link, 'new');
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.equal(fs.readFileSync(real, 'utf8'), 'new');
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['link.html', 'real.html']);
  });

  it('SIGTERM during the write leaves no temporary file and no partial report', async function () {
    this.timeout(120_000);
    const file = path.join(tmp, 'r.html');
    fs.writeFileSync(file, 'old report');
    // 512 MiB in 1 MiB chunks: long enough to be interrupted while the temporary file grows.
    const script = 'require(\'./lib/report/write\').writeFileAtomic(process.argv[1], Buffer.alloc(512 << 20, 65)).then(() => console.log(\'finished\'))';
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', '-e', script, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += String(d); });
    const seen = await new Promise<boolean>((resolve) => {
      const t = setInterval(() => {
        if (fs.readdirSync(tmp).some((n) => n.endsWith('.tmp'))) { clearInterval(t); child.kill('SIGTERM'); resolve(true); }
      }, 2);
      child.on('exit', () => { clearInterval(t); resolve(false); });
    });
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve([child.exitCode, child.signalCode]);
      else child.on('exit', (c, s) => resolve([c, s]));
    });
    assert.ok(seen, `the temporary file was never seen (the write finished first: ${out.trim()})`);
    assert.equal(signal, 'SIGTERM', `ended by the signal (code ${code})`);
    assert.equal(out, '', 'the write did not finish');
    assert.deepEqual(fs.readdirSync(tmp), ['r.html']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old report');
  });
});

describe('validate --report is checked before the run', () => {
  it("'' , a trailing slash and a device are exit 2 with one line, nothing written", async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { main } = require('../../lib/app/cli/main') as typeof import('../../lib/app/cli/main');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-report-cli-'));
    try {
      // A file that is not one of our reports (the model itself, say) is never replaced; a path
      // that reads as an option is no path.
      const precious = path.join(dir, 'model.pt');
      fs.writeFileSync(precious, 'precious');
      for (const [arg, why] of [['', /empty path/], [path.join(dir, 'newdir') + '/', /names a folder/], ['/dev/full', /not a regular file/],
        [precious, /the file exists and is not a torchgraph report: it is never replaced/], ['-q', /looks like an option/]] as const) {
        let err = '';
        const t0 = Date.now();
        const code = await main(['validate', 'mha_demo', '--report', arg], { stdout: () => {}, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false });
        assert.equal(code, 2, err);
        assert.match(err, why);
        assert.equal(err.trim().split('\n').length, 1, err);
        assert.ok(Date.now() - t0 < 10_000, 'refused before the run');
      }
      assert.deepEqual(fs.readdirSync(dir), ['model.pt']);
      assert.equal(fs.readFileSync(precious, 'utf8'), 'precious');
      assert.ok(fs.statSync('/dev/full').isCharacterDevice());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
