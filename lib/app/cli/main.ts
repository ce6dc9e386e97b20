#!/usr/bin/env node
// torchgraph: the command line. Exit codes: 0 every check passed, 1 a check failed, 2 bad usage
// or bad input (one line on stderr), 3 could not run (environment or internal error).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { anchorOptions, BENCH_HELP, dispatchBench, parseAnchorModes } from './bench';
import { ANCHOR_MODES, type AnchorMode } from '../anchors';
import { cacheCommand, setupCommand } from './cache-command';
import { exportCommand, type ExportCliOptions } from './export-command';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, exitCodeFor, formatError } from './errors';
import { inspectCommand, VIEWS, type InspectCliOptions } from './inspect';
import { processIO, type CliIO } from './io';
import { packageVersion } from '../../torchscript/package-root';
import { BUILTIN_MODELS } from './model';
import { DEFAULT_TOLERANCE } from '../../pipeline/stages';
import { validateCommand, type ValidateCliOptions } from './validate-command';
import { optimizeCommand, type OptimizeCliOptions } from './optimize-command';
import { addLoweringOptions, loweringSwitches } from './lowering-options';
import { ensureSetUp, NEEDS_SETUP, terminalAsk } from './first-use';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function nonNegativeInt(what: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${what} must be a non-negative integer.`);
    return Number(v);
  };
}

/** Every input is filled from seed + i as a 32-bit seed: a larger one would silently wrap. */
export const MAX_SEED = 2 ** 32 - 1;

export function parseSeed(v: string): number {
  const t = v.trim();
  if (!/^\d+$/.test(t) || Number(t) > MAX_SEED) throw new InvalidArgumentError(`seed must be an integer from 0 to ${MAX_SEED}.`);
  return Number(t);
}

function positiveInt(what: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v)) || Number(v) < 1) throw new InvalidArgumentError(`${what} must be a positive integer.`);
    return Number(v);
  };
}

export function parseDevice(v: string): string {
  if (!/^(cpu|cuda(:\d{1,4})?)$/.test(v)) throw new InvalidArgumentError('device must be cpu, cuda or cuda:N.');
  return v;
}

export function parseTolerance(v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0) throw new InvalidArgumentError('tolerance must be a non-negative number.');
  return x;
}

const EXIT_CODES = `
Exit codes:
  0  every check passed
  1  a check failed (e.g. a max abs diff over the tolerance)
  2  bad usage or bad input (unknown option, bad --input, missing or non-TorchScript model,
     unavailable device or feature)
  3  could not run (environment, e.g. no Python torch to export a built-in model; internal error)`;

const SPEC_HELP = `
Input SPEC: SHAPE[:DTYPE][:FILL], filled from the seeded generator, or a path to a .npy file.
  SHAPE  dimensions joined by x: 1x3x224x224
  DTYPE  float32 (default), float64, int64, int32, uint8, bool
  FILL   without one: normal floats, integers 0..9, random bools; or
         ones, zeros   every element 1 (true) or 0 (false), e.g. an attention mask
         LOW..HIGH     uniform draws from [LOW, HIGH) (HIGH excluded): integers for integer
                       dtypes (token ids: 2x128:int64:0..30522), reals for floats (-1..1)
  e.g. 1x3x224x224, 2x7x64:float64, 3x9:bool, 2x128:int64:ones, 2x128:int64:0..30522, 4x8:zeros
Repeat --input for each forward() argument, in order, or by name (--input src=2x7x48
--input mask=7x7); arguments after the last one given take their defaults (mask=None, ...).
Input i is filled from seed + i; export draws the same values (seed 0), so validate with the
same SPECs runs on the inputs the trace saw.`;

/** setup and cache: finishing an install and the shared cache. */
function addInstallCommands(program: Command, io: CliIO, setExit: (code: number) => void): void {
  program
    .command('setup')
    .description('finish installing: the pinned torch into the shared cache (once per machine), '
      + 'the addon (prebuilt, or built from source), a load check')
    .option('-q, --quiet', 'print only errors')
    .addHelpText('after', `
What \`npm install\` runs; run it yourself where install scripts were skipped (--ignore-scripts,
pnpm, npm's allowScripts): the first command that needs torch says so, and runs it for you with
TORCHGRAPH_AUTO_SETUP=1 (or a yes at its prompt on a terminal). TORCHGRAPH_BUILD_FROM_SOURCE=1
builds the addon even when a prebuild matches (needs cmake, a C++ compiler, and cmake-js and
node-addon-api in your project: npm install --save-dev cmake-js node-addon-api). The cache: TORCHGRAPH_CACHE, else
$XDG_CACHE_HOME/torchgraph, else ~/.cache/torchgraph.
${EXIT_CODES}`)
    .action(async (o: { quiet?: boolean }) => { setExit(await setupCommand(o)); });

  program
    .command('export')
    .description('export your PyTorch module to TorchScript or a torch.export program (.pt2) '
      + 'with the resolved Python torch (eval mode, no_grad)')
    .argument('<FILE.py:FACTORY>', 'a Python file and a function in it returning the nn.Module')
    .option('-i, --input <spec>', 'a forward() input to trace with: [NAME=]SHAPE[:DTYPE][:FILL] (repeat for each)', collect)
    .option('--output <name>',
      'the output to keep when forward returns a dict, ModelOutput or tuple: a key (last_hidden_state) or an index (0)')
    .option('--script', 'torch.jit.script instead of tracing (keeps control flow and optional arguments)')
    .option('--pt2', 'a torch.export program (torch.export.export, torch.export.save) instead of TorchScript; also when --out names a .pt2')
    .option('-o, --out <file>',
      'where to write: FILE.pt, or FILE.pt2 for a torch.export program (default: FILE.pt here, FILE.pt2 with --pt2)')
    .option('-f, --force', 'replace --out if it exists')
    .option('-q, --quiet', 'print only errors')
    .addHelpText('after', `${SPEC_HELP}
Inputs by position take forward's first parameters; by name (--input attention_mask=...) any
of them, the rest keeping their defaults. The traced graph's inputs carry forward's parameter
names (input_ids, attention_mask, ...), as validate's report shows them.
A forward returning several things (a dict, a Hugging Face ModelOutput, a tuple) is traced
through a wrapper that keeps one tensor: the first, named on stderr, or the one --output names.
--script compiles the model's source instead; Hugging Face models rarely script: trace them.
${EXIT_CODES}

Examples:
  torchgraph export model.py:build -i 1x3x224x224
  torchgraph export model.py:build -i 1x3x224x224 --pt2
  torchgraph export bert.py:build -i input_ids=2x16:int64:0..30522 -i attention_mask=2x16:int64:ones
  torchgraph validate bert.pt -i input_ids=2x16:int64:0..30522 -i attention_mask=2x16:int64:ones`)
    .action(async (target: string, o: ExportCliOptions) => { setExit(await exportCommand(target, o, io)); });

  program
    .command('cache')
    .description('list the shared cache (torch installs, exported models) with sizes, or clean it')
    .option('--clean [what]', 'remove models, torch or all (the default); entries in use are kept')
    .option('--json', 'print the listing as JSON')
    .action(async (o: { clean?: string | boolean; json?: boolean }) => { setExit(await cacheCommand(o, io)); });
}

/** optimize: the fused model written as a file PyTorch loads. */
function addOptimizeCommand(program: Command, io: CliIO, setExit: (code: number) => void): void {
  const optimize = program
    .command('optimize')
    .description('write the fused model as a file PyTorch loads (TorchScript, or .pt2), checked against the original')
    .argument('<model>', `TorchScript file, .pt2 program or built-in model (${BUILTIN_MODELS.join(', ')})`)
    .option('-o, --out <file>', 'where to write: FILE.pt (TorchScript) or FILE.pt2 (torch.export program)')
    .option('-i, --input <spec>',
      'an input the model is planned for: SHAPE[:DTYPE][:FILL] or a .npy file (repeat for several inputs)', collect)
    .option('-f, --force', 'replace --out if it exists')
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('--tolerance <x>', 'max abs diff allowed against the original', parseTolerance, DEFAULT_TOLERANCE)
    .option('--keep-rewrite',
      'keep the rewrite without timing it against the original (by default, where it runs slower, the original graph is kept)')
    .option('--json', 'print the result as one JSON object on stdout')
    .option('-v, --verbose', 'progress with timings; full errors with stack traces')
    .option('-q, --quiet', 'no progress on stderr, only errors');
  addLoweringOptions(optimize)
    .addHelpText('after', `${SPEC_HELP}
The file holds the portable rewrites (attention as scaled_dot_product_attention, folded batch
norms, activations as one op, in-place ops) and each weight once; prepacking is specific to the
machine and is redone when torchgraph optimizes the file again. Other shapes than the planned
ones run the same graph.
${EXIT_CODES}

Examples:
  torchgraph optimize vit_b_16 --out vit.pt
  torchgraph optimize model.pt --input 2x128x768 --out model.optimized.pt
  torchgraph optimize model.pt2 --out model.optimized.pt2`)
    .action(async (model: string, o: OptimizeCliOptions, cmd: Command) => {
      setExit(await optimizeCommand(model, { ...o, fuse: loweringSwitches(cmd) }, io));
    });
}

/** inspect: one view of a model's graph, with shapes and fusion groups. */
function addInspectCommand(program: Command, io: CliIO, setExit: (code: number) => void): void {
  const inspect = program
    .command('inspect')
    .description("print a view of a model's graph: each value's shape and dtype (given the inputs), each node's fusion group")
    .argument('<model>', `TorchScript file or built-in model (${BUILTIN_MODELS.join(', ')})`)
    .addOption(new Option('--view <view>', 'which graph').choices(VIEWS).default('standard'))
    .addOption(new Option('--json', 'the graph as JSON (torchgraph.graph format) with shapes, groups and source lines per node')
      .conflicts('dot'))
    .addOption(new Option('--dot', 'the graph as Graphviz DOT, fusion groups as coloured clusters').conflicts('json'))
    .option('-i, --input <spec>', 'an input: [NAME=]SHAPE[:DTYPE][:FILL] or a .npy file (repeat for several inputs)', collect)
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('-v, --verbose', 'full errors with stack traces')
    .option('-q, --quiet', 'no notes on stderr, only errors');
  addLoweringOptions(inspect)
    .addHelpText('after', `${SPEC_HELP}
Views: standard (torch.nn leaf modules kept as call_module nodes), inlined (everything down to
aten/prim ops), decomposed (attention as explicit ops, the partitioner's fusion groups marked),
fused (the groups lowered: an op a lowering emitted is marked fused with its group's id).
Built-in models use their own example input when no --input is given; a model file needs
--input for the decomposed and fused views, and shows shapes in every view with it.
${EXIT_CODES}`)
    .action(async (model: string, o: InspectCliOptions, cmd: Command) => {
      setExit(await inspectCommand(model, o, io, loweringSwitches(cmd)));
    });
}

/** Build the program. Exposed for tests; `main` is what the bin runs. */
export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command('torchgraph');
  program
    .description('See inside TorchScript transformer models: attention decomposition, fusion analysis and measured runs over libtorch.')
    .version(packageVersion(), '-V, --version', 'print the torchgraph version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // One line: commander puts its "(Did you mean ...?)" on a second line.
      outputError: (str, write) => write(`torchgraph: ${str.trim().replace(/\s*\n\s*/g, ' ')}\n`),
    })
    .addHelpText('after', EXIT_CODES);

  const validate = program
    .command('validate')
    .description('decompose attention, partition, run original/unfused/fused and compare them')
    .argument('[model]', `TorchScript file or built-in model (${BUILTIN_MODELS.join(', ')})`, 'vit_b_16')
    .option('-i, --input <spec>', 'an input: [NAME=]SHAPE[:DTYPE][:FILL] or a .npy file (repeat for several inputs)', collect)
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option('--tolerance <x>', 'max abs diff allowed against the original', parseTolerance, DEFAULT_TOLERANCE)
    .option('--json', 'print the report as one JSON object on stdout (the contract in lib/report/types.ts)')
    .option('--report <file.html>', 'also write the self-contained HTML report')
    .option('--reference <model>',
      'the model file this one was made from (e.g. the original of an optimized file): one more check, outputs against its outputs')
    .option('-v, --verbose', 'progress with timings; full errors with stack traces')
    .option('-q, --quiet', 'no progress or notes on stderr, only errors');
  addLoweringOptions(validate)
    .addHelpText('after', `${SPEC_HELP}
Built-in models use their own example input when no --input is given (exported on first use,
then cached); a model file needs --input.
${EXIT_CODES}

Examples:
  torchgraph validate
  torchgraph validate mha_demo --json
  torchgraph validate model.pt --input 1x3x224x224 --report report.html
  torchgraph validate model.fast.pt --input 1x3x224x224 --reference model.pt`)
    .action(async (model: string, o: ValidateCliOptions, cmd: Command) => {
      setExit(await validateCommand(model, { ...o, fuse: loweringSwitches(cmd) }, io));
    });

  addOptimizeCommand(program, io, setExit);

  addInspectCommand(program, io, setExit);

  const bench = program
    .command('bench')
    .description('time your model: original/unfused/fused (and optimized) runs interleaved, peak memory, max abs diffs')
    .argument('[models...]', 'TorchScript (.pt) or .pt2 files, or built-in models (default: vit_b_16 at batch 1)')
    .option('-i, --input <spec>', 'an input: [NAME=]SHAPE[:DTYPE][:FILL] or a .npy file (repeat for several inputs)', collect)
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option('--warmup <n>', 'warm-up runs before timing', nonNegativeInt('warmup'))
    .option('--repeat <n>', 'timed repetitions', positiveInt('repeat'))
    .option('--json', 'print one JSON object instead of a table')
    .option('--anchors', 'also time PyTorch on the same model, inputs and threads (eager, torch.compile), and the GEMM peak')
    .option('--anchor-modes <modes>', `which anchors (implies --anchors): some of ${ANCHOR_MODES.join(',')}`, parseAnchorModes)
    .option('-v, --verbose', 'progress; full errors with stack traces')
    .option('-q, --quiet', 'no progress on stderr, only errors');
  addLoweringOptions(bench)
    .addHelpText('after', BENCH_HELP + EXIT_CODES)
    .action(async (models: string[], o: BenchCliOptions, cmd: Command) => {
      setExit(await dispatchBench({
        models, inputs: o.input ?? [], device: o.device, seed: o.seed, warmup: o.warmup, repeat: o.repeat,
        ...anchorOptions(o.anchors, o.anchorModes), fuse: loweringSwitches(cmd),
        json: Boolean(o.json), verbose: Boolean(o.verbose), quiet: Boolean(o.quiet), stdout: io.stdout, stderr: io.stderr,
      }));
    });

  addInstallCommands(program, io, setExit);
  // The first use says whether setup is done (or runs it), before a command that needs libtorch.
  program.hook('preAction', async (_program, action) => {
    if (NEEDS_SETUP.has(action.name())) await ensureSetUp(io, { ask: io.stderrIsTTY ? terminalAsk() : undefined });
  });
  return program;
}

interface BenchCliOptions {
  input?: string[]; seed: number; device: string; warmup?: number; repeat?: number;
  json?: boolean; anchors?: boolean; anchorModes?: AnchorMode[]; verbose?: boolean; quiet?: boolean;
}

/** Run the CLI on `argv` (without node and script) and return the exit code. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  let code = EXIT_OK;
  const program = buildProgram(io, (c) => { code = c; });
  if (argv.length === 0) {
    io.stderr(program.helpInformation());
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      if (e.code === 'commander.help') return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      return EXIT_USAGE; // commander already wrote its one-line message
    }
    io.stderr(formatError(e, verbose));
    return exitCodeFor(e);
  }
}

if (require.main === module) {
  // `torchgraph ... | head`: a closed pipe is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => { process.stderr.write(formatError(e, true)); process.exitCode = EXIT_INTERNAL; },
  );
}
