// The CLI shell: argument parsing, help, version, and exit codes. In-process through main() with
// captured output, plus a few real child processes (the bin as users run it, under tsx).
import { strict as assert } from 'assert';
import { runCli, oneLine, ROOT, CLI_MAIN, type CliResult } from '../support/cli';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../../lib/app/cli/main';
import type { CliIO } from '../../lib/app/cli/io';
import { EXIT_INTERNAL, EXIT_USAGE, formatError, exitCodeFor, CliError } from '../../lib/app/cli/errors';
import { TorchGraphError } from '../../lib/core/errors';
import { Command } from 'commander';
import { LOWERINGS } from '../../lib/fusion/lowerings';
import { addLoweringOptions, loweringFlag, loweringSwitches } from '../../lib/app/cli/lowering-options';

const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false };
  const code = await main(argv, io);
  return { code, out, err };
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  return runCli(args, { env, timeoutMs: 60_000 });
}

describe('cli: parsing and exit codes', () => {
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-cli-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--version prints the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await run([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.out.trim(), PKG.version);
    }
  });

  it('--help lists the commands and the exit codes', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const w of ['validate', 'inspect', 'bench', 'Exit codes', '--version']) assert.ok(r.out.includes(w), w);
    assert.equal(r.err, '');
  });

  for (const cmd of ['validate', 'inspect', 'bench']) {
    it(`${cmd} --help describes its options`, async () => {
      const r = await run([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`Usage: torchgraph ${cmd}`));
      assert.match(r.out, /Exit codes:/);
    });
  }

  for (const cmd of ['validate', 'inspect', 'optimize', 'bench']) {
    it(`${cmd} --help lists a --no-NAME switch for every lowering of the table, with its default`, async () => {
      const r = await run([cmd, '--help']);
      assert.equal(r.code, 0);
      const flat = r.out.replace(/\s+/g, ' ');
      assert.match(flat, /Lowerings \(on by default where each says; --no-NAME switches one off\):/);
      for (const l of LOWERINGS) {
        assert.ok(flat.includes(`${loweringFlag(l.name)} switch off: `), `${cmd}: ${loweringFlag(l.name)}`);
        assert.ok(flat.includes(`(on by default: ${l.when}`), `${cmd}: ${l.name} default`);
      }
    });
  }

  it('lowering switches: the flags given, and only those, are off', () => {
    assert.equal(loweringFlag('foldBatchNorms'), '--no-fold-batch-norms');
    assert.equal(loweringFlag('inPlace'), '--no-in-place');
    const parse = (argv: string[]) => {
      const c = addLoweringOptions(new Command('t').exitOverride());
      c.parse(argv, { from: 'user' });
      return loweringSwitches(c);
    };
    // Not given: left to each lowering's default (concatenateProjections is off on CPU).
    assert.deepEqual(parse([]), {});
    assert.deepEqual(parse(['--no-in-place', '--no-packed-linears']), { inPlace: false, packedLinears: false });
    assert.throws(() => parse(['--no-such-lowering']), /unknown option/);
  });

  it('inspect takes the inputs as validate does: -i and NAME=SPEC', async () => {
    const r = await run(['inspect', '--help']);
    assert.match(r.out, /-i, --input <spec> +an input: \[NAME=\]SHAPE\[:DTYPE\]\[:FILL\] or a \.npy/);
    const bad = await run(['inspect', 'mha_demo', '-i', 'x=2x']);
    assert.equal(bad.code, EXIT_USAGE);
    assert.match(bad.err, /bad input spec "2x"/);
    const mixed = await run(['inspect', 'mha_demo', '-i', 'x=2x3', '-i', '2x3']);
    assert.equal(mixed.code, EXIT_USAGE);
    assert.match(mixed.err, /give every input by name \(name=SPEC\) or none/);
    const twice = await run(['inspect', 'mha_demo', '-i', 'x=2x3', '-i', 'x=2x3']);
    assert.equal(twice.code, EXIT_USAGE);
    assert.match(twice.err, /--input x=\.\.\.: given twice/);
  });

  it('validate --help documents every option of the issue', async () => {
    const r = await run(['validate', '--help']);
    for (const o of ['--input <spec>', '--seed <n>', '--device <device>', '--json', '--report <file.html>', '--verbose', '1x3x224x224', '2x7x64:float64', 'vit_b_16']) {
      assert.ok(r.out.includes(o), o);
    }
  });

  it('no command: help on stderr, exit 2', async () => {
    const r = await run([]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(r.err, /Usage: torchgraph/);
    assert.equal(r.out, '');
  });

  const usage: [string[], RegExp][] = [
    [['frobnicate'], /^torchgraph: error: unknown command 'frobnicate'/],
    [['validate', '--jsn'], /^torchgraph: error: unknown option '--jsn' \(Did you mean --json\?\)$/],
    [['validate', '--seed', 'abc'], /seed must be an integer from 0 to 4294967295/],
    [['validate', '--seed', '-1'], /argument '-1' is invalid. seed must be an integer from 0/],
    [['validate', '--device', 'tpu'], /device must be cpu, cuda or cuda:N/],
    [['validate', '--tolerance', 'x'], /tolerance must be a non-negative number/],
    [['validate', '--input'], /argument missing/],
    [['inspect'], /missing required argument 'model'/],
    [['inspect', 'mha_demo', '--view', 'sideways'], /Allowed choices are standard, inlined, decomposed, fused/],
    [['inspect', 'mha_demo', '--json', '--dot'], /cannot be used with option/],
    [['bench', '--repeat', 'many'], /repeat must be a positive integer/],
  ];
  for (const [argv, re] of usage) {
    it(`${argv.join(' ')}: exit 2 with one line`, async () => {
      const r = await run(argv);
      assert.equal(r.code, EXIT_USAGE, r.err);
      assert.match(oneLine(r.err), re);
      assert.equal(r.out, '');
    });
  }

  it('a missing model file is exit 2, naming the file and the built-in models', async () => {
    for (const argv of [['validate', path.join(tmp, 'nope.pt'), '--input', '1x3'], ['inspect', path.join(tmp, 'nope.pt')]]) {
      const r = await run(argv);
      assert.equal(r.code, EXIT_USAGE);
      assert.match(oneLine(r.err), /^torchgraph: model file not found: .*nope\.pt \(built-in models: .*vit_b_16.*\)$/);
    }
  });

  it('a folder as model is exit 2', async () => {
    const r = await run(['inspect', tmp]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(oneLine(r.err), /is a folder, not a TorchScript file/);
  });

  it('validate on a model file without --input is a usage error that says so', async () => {
    const f = path.join(tmp, 'model.pt');
    fs.writeFileSync(f, 'whatever');
    const r = await run(['validate', f]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(oneLine(r.err), /model file, so its inputs must be given: pass --input SPEC/);
  });

  it('a bad --input spec is exit 2 before any model is loaded', async () => {
    const f = path.join(tmp, 'model.pt');
    fs.writeFileSync(f, 'whatever');
    const r = await run(['validate', f, '--input', '1x3x', '--input', '2x2']);
    assert.equal(r.code, EXIT_USAGE);
    assert.equal(oneLine(r.err), 'torchgraph: bad input spec "1x3x": dimension 3 is empty');
  });

  it('--report into a folder that does not exist is exit 2', async function () {
    const r = await run(['validate', 'mha_demo', '--report', path.join(tmp, 'no', 'such', 'r.html')]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(oneLine(r.err), /--report .*: folder .* does not exist/);
  });

  describe('error formatting', () => {
    it('maps errors to exit codes', () => {
      assert.equal(exitCodeFor(new TorchGraphError('ERR_LOAD', 'x')), EXIT_USAGE);
      assert.equal(exitCodeFor(new TorchGraphError('ERR_NO_DEVICE', 'x')), EXIT_USAGE);
      assert.equal(exitCodeFor(new TorchGraphError('ERR_INVALID_ARG', 'x')), EXIT_USAGE);
      assert.equal(exitCodeFor(new TorchGraphError('ERR_TORCH', 'x')), EXIT_INTERNAL);
      assert.equal(exitCodeFor(new Error('boom')), EXIT_INTERNAL);
      assert.equal(exitCodeFor(new CliError('x', 1)), 1);
    });

    it('one line without --verbose, the stack with it', () => {
      const e = new TorchGraphError('ERR_LOAD', "cannot load 'm.pt' as TorchScript: bad zip\n  more detail");
      assert.equal(formatError(e, false), "torchgraph: cannot load 'm.pt' as TorchScript: bad zip\n");
      const v = formatError(e, true);
      assert.match(v, /code: ERR_LOAD/);
      assert.match(v, /more detail/);
      assert.match(v, /\n\s+at /);
      assert.equal(formatError(new Error('boom'), false), 'torchgraph: internal error: boom (run with --verbose for details)\n');
    });
  });

  describe('the bin in a child process', function () {
    this.timeout(120_000);

    it('--version and exit 0', () => {
      const r = spawnCli(['--version']);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), PKG.version);
    });

    it('a bad option: exit 2, one line on stderr, nothing on stdout', () => {
      const r = spawnCli(['validate', '--frob']);
      assert.equal(r.code, 2);
      assert.match(oneLine(r.err), /unknown option '--frob'/);
      assert.equal(r.out, '');
    });

    it('a bad spec: exit 2 with one line', () => {
      const f = path.join(tmp, 'm.pt');
      fs.writeFileSync(f, 'x');
      const r = spawnCli(['validate', f, '--input', '3x9:complex']);
      assert.equal(r.code, 2);
      assert.match(oneLine(r.err), /unknown dtype "complex"/);
    });

    it('the file starts with a node shebang (it is the package bin)', () => {
      assert.match(fs.readFileSync(CLI_MAIN, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    });
  });
});
