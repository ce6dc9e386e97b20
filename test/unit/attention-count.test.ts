// What validate says about attention when the model spells it out itself (eager attention: matmul,
// softmax, matmul, as transformers' BertModel with attn_implementation="eager"): nothing to
// decompose, and the cores the partitioner found are named, not "no attention found".
import { strict as assert } from 'assert';
import { attentionCheck } from '../../lib/pipeline/stages';
import { attentionLine } from '../../lib/report/summary';

describe('attention counts for written-out attention', () => {
  const none = { found: 0, decomposed: 0, skipped: [] };

  it('names the written-out cores in the check and the line', () => {
    const check = attentionCheck(none, 2);
    assert.equal(check.passed, true);
    assert.match(check.detail, /no attention op or module to decompose; 2 attention cores written out as explicit ops/);
    assert.match(attentionLine(none, 2), /none to decompose \(2 attention cores written out/);
  });

  it('says no attention only when the partitioner found no core either', () => {
    assert.equal(attentionCheck(none).detail, 'no attention found in the model');
    assert.equal(attentionLine(none), 'Attentions decomposed: 0 of 0');
  });

  it('counts decomposed attentions as before when there were some', () => {
    const some = { found: 2, decomposed: 2, skipped: [] };
    assert.equal(attentionLine(some, 2), 'Attentions decomposed: 2 of 2');
    assert.match(attentionCheck(some, 2).detail, /^2 of 2 attentions decomposed$/);
  });
});
