// The resources hone had before the Node suite: files, fine-tuning jobs (events, checkpoints,
// cancel), models, and the error mapping, through the official Node SDK.
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { client, finish, rejection } from './lib.mjs';

const openai = client();
const lines = Array.from({ length: 12 }, (_, i) =>
  JSON.stringify({
    messages: [
      { role: 'user', content: `question ${i}` },
      { role: 'assistant', content: `answer ${i}` },
    ],
  }),
).join('\n');

const file = await openai.files.create({
  file: await toFile(Buffer.from(lines + '\n'), 'train.jsonl'),
  purpose: 'fine-tune',
});
assert.equal(file.object, 'file');
assert.equal(file.purpose, 'fine-tune');
assert.equal((await openai.files.retrieve(file.id)).id, file.id);
const listed = [];
for await (const f of openai.files.list()) listed.push(f.id);
assert.ok(listed.includes(file.id));

const job = await openai.fineTuning.jobs.create({ model: 'hone-tiny', training_file: file.id, suffix: 'node' });
assert.equal(job.object, 'fine_tuning.job');
assert.equal((await openai.fineTuning.jobs.retrieve(job.id)).id, job.id);
const events = await openai.fineTuning.jobs.listEvents(job.id, { limit: 5 });
assert.ok(events.data.length >= 1);
await openai.fineTuning.jobs.checkpoints.list(job.id);
const cancelled = await openai.fineTuning.jobs.cancel(job.id);
assert.equal(cancelled.status, 'cancelled');

const models = await openai.models.list();
assert.ok(models.data.some((m) => m.id === 'hone-tiny'));

const missing = await rejection(openai.fineTuning.jobs.retrieve('ftjob-doesnotexist'));
assert.ok(missing instanceof OpenAI.NotFoundError, String(missing));
const unauthenticated = await rejection(client('sk-hone-wrong').models.list());
assert.ok(unauthenticated instanceof OpenAI.AuthenticationError, String(unauthenticated));

finish({ file: file.id, job: job.id, listed: listed.length });
