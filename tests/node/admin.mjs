// The Admin API through the official Node SDK (client.admin.organization): projects, their
// service accounts and API keys, admin API keys, usage, and the error classes for a project key
// on an admin route and for a revoked key.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { adminClient, client, finish, rejection } from './lib.mjs';

const org = adminClient().admin.organization;

const project = await org.projects.create({ name: 'Node Project' });
assert.equal(project.object, 'organization.project');
assert.equal(project.status, 'active');
assert.equal((await org.projects.retrieve(project.id)).name, 'Node Project');
assert.equal((await org.projects.update(project.id, { name: 'Node Project 2' })).name, 'Node Project 2');
const projectIds = [];
for await (const p of org.projects.list({ limit: 1 })) projectIds.push(p.id); // pages with `after`
assert.ok(projectIds.includes(project.id));

const account = await org.projects.serviceAccounts.create(project.id, { name: 'node bot' });
assert.ok(account.id.startsWith('svc_acct_'));
assert.ok(account.api_key && account.api_key.value.startsWith('sk-hone-'));
const bot = client(account.api_key.value);
await bot.models.list();
const accounts = await org.projects.serviceAccounts.list(project.id);
assert.deepEqual(accounts.data.map((a) => a.id), [account.id]);
assert.equal((await org.projects.serviceAccounts.retrieve(account.id, { project_id: project.id })).name, 'node bot');

const keys = await org.projects.apiKeys.list(project.id);
assert.equal(keys.data.length, 1);
assert.equal(keys.data[0].owner.type, 'service_account');
assert.equal(keys.data[0].owner.service_account.id, account.id);
const key = await org.projects.apiKeys.retrieve(account.api_key.id, { project_id: project.id });
assert.equal(key.id, account.api_key.id);
assert.ok(!key.redacted_value.includes(account.api_key.value));
const deleted = await org.projects.apiKeys.delete(key.id, { project_id: project.id });
assert.equal(deleted.deleted, true);
const revoked = await rejection(bot.models.list());
assert.ok(revoked instanceof OpenAI.AuthenticationError, String(revoked));

const second = await org.projects.serviceAccounts.create(project.id, { name: 'second bot' });
await client(second.api_key.value).models.list();
const archived = await org.projects.archive(project.id);
assert.equal(archived.status, 'archived');
const stopped = await rejection(client(second.api_key.value).models.list());
assert.ok(stopped instanceof OpenAI.AuthenticationError, String(stopped));
const frozen = await rejection(org.projects.update(project.id, { name: 'again' }));
assert.ok(frozen instanceof OpenAI.BadRequestError, String(frozen));

const projectKeyOnAdminRoute = await rejection(
  adminClient(process.env.HONE_API_KEY).admin.organization.projects.list(),
);
assert.ok(projectKeyOnAdminRoute instanceof OpenAI.PermissionDeniedError, String(projectKeyOnAdminRoute));

const adminKey = await org.adminAPIKeys.create({ name: 'node ops' });
assert.ok(adminKey.value.startsWith('sk-admin-'));
assert.equal((await org.adminAPIKeys.retrieve(adminKey.id)).name, 'node ops');
const adminIds = [];
for await (const k of org.adminAPIKeys.list()) adminIds.push(k.id);
assert.ok(adminIds.includes(adminKey.id));
await adminClient(adminKey.value).admin.organization.projects.list();
assert.equal((await org.adminAPIKeys.delete(adminKey.id)).deleted, true);
const gone = await rejection(adminClient(adminKey.value).admin.organization.projects.list());
assert.ok(gone instanceof OpenAI.AuthenticationError, String(gone));

const now = Math.floor(Date.now() / 1000);
const usage = await org.usage.completions({ start_time: now - 3600, bucket_width: '1h', group_by: ['project_id'] });
assert.equal(usage.object, 'page');
assert.ok(usage.data.length >= 1 && usage.data.every((b) => b.object === 'bucket'));
const badGroup = await rejection(org.usage.completions({ start_time: now - 3600, group_by: ['user_id'] }));
assert.ok(badGroup instanceof OpenAI.BadRequestError, String(badGroup));

finish({ project: project.id, account: account.id, projects: projectIds.length });
