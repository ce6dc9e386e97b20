#!/usr/bin/env node
// torchgraph: the command line. Exit codes: 0 every check passed, 1 a check failed, 2 bad usage
// or bad input (one line on stderr), 3 could not run (environment or internal error).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { dispatchBench } from './bench';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, exitCodeFor, formatError } from './errors';
import { inspectCommand, VIEWS, type InspectCliOptions } from './inspect';
import { processIO, type CliIO } from './io';
import { packageVersion } from '../../torchscript/package-root';
import { BUILTIN_MODELS } from './model';
import { DEFAULT_TOLERANCE } from '../../pipeline/stages';
import { validateCommand, type ValidateCliOptions } from './validate-command';

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
Input SPEC: a shape with an optional dtype, filled from the seeded generator (normal floats,
integers 0..9, random bools): 1x3x224x224, 2x7x64:float64, 3x9:bool, 4x16:int64
(dtypes: float32 (default), float64, int64, int32, uint8, bool); or a path to a .npy file.
Repeat --input for each forward() argument, in order; arguments after the last one given
take their defaults (mask=None, ...). Input i is filled from seed + i.`;

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

  program
    .command('validate')
    .description('decompose attention, partition, run original/unfused/fused and compare them')
    .argument('[model]', `TorchScript file or built-in model (${BUILTIN_MODELS.join(', ')})`, 'vit_b_16')
    .option('-i, --input <spec>', 'an input: shape[:dtype] or a .npy file (repeat for several inputs)', collect)
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option('--tolerance <x>', 'max abs diff allowed against the original', parseTolerance, DEFAULT_TOLERANCE)
    .option('--json', 'print the report as one JSON object on stdout (the contract in lib/report/types.ts)')
    .option('--report <file.html>', 'also write the self-contained HTML report')
    .option('-v, --verbose', 'progress with timings; full errors with stack traces')
    .addHelpText('after', `${SPEC_HELP}
Built-in models use their own example input when no --input is given (exported on first use,
then cached); a model file needs --input.
${EXIT_CODES}

Examples:
  torchgraph validate
  torchgraph validate mha_demo --json
  torchgraph validate model.pt --input 1x3x224x224 --report report.html`)
    .action(async (model: string, o: ValidateCliOptions) => { setExit(await validateCommand(model, o, io)); });

  program
    .command('inspect')
    .description("print a view of a model's graph")
    .argument('<model>', `TorchScript file or built-in model (${BUILTIN_MODELS.join(', ')})`)
    .addOption(new Option('--view <view>', 'which graph').choices(VIEWS).default('standard'))
    .addOption(new Option('--json', 'the graph as JSON (torchgraph.graph format)').conflicts('dot'))
    .addOption(new Option('--dot', 'the graph as Graphviz DOT').conflicts('json'))
    .option('--input <spec>', 'input shape[:dtype] or .npy file, once per model input (decomposed/fused views of model files)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--seed <n>', 'seed for random inputs', parseSeed, 0)
    .option('-v, --verbose', 'full errors with stack traces')
    .addHelpText('after', `
Views: standard (torch.nn leaf modules kept as call_module nodes), inlined (everything down to
aten/prim ops), decomposed (attention as explicit ops), fused (after fusion lowering).
${EXIT_CODES}`)
    .action(async (model: string, o: InspectCliOptions) => { setExit(await inspectCommand(model, o, io)); });

  program
    .command('bench')
    .description('benchmark original/unfused/fused runs: times and peak memory (the runtime harness)')
    .argument('[models...]', 'built-in models or TorchScript files (default: the standard suite)')
    .option('-i, --input <spec>', 'an input for file models (repeatable)', collect)
    .option('--seed <n>', 'seed for generated inputs', parseSeed, 0)
    .option('--device <device>', 'cpu, cuda or cuda:N', parseDevice, 'cpu')
    .option('--warmup <n>', 'warm-up runs before timing', nonNegativeInt('warmup'))
    .option('--repeat <n>', 'timed repetitions', positiveInt('repeat'))
    .option('--json', 'print one JSON object instead of a table')
    .option('--anchors', 'also time PyTorch eager and torch.compile (inductor, with and without freezing) on the same weights, and the GEMM peak')
    .option('-v, --verbose', 'progress; full errors with stack traces')
    .addHelpText('after', EXIT_CODES)
    .action(async (models: string[], o: { input?: string[]; seed: number; device: string; warmup?: number; repeat?: number; json?: boolean; anchors?: boolean; verbose?: boolean }) => {
      setExit(await dispatchBench({
        models, inputs: o.input ?? [], device: o.device, seed: o.seed, warmup: o.warmup, repeat: o.repeat, anchors: Boolean(o.anchors),
        json: Boolean(o.json), verbose: Boolean(o.verbose), stdout: io.stdout, stderr: io.stderr,
      }));
    });

  return program;
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
