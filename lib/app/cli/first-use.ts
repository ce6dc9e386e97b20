// The first use of an install whose setup did not run (npm 11 hides install scripts' output, and
// --ignore-scripts or npm's allowScripts skip them): say so in one line before anything else,
// with the command that fixes it, or run that setup here when the user wants it
// (TORCHGRAPH_AUTO_SETUP=1, or yes at a prompt on a terminal). Once set up, nothing is said.
import * as readline from 'readline';
import { setupProblem, SETUP_COMMAND } from '../../torchscript/binding';
import { setupCommand } from './cache-command';
import { CliError, EXIT_INTERNAL } from './errors';
import type { CliIO } from './io';

/** The commands that need libtorch (setup, cache and help do not). */
export const NEEDS_SETUP: ReadonlySet<string> = new Set(['validate', 'inspect', 'bench', 'optimize', 'export']);

/** Asks a yes/no question on the terminal; Enter means yes. */
export type Ask = (question: string) => Promise<boolean>;

/** A prompt on stdin/stderr when both are terminals; undefined otherwise (CI, pipes). */
export function terminalAsk(): Ask | undefined {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return (question) => new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    rl.question(question, (answer) => {
      rl.close();
      resolve(/^\s*(y|yes)?\s*$/i.test(answer));
    });
  });
}

/**
 * Before a command that needs libtorch: nothing when setup is done; else run setup here when
 * TORCHGRAPH_AUTO_SETUP=1 or the user says yes, or throw the one-line message with the fix.
 */
export async function ensureSetUp(
  io: CliIO, opts: { ask?: Ask; problem?: () => string | null; setup?: () => Promise<number> } = {},
): Promise<void> {
  const problem = (opts.problem ?? setupProblem)();
  if (!problem) return;
  const auto = process.env.TORCHGRAPH_AUTO_SETUP === '1';
  const ask = opts.ask;
  const run = auto || (ask ? await ask(`${problem}\nRun \`${SETUP_COMMAND}\` now? [Y/n] `) : false);
  if (!run) {
    const hint = ask ? '' : ' (or set TORCHGRAPH_AUTO_SETUP=1 to let the first use run it)';
    throw new CliError(`${problem.replace(/^torchgraph:\s*/, '')}${hint}`, EXIT_INTERNAL);
  }
  io.stderr(`torchgraph: ${auto ? 'TORCHGRAPH_AUTO_SETUP=1: ' : ''}running \`${SETUP_COMMAND}\` first\n`);
  const code = await (opts.setup ?? (() => setupCommand({})))();
  const after = (opts.problem ?? setupProblem)();
  if (code !== 0 || after) {
    throw new CliError(`setup did not finish${after ? `: ${after.replace(/^torchgraph:\s*/, '')}` : ' (its error is above)'}`, EXIT_INTERNAL);
  }
}
