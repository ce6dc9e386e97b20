// Canonicalisation before fusion: remove or normalise ops that do not change the value, so that
// one spelling of a pattern stands for all the ways real code writes it. In place; returns what
// it removed. Real code is full of these: Hugging Face's `softmax(x, dtype=torch.float32)
// .to(query.dtype)` on float32, eval-mode `dropout(p, training=False)`, `x.type_as(x)`.
//   aten::to / type_as to the dtype and device a tensor already has -> the tensor (ATen returns
//     `self` itself there unless copy=True, so aliasing is unchanged);
//   aten::dropout & co. with train=False or p=0 -> the input (ATen returns the input);
//   softmax's dtype argument equal to the input's dtype -> None.
import type { Graph, Node, Value } from '../core/ir';
import { constOf } from '../core/constants';
import { tensorInfo } from '../core/value-info';

export interface CanonicalizeReport {
  /** Count per rewrite, e.g. {"aten::to (same dtype)": 12}. */
  rewritten: Record<string, number>;
}

const DROPOUTS = new Set(['aten::dropout', 'aten::feature_dropout', 'aten::alpha_dropout', 'aten::feature_alpha_dropout']);
const CASTS = new Set(['aten::to', 'aten::type_as']);
const SOFTMAXES = new Set(['aten::softmax', 'aten::log_softmax']);

/** Same dtype and device as its input, and not a forced copy: the op returns its input. */
function isNoOpCast(n: Node): boolean {
  const self = n.arg('self');
  if (!self || n.outputs.length !== 1) return false;
  const copy = n.arg('copy');
  if (copy && constOf(copy) !== false) return false;
  const format = n.arg('memory_format');
  if (format && constOf(format) !== null) return false;
  const a = tensorInfo(self), b = tensorInfo(n.output);
  return a !== undefined && b !== undefined && a.dtype === b.dtype && sameDevice(self, n.output);
}

function sameDevice(a: Value, b: Value): boolean {
  const da = a.type.kind === 'Tensor' ? a.type.device : undefined;
  const db = b.type.kind === 'Tensor' ? b.type.device : undefined;
  return da === undefined || db === undefined || da === db;
}

function isNoOpDropout(n: Node): boolean {
  const train = n.arg('train'), p = n.arg('p');
  return (train !== undefined && constOf(train) === false) || (p !== undefined && constOf(p) === 0);
}

export function canonicalize(g: Graph): CanonicalizeReport {
  const rewritten: Record<string, number> = {};
  const note = (what: string) => { rewritten[what] = (rewritten[what] ?? 0) + 1; };
  for (const n of g.allNodes()) {
    if (n.isDestroyed) continue;
    if (CASTS.has(n.kind) && isNoOpCast(n)) {
      n.output.replaceAllUsesWith(n.arg('self')!);
      note(`${n.kind} (same dtype)`);
    } else if (DROPOUTS.has(n.kind) && isNoOpDropout(n)) {
      n.output.replaceAllUsesWith(n.arg('input')!);
      note(`${n.kind} (eval or p=0)`);
    } else if (SOFTMAXES.has(n.kind)) {
      const dtype = n.arg('dtype');
      const x = n.arg('self');
      const a = x && tensorInfo(x), b = tensorInfo(n.output);
      if (dtype && constOf(dtype) !== null && a && b && a.dtype === b.dtype) {
        const none = g.withInsertPoint(n, () => g.insertConstant(null));
        n.replaceInputWith(dtype, none);
        note(`${n.kind} (dtype of its input)`);
      }
    }
  }
  g.eliminateDeadCode();
  return { rewritten };
}
