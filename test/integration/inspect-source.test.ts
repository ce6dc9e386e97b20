// inspect's source lines are the user's Python file, not the code TorchScript generated when it
// saved the model: a scripted and a traced module from a .py file this test writes, each line
// checked against that file (text, JSON and DOT).
import { strict as assert } from 'assert';
import { runCli } from '../support/cli';
import { userModel } from '../support/user-model';
import { runtimeInfo } from '../../lib/torchscript/runtime-info';

const SOURCE = `import torch


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.lin(x)
        z = torch.relu(y) * 2.0
        return torch.tanh(z + x)


def build():
    return Block().eval()
`;

/** The 1-based line of SOURCE that holds `text`. */
function lineOf(text: string): number {
  const i = SOURCE.split('\n').findIndex((l) => l.includes(text));
  assert.ok(i >= 0, text);
  return i + 1;
}

describe('inspect: source lines in the user\'s file (scripted and traced)', function () {
  this.timeout(600_000);
  const model = userModel(SOURCE, 'src-lines');
  const files: Record<string, string> = {};

  before(function () {
    try {
      runtimeInfo();
    } catch (e) {
      console.log(`      skipped: ${(e as Error).message.split('\n')[0]}`);
      this.skip();
    }
    files.scripted = model.exportAs('scripted', 'build', '2x8', 'scripted');
    files.traced = model.exportAs('traced', 'build', '2x8', 'traced');
  });

  for (const how of ['scripted', 'traced'] as const) {
    it(`${how}: text, JSON and DOT name the lines of the .py file`, () => {
      const relu = lineOf('torch.relu');
      const tanh = lineOf('torch.tanh');
      const file = /\/src_lines\.py/;
      const text = runCli(['inspect', files[how], '--view', 'inlined', '-i', '2x8']);
      assert.equal(text.code, 0, text.err);
      assert.match(text.out, new RegExp(`= aten::relu\\(.*# \\(\\S*/src_lines\\.py:${relu}\\)$`, 'm'));
      assert.match(text.out, new RegExp(`= aten::tanh\\(.*# \\(\\S*/src_lines\\.py:${tanh}\\)$`, 'm'));
      assert.doesNotMatch(text.out, /\(code\/__torch__/);

      const json = runCli(['inspect', files[how], '--view', 'inlined', '-i', '2x8', '--json']);
      assert.equal(json.code, 0, json.err);
      const nodes = JSON.parse(json.out).annotations as { kind: string; source?: { file: string; line: number; generated: boolean } }[];
      const src = (kind: string) => nodes.find((n) => n.kind === kind)?.source;
      assert.match(src('aten::relu')!.file, file);
      assert.deepEqual({ line: src('aten::relu')!.line, generated: src('aten::relu')!.generated }, { line: relu, generated: false });
      assert.deepEqual({ line: src('aten::tanh')!.line, generated: src('aten::tanh')!.generated }, { line: tanh, generated: false });

      const dot = runCli(['inspect', files[how], '--view', 'inlined', '-i', '2x8', '--dot']);
      assert.equal(dot.code, 0, dot.err);
      assert.match(dot.out, new RegExp(`aten::relu[^\\n]*src_lines\\.py:${relu}`));
    });
  }

  it('scripted: the module call itself points at its line in forward', () => {
    const r = runCli(['inspect', files.scripted]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`= call_module:Linear\\(.*# \\(\\S*/src_lines\\.py:${lineOf('self.lin(x)')}\\)$`, 'm'));
  });
});
