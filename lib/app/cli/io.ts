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

/** Stage progress on stderr: one self-overwriting line on a terminal; one line per finished
 * stage with its time otherwise (CI logs); timed lines as stages start with --verbose; nothing
 * with --quiet. */
export class Progress {
  private shown = false;
  private t0 = performance.now();
  private stage: { msg: string; t: number } | null = null;
  constructor(private io: CliIO, private verbose: boolean, private quiet = false) {}

  step(msg: string): void {
    if (this.quiet) return;
    if (this.verbose) {
      this.io.stderr(`torchgraph: [${((performance.now() - this.t0) / 1000).toFixed(1)}s] ${msg}\n`);
    } else if (this.io.stderrIsTTY) {
      this.io.stderr(`\r\x1b[2K${msg}...`);
      this.shown = true;
    } else {
      this.finishStage();
      this.stage = { msg, t: performance.now() };
    }
  }

  private finishStage(): void {
    if (!this.stage) return;
    this.io.stderr(`torchgraph: ${this.stage.msg} (${((performance.now() - this.stage.t) / 1000).toFixed(1)} s)\n`);
    this.stage = null;
  }

  /** A stage failed: its error says so, so no stage line is written for it. */
  abandon(): void {
    this.stage = null;
    this.done();
  }

  /** Clear the live line (or close the stage line) before real output. */
  done(): void {
    this.finishStage();
    if (this.shown) this.io.stderr('\r\x1b[2K');
    this.shown = false;
  }
}

