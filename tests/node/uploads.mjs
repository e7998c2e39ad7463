// Uploads through the official Node SDK: create, parts sent concurrently and completed in
// order with an md5, the File it yields, a wrong md5, cancel, and another project's 404.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { client, finish, rejection } from './lib.mjs';

const openai = client();
const content = Buffer.from(
  Array.from({ length: 400 }, (_, i) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `question ${i}` },
        { role: 'assistant', content: `answer ${i}` },
      ],
    }),
  ).join('\n') + '\n',
);
const size = 7000;
const chunks = [];
for (let at = 0; at < content.length; at += size) chunks.push(content.subarray(at, at + size));
assert.ok(chunks.length >= 4);

const upload = await openai.uploads.create({
  bytes: content.length,
  filename: 'node.jsonl',
  mime_type: 'text/jsonl',
  purpose: 'fine-tune',
});
assert.equal(upload.object, 'upload');
assert.equal(upload.status, 'pending');
assert.equal(upload.file ?? null, null);

// All parts at once, in reverse: arrival order does not matter, part_ids order does.
const parts = await Promise.all(
  chunks
    .map((chunk, i) => [chunk, i])
    .reverse()
    .map(async ([chunk, i]) => [i, await openai.uploads.parts.create(upload.id, { data: await toFile(chunk, `p${i}`) })]),
);
const ids = parts.sort((a, b) => a[0] - b[0]).map(([, part]) => part.id);
for (const [, part] of parts) {
  assert.equal(part.object, 'upload.part');
  assert.equal(part.upload_id, upload.id);
}

const wrong = await rejection(openai.uploads.complete(upload.id, { part_ids: ids, md5: '0'.repeat(32) }));
assert.ok(wrong instanceof OpenAI.BadRequestError);
assert.equal(wrong.param, 'md5');

const md5 = createHash('md5').update(content).digest('hex');
const done = await openai.uploads.complete(upload.id, { part_ids: ids, md5 });
assert.equal(done.status, 'completed');
assert.equal(done.file.object, 'file');
const downloaded = Buffer.from(await (await openai.files.content(done.file.id)).arrayBuffer());
assert.ok(downloaded.equals(content));

const other = await openai.uploads.create({ bytes: 5, filename: 'x.txt', mime_type: 'text/plain', purpose: 'assistants' });
const cancelled = await openai.uploads.cancel(other.id);
assert.equal(cancelled.status, 'cancelled');
const closed = await rejection(openai.uploads.parts.create(other.id, { data: await toFile(Buffer.from('hello'), 'x') }));
assert.ok(closed instanceof OpenAI.BadRequestError);
const missing = await rejection(openai.uploads.cancel('upload_doesnotexist'));
assert.ok(missing instanceof OpenAI.NotFoundError);

finish({ file: done.file.id, status: done.status, bytes: content.length, downloaded: downloaded.length });
