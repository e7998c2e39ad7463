// Shared by the Node SDK contract scripts: clients for hone through the official `openai`
// package, and a fetch wrapper that records every JSON response so the Python side
// (tests/harness/node.py) validates each one against the OpenAI spec, as the Python SDK's
// tests do.
import { writeFileSync } from 'node:fs';
import OpenAI from 'openai';

const recorded = [];

async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('text/event-stream')) {
    const body = await response.clone().text();
    recorded.push({
      method: (init?.method ?? 'GET').toUpperCase(),
      path: new URL(url).pathname,
      status: response.status,
      content_type: type,
      body,
    });
  }
  return response;
}

const options = { baseURL: process.env.HONE_BASE_URL, maxRetries: 0, fetch: recordingFetch };

/** A client with the project API key in HONE_API_KEY (or `apiKey`). */
export function client(apiKey = process.env.HONE_API_KEY) {
  return new OpenAI({ ...options, apiKey });
}

/** A client with the organization admin key in HONE_ADMIN_KEY, for the Admin API. */
export function adminClient(adminAPIKey = process.env.HONE_ADMIN_KEY) {
  return new OpenAI({ ...options, apiKey: adminAPIKey, adminAPIKey });
}

/** Await `promise` and return the SDK error it rejects with (fails if it resolves). */
export async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail, and it succeeded');
}

/** Write the recorded responses and the script's own results where the harness reads them. */
export function finish(results = {}) {
  writeFileSync(process.env.HONE_NODE_OUT, JSON.stringify({ results, responses: recorded }));
}
