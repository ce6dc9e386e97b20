// Tests that run once per kernel a lowering can pick (TORCHGRAPH_LINEAR_KERNEL, TORCHGRAPH_CONV_KERNEL):
// each machine picks one by its instruction set, and the tests cover both on any machine.

/** `body` inside a describe per value of the environment variable `variable`, set around each of its tests. */
export function onEachKernel(variable: string, title: (kernel: 'onednn' | 'torchgraph') => string,
  body: (kernel: 'onednn' | 'torchgraph') => void): void {
  for (const kernel of ['onednn', 'torchgraph'] as const) {
    describe(title(kernel), () => {
      let before: string | undefined;
      beforeEach(() => { before = process.env[variable]; process.env[variable] = kernel; });
      afterEach(() => {
        if (before === undefined) delete process.env[variable];
        else process.env[variable] = before;
      });
      body(kernel);
    });
  }
}
