// Checkpoint permissions through the official Node SDK: an admin shares a fine-tuned model with
// another project, which chats with it and fine-tunes from it but sees none of the owner's jobs
// or files; a revoked permission stops the next request. The Python side (test_checkpoint_
// permissions.py) registers the owner's model and passes its name, the projects and their keys.
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { adminClient, client, finish, rejection } from './lib.mjs';

const env = process.env;
const model = env.HONE_SHARED_MODEL;
const admin = adminClient();
const grantee = client(env.HONE_GRANTEE_KEY);
const owner = client(env.HONE_OWNER_KEY);
const permissions = admin.fineTuning.checkpoints.permissions;

const ask = async (c) =>
  (await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content;

const before = await rejection(ask(grantee));
assert.ok(before instanceof OpenAI.NotFoundError, String(before));

const created = [];
for await (const p of permissions.create(model, { project_ids: [env.HONE_GRANTEE_PROJECT, env.HONE_OTHER_PROJECT] })) {
  created.push(p);
}
assert.deepEqual(
  created.map((p) => [p.object, p.project_id]),
  [
    ['checkpoint.permission', env.HONE_GRANTEE_PROJECT],
    ['checkpoint.permission', env.HONE_OTHER_PROJECT],
  ],
);
assert.ok(created.every((p) => p.id.startsWith('cp_')));

const listed = [];
for await (const p of permissions.list(model, { limit: 1 })) listed.push(p.id); // pages of one
assert.deepEqual(listed, created.map((p) => p.id).reverse()); // newest first
const ascending = await permissions.list(model, { order: 'ascending' });
assert.deepEqual(ascending.data.map((p) => p.id), created.map((p) => p.id));
const filtered = await permissions.list(model, { project_id: env.HONE_GRANTEE_PROJECT });
assert.deepEqual(filtered.data.map((p) => p.project_id), [env.HONE_GRANTEE_PROJECT]);

assert.equal(await ask(grantee), `up answers for ${model}`);
const models = await grantee.models.list();
assert.equal(models.data.find((m) => m.id === model)?.owned_by, env.HONE_OWNER_PROJECT);
const notYours = await rejection(grantee.models.delete(model));
assert.ok(notYours instanceof OpenAI.PermissionDeniedError, String(notYours));

const line = (i) =>
  JSON.stringify({ messages: [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: `a${i}` }] });
const file = await grantee.files.create({
  file: await toFile(Buffer.from(Array.from({ length: 10 }, (_, i) => line(i)).join('\n') + '\n'), 'train.jsonl'),
  purpose: 'fine-tune',
});
const job = await grantee.fineTuning.jobs.create({ model, training_file: file.id, suffix: 'from-shared' });
assert.equal(job.model, model);
assert.equal(job.organization_id, env.HONE_GRANTEE_PROJECT);
await grantee.fineTuning.jobs.cancel(job.id);

for (const call of [
  () => grantee.fineTuning.jobs.retrieve(env.HONE_OWNER_JOB),
  () => grantee.fineTuning.jobs.listEvents(env.HONE_OWNER_JOB),
  () => grantee.fineTuning.jobs.checkpoints.list(env.HONE_OWNER_JOB),
]) {
  const e = await rejection(call());
  assert.ok(e instanceof OpenAI.NotFoundError, String(e));
}

// The Node SDK sends these calls with the admin key only: a project key put in its place is refused.
const projectKey = await rejection(adminClient(env.HONE_OWNER_KEY).fineTuning.checkpoints.permissions.list(model));
assert.ok(projectKey instanceof OpenAI.PermissionDeniedError, String(projectKey));
const unknown = await rejection(permissions.create(model, { project_ids: ['proj_nosuchproject'] }));
assert.ok(unknown instanceof OpenAI.BadRequestError, String(unknown));
assert.match(unknown.message, /proj_nosuchproject/);
const missing = await rejection(permissions.list('ft:hone-tiny:owner::NoSuch01'));
assert.ok(missing instanceof OpenAI.NotFoundError, String(missing));

for (const p of created) {
  const deleted = await permissions.delete(p.id, { fine_tuned_model_checkpoint: model });
  assert.deepEqual([deleted.id, deleted.object, deleted.deleted], [p.id, 'checkpoint.permission', true]);
}
const after = await rejection(ask(grantee));
assert.ok(after instanceof OpenAI.NotFoundError, String(after));
assert.equal(after.code, 'model_not_found');
assert.equal(await ask(owner), `up answers for ${model}`);

finish({ permissions: created.map((p) => p.id), job: job.id });
