// Parameter errors through the official Node SDK: a wrong value is a BadRequestError whose
// message, param and code are the ones the Python suite asserts (tests/contract/test_param_messages.py).
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { client, finish, rejection } from './lib.mjs';

const openai = client();
const cases = [
  {
    call: () =>
      openai.fineTuning.jobs.create({ model: 'hone-tiny', training_file: 'file-x', hyperparameters: { n_epochs: 60 } }),
    param: 'hyperparameters.n_epochs',
    code: 'integer_above_max_value',
    message:
      "Invalid 'hyperparameters.n_epochs': n_epochs must be an integer from 1 to 50, or 'auto', but got 60 instead.",
  },
  {
    call: () =>
      openai.fineTuning.jobs.create({
        model: 'hone-tiny',
        training_file: 'file-x',
        method: { type: 'supervised', supervised: { hyperparameters: { batch_size: 'eight' } } },
      }),
    param: 'method.supervised.hyperparameters.batch_size',
    code: 'invalid_value',
    message:
      "Invalid value for 'method.supervised.hyperparameters.batch_size': batch_size must be an integer from 1 " +
      "to 256, or 'auto', but got 'eight' instead.",
  },
  {
    call: () => openai.fineTuning.jobs.create({ model: 'hone-tiny', training_file: 'file-x', seed: true }),
    param: 'seed',
    code: 'invalid_type',
    message: "Invalid type for 'seed': expected an integer, but got a boolean instead.",
  },
  {
    call: () =>
      openai.fineTuning.jobs.create({
        model: 'hone-tiny',
        training_file: 'file-x',
        integrations: [{ type: 'wandb', wandb: {} }],
      }),
    param: 'integrations[0].wandb.project',
    code: 'missing_required_parameter',
    message: "Missing required parameter: 'integrations[0].wandb.project'.",
  },
  {
    call: () => openai.files.list({ limit: 0 }),
    param: 'limit',
    code: 'integer_below_min_value',
    message: "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
  },
];

let checked = 0;
for (const c of cases) {
  const error = await rejection(c.call());
  assert.ok(error instanceof OpenAI.BadRequestError, String(error));
  assert.equal(error.status, 400);
  assert.equal(error.type, 'invalid_request_error');
  assert.equal(error.param, c.param);
  assert.equal(error.code, c.code);
  assert.equal(error.error.message, c.message);
  assert.equal(error.message, `400 ${c.message}`);
  checked += 1;
}

finish({ checked });
