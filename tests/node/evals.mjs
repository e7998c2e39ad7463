// The Evals API and the graders through the official Node SDK (client.evals, its runs and output
// items; client.fineTuning.alpha.graders): an eval of pre-generated samples graded by
// string_check, run to completion by hone's runner, its output items filtered and paged, and
// the error classes for a bad grader and another project's eval.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, finish, rejection } from './lib.mjs';

const openai = client();
const exact = {
  type: 'string_check',
  name: 'exact',
  input: '{{sample.output_text}}',
  reference: '{{item.answer}}',
  operation: 'eq',
};
const ev = await openai.evals.create({
  name: 'node eval',
  data_source_config: {
    type: 'custom',
    item_schema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] },
    include_sample_schema: true,
  },
  testing_criteria: [exact],
  metadata: { sdk: 'node' },
});
assert.ok(ev.id.startsWith('eval_'));
assert.equal(ev.data_source_config.type, 'custom');
assert.equal((await openai.evals.retrieve(ev.id)).name, 'node eval');
assert.equal((await openai.evals.update(ev.id, { name: 'node eval 2' })).name, 'node eval 2');
const evalIds = [];
for await (const e of openai.evals.list({ limit: 1 })) evalIds.push(e.id); // pages with `after`
assert.ok(evalIds.includes(ev.id));

// Five pre-generated samples, three of them right: no model is called.
const content = [0, 1, 2, 3, 4].map((i) => ({
  item: { answer: `a${i}` },
  sample: { output_text: i < 3 ? `a${i}` : 'wrong' },
}));
const run = await openai.evals.runs.create(ev.id, {
  name: 'node run',
  data_source: { type: 'jsonl', source: { type: 'file_content', content } },
});
assert.equal(run.object, 'eval.run');
let done = run;
for (let i = 0; i < 600 && !['completed', 'failed', 'canceled'].includes(done.status); i++) {
  await new Promise((r) => setTimeout(r, 100));
  done = await openai.evals.runs.retrieve(run.id, { eval_id: ev.id });
}
assert.equal(done.status, 'completed', JSON.stringify(done.error));
assert.deepEqual(done.result_counts, { total: 5, errored: 0, failed: 2, passed: 3 });
const passed = [];
for await (const item of openai.evals.runs.outputItems.list(run.id, { eval_id: ev.id, status: 'pass', limit: 2 })) {
  passed.push(item.datasource_item_id);
}
assert.deepEqual(passed.sort(), [0, 1, 2]);
const failedPage = await openai.evals.runs.outputItems.list(run.id, { eval_id: ev.id, status: 'fail' });
const failed = failedPage.data[0];
assert.equal(failed.results[0].passed, false);
const same = await openai.evals.runs.outputItems.retrieve(failed.id, { eval_id: ev.id, run_id: run.id });
assert.equal(same.id, failed.id);
const runIds = [];
for await (const r of openai.evals.runs.list(ev.id)) runIds.push(r.id);
assert.deepEqual(runIds, [run.id]);

// A second run, cancelled; then deleted.
const second = await openai.evals.runs.create(ev.id, {
  data_source: { type: 'jsonl', source: { type: 'file_content', content } },
});
const cancelled = await openai.evals.runs.cancel(second.id, { eval_id: ev.id });
assert.ok(['canceled', 'completed'].includes(cancelled.status)); // the runner may have finished it first
assert.equal((await openai.evals.runs.delete(second.id, { eval_id: ev.id })).deleted, true);

// Graders on their own.
const graded = await openai.fineTuning.alpha.graders.run({ grader: exact, model_sample: 'a1', item: { answer: 'a1' } });
assert.equal(graded.reward, 1);
const validated = await openai.fineTuning.alpha.graders.validate({ grader: exact });
assert.equal(validated.grader.name, 'exact');
const bad = await rejection(openai.fineTuning.alpha.graders.validate({ grader: { ...exact, operation: 'regex' } }));
assert.ok(bad instanceof OpenAI.BadRequestError, String(bad));
assert.equal(bad.param, 'grader.operation');

// Another project sees nothing of this one.
const stranger = client(process.env.HONE_OTHER_KEY);
const hidden = await rejection(stranger.evals.retrieve(ev.id));
assert.ok(hidden instanceof OpenAI.NotFoundError, String(hidden));

assert.equal((await openai.evals.delete(ev.id)).deleted, true);
finish({ eval: ev.id, run: run.id, passed: passed.length });
