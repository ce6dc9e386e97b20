// Where the CLI writes, so that tests can run it in-process and capture everything.

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** stderr is a terminal: show a live progress line. */
  stderrIsTTY: boolean;
  /** stdout is a terminal and NO_COLOR is unset: colour PASS/FAIL. */
  color: boolean;
}

export function processIO(): CliIO {
  return {
    stdout: (s) => { process.stdout.write(s); },
    stderr: (s) => { process.stderr.write(s); },
    stderrIsTTY: Boolean(process.stderr.isTTY),
    color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb',
  };
}

/** Stage progress on stderr: one self-overwriting line on a terminal, plain lines with --verbose,
 * nothing otherwise (so piped output stays clean). */
export class Progress {
  private shown = false;
  private t0 = performance.now();
  constructor(private io: CliIO, private verbose: boolean) {}

  step(msg: string): void {
    if (this.verbose) {
      this.io.stderr(`torchgraph: [${((performance.now() - this.t0) / 1000).toFixed(1)}s] ${msg}\n`);
    } else if (this.io.stderrIsTTY) {
      this.io.stderr(`\r\x1b[2K${msg}...`);
      this.shown = true;
    }
  }

  /** Clear the live line before real output. */
  done(): void {
    if (this.shown) this.io.stderr('\r\x1b[2K');
    this.shown = false;
  }
}

