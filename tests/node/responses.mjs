// The Responses API and models.retrieve for fine-tuned and checkpoint names through the official
// Node SDK. The harness passes the models and the answer each should give:
//   HONE_MODEL, HONE_CHECKPOINT  the project's fine-tuned model and one of its checkpoints
//   HONE_THEIRS                  another project's fine-tuned model (must be 404 here)
//   HONE_QUESTION, HONE_ANSWER   the input, and the answer HONE_MODEL gives to it
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, finish, rejection } from './lib.mjs';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const [model, checkpoint, theirs] = [env('HONE_MODEL'), env('HONE_CHECKPOINT'), env('HONE_THEIRS')];
const [question, answer] = [env('HONE_QUESTION'), env('HONE_ANSWER')];
const openai = client();
const ask = { input: question, max_output_tokens: 16, temperature: 0 };

const response = await openai.responses.create({ model, ...ask });
assert.equal(response.object, 'response');
assert.equal(response.status, 'completed');
assert.equal(response.model, model);
assert.equal(response.output_text.trim(), answer);
assert.ok(response.usage.output_tokens > 0);

const events = [];
let streamed = '';
for await (const event of await openai.responses.create({ model, ...ask, stream: true })) {
  events.push(event.type);
  if (event.type === 'response.output_text.delta') streamed += event.delta;
}
assert.equal(events[0], 'response.created');
assert.equal(events.at(-1), 'response.completed');
assert.equal(streamed.trim(), answer);

const viaHelper = await openai.responses.stream({ model: checkpoint, ...ask }).finalResponse();
assert.equal(viaHelper.status, 'completed');
assert.equal(viaHelper.model, checkpoint);

for (const name of [model, checkpoint]) {
  const retrieved = await openai.models.retrieve(name);
  assert.equal(retrieved.id, name);
  assert.equal(retrieved.object, 'model');
}
const foreignModel = await rejection(openai.models.retrieve(theirs));
assert.ok(foreignModel instanceof OpenAI.NotFoundError, String(foreignModel));

const foreign = await rejection(openai.responses.create({ model: theirs, ...ask }));
assert.ok(foreign instanceof OpenAI.NotFoundError, String(foreign));
assert.equal(foreign.code, 'model_not_found');
const refused = {};
for (const [param, value] of [
  ['store', true],
  ['previous_response_id', response.id],
  ['background', true],
]) {
  const error = await rejection(openai.responses.create({ model, ...ask, [param]: value }));
  assert.ok(error instanceof OpenAI.BadRequestError, String(error));
  assert.equal(error.param, param);
  refused[param] = error.status;
}
const stored = await rejection(openai.responses.retrieve(response.id));
assert.ok(stored instanceof OpenAI.NotFoundError, String(stored));

finish({ id: response.id, events: events.length, refused });
