// Real-client suite: the Zoho CRM Node SDK (v8), unchanged but for its API domain, talks to
// Veil in front of a fake Zoho CRM (adapters/zoho/zohotest) and must keep working while it
// sees masked data. Opt-in: `npm test` in this directory (see docs/adapters/zoho.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';
import * as Z from '@zohocrm/nodejs-sdk-8.0';

const SDK = Z.default ?? Z;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// The access tokens the fake's users?type=CurrentUser knows, by Zoho profile; Veil's route
// maps "Customer Service" to cs_agent, "Sales Manager" to ops_manager, "Administrator" to
// security_admin.
const AGENT = '1000.agent.zhangwei';
const ADMIN = '1000.admin.patricia';

// Values of the fixture a cs_agent must never see.
const SECRETS = [
  'grace.hopper@example.com', 'chen.xiaoming@example.cn', 'xm.chen@example.net', 'ananya.iyer@example.in',
  'sofia.martinez@example.es', 'patricia.boyle@zylker-example.com', 'zhang.wei@zylker-example.com',
  '+1-555-010-4477', '021-5555-0107', '+91-44-5555-0166', '+34 915 55 01 23',
  '+1-555-010-9912', '13900135578', '+81-90-5555-0123', '+91-94440-55512', '+34 655 55 01 89',
  '987-65-4321', '110101199003075578', '5555 4444 3333', '12345678Z',
];

const FIELDS = 'Owner,First_Name,Last_Name,Full_Name,Email,Phone,Mobile,National_ID,Mailing_Street,Mailing_City,Account_Name,Tag,Lead_Source';

let server;
let veilURL;
let auditPath;
let resources;

before(async () => {
  server = spawn('go', ['run', './e2e/clients/crmserver', '-system', 'zoho'], {
    cwd: root, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: server.stdout });
  for await (const line of lines) {
    if (line.startsWith('VEIL_URL=')) veilURL = line.slice('VEIL_URL='.length);
    if (line.startsWith('AUDIT=')) auditPath = line.slice('AUDIT='.length);
    if (veilURL && auditPath) break;
  }
  assert.ok(veilURL, 'crmserver printed no VEIL_URL');
  resources = mkdtempSync(path.join(tmpdir(), 'zoho-sdk-'));
});

after(async () => {
  server.stdin.end();
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(resources, { recursive: true, force: true });
});

// as initializes (or switches) the SDK to a user whose API domain is Veil.
async function as(accessToken) {
  const environment = new SDK.Environment(veilURL, `${veilURL}/oauth/v2/token`, veilURL);
  const token = new SDK.OAuthBuilder().accessToken(accessToken).findUser(false).build();
  const logger = new SDK.LogBuilder().level(SDK.Levels.OFF).filePath(path.join(resources, 'sdk.log')).build();
  const dir = path.join(resources, accessToken); // field metadata is cached per user
  mkdirSync(dir, { recursive: true });
  const store = new SDK.FileStore(path.join(resources, 'tokens.txt'));
  await (await new SDK.InitializeBuilder())
    .environment(environment).token(token).store(store).logger(logger).resourcePath(dir).initialize();
}

function plain(records) {
  return records.map((r) => {
    const out = {};
    for (const [k, v] of r.getKeyValues()) out[k] = v;
    return out;
  });
}

function leaks(value) {
  const s = JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  return SECRETS.filter((secret) => s.includes(secret));
}

async function getRecords(perPage, pageToken) {
  const params = new SDK.ParameterMap();
  await params.add(SDK.Record.GetRecordsParam.FIELDS, FIELDS);
  await params.add(SDK.Record.GetRecordsParam.PER_PAGE, perPage);
  if (pageToken) await params.add(SDK.Record.GetRecordsParam.PAGE_TOKEN, pageToken);
  return new SDK.Record.RecordOperations('Contacts').getRecords(params, new SDK.HeaderMap());
}

async function allPages(perPage) {
  const records = [];
  let token;
  for (let i = 0; i < 10; i++) {
    const res = await getRecords(perPage, token);
    assert.equal(res.getStatusCode(), 200);
    const body = res.getObject();
    assert.ok(body instanceof SDK.Record.ResponseWrapper, `page ${i}: ${JSON.stringify(body)}`);
    records.push(...body.getData());
    if (!body.getInfo().getMoreRecords()) break;
    token = body.getInfo().getNextPageToken();
  }
  return records;
}

test('the SDK works through Veil: page_token paging, read, 204, update (security_admin)', async () => {
  await as(ADMIN);
  const records = await allPages(2);
  assert.equal(records.length, 5);
  assert.equal(records[1].getId(), 5725767000001839002n);
  const one = await new SDK.Record.RecordOperations('Contacts').getRecord(5725767000001839002n, null, new SDK.HeaderMap());
  assert.equal(one.getStatusCode(), 200);
  const search = new SDK.ParameterMap();
  await search.add(SDK.Record.SearchRecordsParam.EMAIL, 'nobody@example.com');
  const none = await new SDK.Record.RecordOperations('Contacts').searchRecords(search, new SDK.HeaderMap());
  assert.equal(none.getStatusCode(), 204);
});

test('a cs_agent reads every page masked', async () => {
  await as(AGENT);
  const records = await allPages(2);
  assert.equal(records.length, 5);
  const rows = plain(records);
  assert.deepEqual(leaks(rows), []);
  assert.equal(rows[1].National_ID, '110101********5578');
  assert.equal(rows[1].Mobile, '139****5578');
});

test('a cs_agent may update public fields but not a mobile', async () => {
  await as(AGENT);
  const ops = new SDK.Record.RecordOperations('Contacts');
  const ok = new SDK.Record.Record();
  ok.addKeyValue('Lead_Source', 'Web');
  const body = new SDK.Record.BodyWrapper();
  body.setData([ok]);
  const res = await ops.updateRecord(5725767000001839001n, body, new SDK.HeaderMap());
  assert.equal(res.getStatusCode(), 200);
  const bad = new SDK.Record.Record();
  bad.addKeyValue('Mobile', '13900000000');
  const badBody = new SDK.Record.BodyWrapper();
  badBody.setData([bad]);
  let status;
  try {
    status = (await ops.updateRecord(5725767000001839001n, badBody, new SDK.HeaderMap())).getStatusCode();
  } catch (err) {
    status = 'threw';
  }
  assert.ok(status === 403 || status === 'threw', `update of Mobile = ${status}, want 403`);
});

test('the audit log charges the records returned per page', async () => {
  const recs = readFileSync(auditPath, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const pages = recs.filter((r) => r.user === '5725767000000411002' && r.action === 'list' && r.resource === 'Contacts');
  assert.deepEqual(pages.map((p) => p.records).sort(), [1, 2, 2]);
});
