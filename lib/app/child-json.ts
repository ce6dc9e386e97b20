// A child process that reports one JSON object as the last line of its stdout (the peak-RSS
// processes of optimized-memory.ts and ort-anchor.ts): its exit code, that object if the line is
// one, and the tail of its stderr. A line that is not JSON is no object, never a throw inside the
// process's 'close' handler (which nothing could catch).
import { spawn } from 'child_process';

export interface ChildJsonResult {
  code: number | null;
  /** The last stdout line parsed, when it is a JSON object. */
  result: Record<string, unknown> | undefined;
  stderrTail: string;
}

export function runChildForJson(command: string, args: readonly string[], stderrChars = 4000): Promise<ChildJsonResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err = (err + s).slice(-stderrChars); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, result: lastJsonObject(out), stderrTail: err.trim() }));
  });
}

function lastJsonObject(stdout: string): Record<string, unknown> | undefined {
  const line = stdout.trim().split('\n').pop() ?? '';
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
