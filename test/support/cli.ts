// The torchgraph bin run in a child process from source, as `node --require tsx/cjs
// lib/app/cli/main.ts ARGS`, in the repository root.
import { spawnSync } from 'child_process';
import * as assert from 'assert';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI_MAIN = path.join(ROOT, 'lib', 'app', 'cli', 'main.ts');

export interface CliResult { code: number | null; out: string; err: string }

export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', CLI_MAIN, ...args], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...opts.env },
    timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 << 20,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** stderr holds exactly one non-empty line; returns it. */
export function oneLine(err: string): string {
  const lines = err.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${err}`);
  assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
  return lines[0];
}
