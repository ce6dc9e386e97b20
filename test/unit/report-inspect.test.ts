// inspect's rendering (lib/report/inspect.ts), on hand-built graphs: shapes and dtypes from the
// shape run's value info, one op name (call_module:Linear) in text, JSON and DOT, fusion groups
// (the partitioner's and the lowerings'), and source lines that are TorchScript's generated code
// left out with one note.
import { strict as assert } from 'assert';
import { Graph } from '../../lib/core/ir';
import { TensorType } from '../../lib/core/ir/types';
import { setValueInfo } from '../../lib/core/value-info';
import { inspectNodes, nodeGroup, renderInspectDot, renderInspectText, sourceLine } from '../../lib/report/inspect';

function sample(source: string): Graph {
  const g = new Graph();
  const self = g.addInput({ kind: 'Class', name: '__torch__.M' }, 'self');
  const x = g.addInput(TensorType, 'x');
  setValueInfo(x, { kind: 'Tensor', shape: [2, 7, 48], strides: [336, 48, 1], dtype: 'float32', bytes: 2688, storageBytes: 2688 });
  const fc = g.createNode('prim::GetAttr', [self], [{ kind: 'Class', name: '__torch__.torch.nn.modules.linear.Linear' }], { name: { kind: 's', value: 'fc' } }).output;
  const call = g.createNode('prim::CallMethod', [fc, x], [TensorType], { name: { kind: 's', value: 'forward' } }, { source });
  setValueInfo(call.output, { kind: 'Tensor', shape: [2, 7, 16], strides: [112, 16, 1], dtype: 'float32', bytes: 896, storageBytes: 896 });
  const relu = g.createNode('aten::relu', [call.output], [TensorType], {}, { source: 'code/__torch__/model.py:9' });
  setValueInfo(relu.output, { kind: 'Tensor', shape: [2, 7, 16], strides: [112, 16, 1], dtype: 'float32', bytes: 896, storageBytes: 896 });
  relu.meta.group = 3;
  relu.meta.groupKind = 'linear_act';
  relu.meta.groupRole = 'activation';
  const sdpa = g.createNode('aten::neg', [relu.output], [TensorType]);
  sdpa.meta.fused = { kind: 'attention_core', id: 'attn' };
  g.registerOutput(sdpa.output);
  return g;
}

describe('report: inspect', () => {
  it('text: shapes and dtypes, the module call by class, groups, the user\'s source lines', () => {
    const t = renderInspectText(sample('/home/me/model.py:12'), { model: 'm', file: 'm.pt', view: 'fused', notes: ['shapes for input x float32[2, 7, 48]'] });
    assert.match(t, /^# m: fused view, 4 nodes, 2 fusion groups \(m\.pt\)$/m);
    assert.match(t, /^# shapes for input x float32\[2, 7, 48\]$/m);
    assert.match(t, /^graph\(%self : M, %x : float32\[2, 7, 48\]\):$/m);
    // One name for the module call, as JSON and DOT say it; its source line, the user's file.
    assert.match(t, /%\S+ : float32\[2, 7, 16\] += call_module:Linear\(%2, %x\) +# \(\/home\/me\/model\.py:12\)$/m);
    assert.doesNotMatch(t, /prim::CallMethod/);
    assert.match(t, /aten::relu\(%\S+\) +# \[g3: linear_act activation\]$/m);
    assert.match(t, /aten::neg\(%\S+\) +# \[attn: attention_core, fused\]$/m);
    // The generated code's line is left out, and the heading says why.
    assert.doesNotMatch(t, /model\.py:9/);
    assert.match(t, /^# source lines of the code TorchScript generated \(code\/__torch__\/\.\.\.\) are left out: they are not lines of your Python source$/m);
  });

  it('text: no generated-code note when every line is the user\'s; no shapes without value info', () => {
    const g = sample('/home/me/model.py:12');
    g.allNodes().forEach((n) => { if (n.source?.startsWith('code/')) n.source = 'model.py:9'; });
    const t = renderInspectText(g, { model: 'm', file: 'm.pt', view: 'standard' });
    assert.doesNotMatch(t, /# source lines/);
    assert.match(t, /aten::relu\(%\S+\) +# \[g3: linear_act activation\] {2}\(model\.py:9\)$/m);
    const bare = new Graph();
    const y = bare.addInput(TensorType, 'y');
    bare.registerOutput(bare.createNode('aten::relu', [y], [TensorType]).output);
    assert.match(renderInspectText(bare, { model: 'b', file: 'b.pt', view: 'standard' }), /^graph\(%y : Tensor\):$/m);
  });

  it('source lines: generated code apart from the user\'s file', () => {
    const g = new Graph();
    const n = g.createNode('aten::relu', [g.addInput(TensorType, 'x')], [TensorType], {}, { source: 'code/__torch__/torch/nn/modules/linear.py:12' });
    assert.deepEqual(sourceLine(n), { file: 'code/__torch__/torch/nn/modules/linear.py', line: 12, generated: true });
    n.source = 'code/__torch__.py:3';
    assert.equal(sourceLine(n)?.generated, true);
    n.source = '/src/code/model.py:3';
    assert.equal(sourceLine(n)?.generated, false);
  });

  it('JSON nodes: op name beside the IR kind, output shapes, group, source', () => {
    const nodes = inspectNodes(sample('/home/me/model.py:12'));
    const call = nodes.find((n) => n.kind === 'prim::CallMethod')!;
    assert.equal(call.op, 'call_module:Linear');
    assert.deepEqual(call.outputs[0].shape, [2, 7, 16]);
    assert.equal(call.outputs[0].dtype, 'float32');
    assert.deepEqual(call.source, { file: '/home/me/model.py', line: 12, generated: false });
    assert.deepEqual(nodes.find((n) => n.kind === 'aten::relu')!.group, { id: 'g3', kind: 'linear_act', role: 'activation', lowered: false });
    assert.deepEqual(nodes.find((n) => n.kind === 'aten::neg')!.group, { id: 'attn', kind: 'attention_core', lowered: true });
    assert.equal(nodeGroup(sample('x.py:1').allNodes()[0]), undefined, 'GetAttr is in no group');
  });

  it('DOT: groups as coloured clusters, shapes in labels, generated source left out of tooltips', () => {
    const dot = renderInspectDot(sample('/home/me/model.py:12'), 'm (fused)');
    assert.equal((dot.match(/subgraph "cluster_group_/g) ?? []).length, 2);
    assert.match(dot, /subgraph "cluster_group_g3 linear_act" \{ label="g3 linear_act"; [^}]*n\d+; \}/);
    assert.match(dot, /label="aten::relu\\n%\S+ : float32\[2, 7, 16\]\\n\[g3: linear_act activation\]"/);
    assert.match(dot, /label="call_module:Linear\\n/);
    assert.match(dot, /fillcolor="#fde2c8"/);
    assert.match(dot, /model\.py:12/);
    assert.doesNotMatch(dot, /code\/__torch__/);
    assert.equal((dot.match(/\{/g) ?? []).length, (dot.match(/\}/g) ?? []).length, 'braces balance');
  });
});
