// `torchgraph bench`: the CLI parses the options; lib/app/bench.ts picks the cases and prints.
// The project's own suite and its targets are `npm run bench` (scripts/bench.ts).
import { InvalidArgumentError } from 'commander';
import { EXIT_CHECK_FAILED, EXIT_OK } from './errors';
import { runBench, type RunBenchOptions } from '../bench';
import { ANCHOR_MODES, type AnchorMode } from '../anchors';

export type BenchOptions = RunBenchOptions;

export const BENCH_HELP = `
Without a model it times the built-in ViT-B/16 at batch 1. A model file runs on the --input specs
(as validate takes them: [NAME=]SHAPE[:DTYPE][:FILL] or a .npy file; a .pt2's float inputs default
to its example's shapes). Each run is a ratio against the original in the same run. There are no
targets here: the project's own suite and its targets are \`npm run bench\` in a torchgraph checkout.

--anchors runs PyTorch (the Python torch torchgraph resolved) on the same file, inputs and thread
count, timed in the same repetitions, with each one's max abs diff from the original's output:
  eager               a .pt through torch.jit.load, as torchgraph's libtorch runs it (executor
                      optimizations off, inference mode); a .pt2 through torch.export.load(f).module()
  inductor            torch.compile of it (a .pt: of the module torch.export's TorchScript converter
                      makes of it, since torch.compile does not take a ScriptModule; skipped, with the
                      reason, where that conversion fails)
  inductor_freezing   the same with inductor's freezing
--anchor-modes eager,inductor runs some of them. Built-in models are rebuilt in Python with the
file's weights instead. Compiling takes seconds to minutes.

Examples:
  torchgraph bench
  torchgraph bench model.pt --input 2x16x64 --anchors
  torchgraph bench model.pt2 --anchor-modes eager,inductor
  torchgraph bench bert.pt -i input_ids=2x128:int64:0..30522 -i attention_mask=2x128:int64:ones --json
`;

/** `--anchor-modes eager,inductor`: the modes, each one known. */
export function parseAnchorModes(v: string): AnchorMode[] {
  const modes = v.split(',').map((m) => m.trim()).filter(Boolean);
  const unknown = modes.filter((m) => !(ANCHOR_MODES as readonly string[]).includes(m));
  if (!modes.length || unknown.length) {
    const not = unknown.length ? `, not ${unknown.join(', ')}` : '';
    throw new InvalidArgumentError(`anchor modes are ${ANCHOR_MODES.join(', ')} (comma-separated)${not}.`);
  }
  return modes as AnchorMode[];
}

/** --anchors (every mode) and --anchor-modes MODES (some, implying --anchors), as runBench takes them. */
export function anchorOptions(
  anchors: boolean | undefined, modes: AnchorMode[] | undefined,
): Pick<RunBenchOptions, 'anchors' | 'anchorModes'> {
  return { anchors: Boolean(anchors) || modes !== undefined, ...(modes ? { anchorModes: modes } : {}) };
}

/** Runs the harness; exit 1 only when a target was missed (npm run bench has targets; the CLI none). */
export async function dispatchBench(options: BenchOptions): Promise<number> {
  const r = await runBench(options);
  return r.passed ? EXIT_OK : EXIT_CHECK_FAILED;
}
