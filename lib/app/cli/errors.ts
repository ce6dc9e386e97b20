// Exit codes and the one-line error messages of the CLI.
import { TorchGraphError } from '../../core/errors';
import { NpyError } from '../../torchscript/npy';

/** Every check passed. */
export const EXIT_OK = 0;
/** The run completed and a check failed (e.g. a max abs diff over the tolerance). */
export const EXIT_CHECK_FAILED = 1;
/** Bad usage or bad input: unknown option, bad --input spec, missing or non-TorchScript model
 * file, a device that is not there, a feature not available in this build. */
export const EXIT_USAGE = 2;
/** Could not run for another reason: the environment (no Python torch to export a built-in
 * model, no native addon) or an internal error. */
export const EXIT_INTERNAL = 3;

/** An error with a chosen exit code and a message meant for the user as is. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT_USAGE, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = 'UsageError';
  }
}

const USER_CODES = new Set(['ERR_INVALID_ARG', 'ERR_LOAD', 'ERR_NO_DEVICE']);

export function exitCodeFor(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  if (e instanceof TorchGraphError) return USER_CODES.has(e.code) ? EXIT_USAGE : EXIT_INTERNAL;
  if (e instanceof NpyError) return EXIT_USAGE;
  return EXIT_INTERNAL;
}

/** One line: the first line of the message, without a leading "torchgraph: " (added back once). */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const first = msg.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown error';
  return first.replace(/^torchgraph:\s*/, '');
}

/** What goes to stderr for an error: one line, or the full message and stack with --verbose. */
export function formatError(e: unknown, verbose: boolean, prefix = 'torchgraph'): string {
  // A failed addon load is the user's environment: its fix is on the lines after the first.
  if (!verbose && e instanceof TorchGraphError && e.code === 'ERR_ADDON') return `${prefix}: ${e.message.replace(/^torchgraph:\s*/, '')}\n`;
  if (!verbose) {
    const internal = exitCodeFor(e) === EXIT_INTERNAL && !(e instanceof CliError);
    return `${prefix}: ${internal && !(e instanceof TorchGraphError) && !isPlainMessage(e) ? 'internal error: ' : ''}${oneLine(e)}` +
      (internal ? ' (run with --verbose for details)' : '') + '\n';
  }
  const err = e as { stack?: string; code?: string; cause?: unknown };
  let out = `${prefix}: ${(e instanceof Error ? e.message : String(e)).replace(/^torchgraph:\s*/, '')}\n`;
  if (err?.code) out += `code: ${err.code}\n`;
  if (err?.stack) out += `${err.stack}\n`;
  if (err?.cause) out += `caused by: ${(err.cause as { stack?: string }).stack ?? String(err.cause)}\n`;
  return out;
}

/** Errors from lib/ that already speak to the user ("torchgraph: ..."), e.g. from ensureModel. */
function isPlainMessage(e: unknown): boolean {
  return e instanceof Error && /^torchgraph:/.test(e.message);
}
