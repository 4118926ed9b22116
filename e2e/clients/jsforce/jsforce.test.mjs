// Real-client suite: jsforce, unchanged but for its instance URL, talks to Veil in front of a
// fake Salesforce (adapters/salesforce/salesforcetest) and must keep working while it sees
// masked data. Opt-in: `npm test` in this directory (see docs/adapters/salesforce.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';
import jsforce from 'jsforce';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// The sessions the fake's /services/oauth2/userinfo knows; Veil's directory gives their users
// the roles cs_agent and ops_manager.
const AGENT = '00DRO0000000001!agent';
const OPS = '00DRO0000000001!ops';

// Values of the fixture a cs_agent or ops_manager must never see.
const SECRETS = [
  'm.okafor@northwind-example.com', 'li.na@example.cn', 'jonas.lindqvist@example.se',
  'priya.r@contoso-example.in', 'theo.moreau@example.fr', 'kwame.mensah@example.com.gh',
  '(415) 555-0132', '+86 21 5555 0188', '+91 80 5555 0142', '+33 1 55 55 01 77', '+233 30 255 5011',
  '+1 415 555 0199', '+86 138 0013 5521', '+46 70 555 12 34', '+91 98450 55501', '+233 24 555 0190',
  '123-45-6789', '310104199102285521', '19800514-1234', 'GHA-712345678-9',
  '415 Mission St', '漕溪北路', 'Prestige', '8 Rue de la Paix', '14 Independence Ave',
];

function leaks(value) {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return SECRETS.filter((secret) => s.includes(secret));
}

let server;
let veilURL;
let auditPath;

before(async () => {
  server = spawn('go', ['run', './e2e/clients/crmserver', '-system', 'salesforce'], {
    cwd: root, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: server.stdout });
  for await (const line of lines) {
    if (line.startsWith('VEIL_URL=')) veilURL = line.slice('VEIL_URL='.length);
    if (line.startsWith('AUDIT=')) auditPath = line.slice('AUDIT='.length);
    if (veilURL && auditPath) break;
  }
  assert.ok(veilURL, 'crmserver printed no VEIL_URL');
});

after(async () => {
  server.stdin.end();
  await new Promise((resolve) => server.once('exit', resolve));
});

function connect(session) {
  return new jsforce.Connection({ instanceUrl: veilURL, accessToken: session, version: '60.0' });
}

function audit() {
  return readFileSync(auditPath, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

const SOQL = 'SELECT Id, FirstName, LastName, Name, Email, Phone, MobilePhone, Birthdate, National_ID__c, '
  + 'MailingAddress, AnnualSpend__c, DoNotCall, AccountId, Account.Name, Owner.Name FROM Contact';

test('query and queryMore follow nextRecordsUrl through Veil, masked', async () => {
  const conn = connect(AGENT);
  const first = await conn.query(SOQL);
  assert.equal(first.done, false);
  assert.match(first.nextRecordsUrl, /\/services\/data\/v60\.0\/query\/01g/);
  assert.equal(first.records.length, 4);
  const rest = await conn.queryMore(first.nextRecordsUrl);
  assert.equal(rest.done, true);
  const records = [...first.records, ...rest.records];
  assert.equal(records.length, 6);
  assert.deepEqual(leaks(records), []);
  assert.equal(records[0].MobilePhone, '+1 41* *** 0199');
  assert.equal(records[0].AnnualSpend__c, 125000.5);
  assert.equal(records[0].DoNotCall, false);
  assert.equal(records[2].Account, null);
});

test('autoFetch reads every page', async () => {
  const conn = connect(AGENT);
  const records = await conn.query('SELECT Id, Email, MobilePhone FROM Contact').run({ autoFetch: true, maxFetch: 100 });
  assert.equal(records.records.length, 6);
  assert.deepEqual(leaks(records), []);
});

test('sobject retrieve and an update of a public field', async () => {
  const conn = connect(AGENT);
  const c = await conn.sobject('Contact').retrieve('003RO00000Ab1CeYAJ');
  assert.equal(c.Id, '003RO00000Ab1CeYAJ');
  assert.equal(c.National_ID__c, '310104********5521');
  assert.deepEqual(leaks(c), []);
  const res = await conn.sobject('Contact').update({ Id: '003RO00000Ab1CeYAJ', Title: 'VP Sales' });
  assert.equal(res.success, true);
});

test('writes the policy forbids fail with Veil\'s reason', async () => {
  const conn = connect(AGENT);
  await assert.rejects(
    conn.sobject('Contact').update({ Id: '003RO00000Ab1CeYAJ', MobilePhone: '+1 555 0100' }),
    (err) => /sensitive fields/.test(err.message) || /sensitive fields/.test(JSON.stringify(err)),
  );
  await assert.rejects(conn.sobject('Contact').create({ LastName: 'Nobody' }));
  await assert.rejects(conn.sobject('Contact').destroy('003RO00000Ab1CeYAJ'));
});

test('Bulk API 2.0: an export for ops_manager (masked CSV), refused for cs_agent', async () => {
  const ops = connect(OPS);
  const rows = await ops.bulk2.query('SELECT Id, FirstName, Email, Phone, MobilePhone, National_ID__c, MailingStreet FROM Contact');
  const records = [];
  for await (const r of rows) records.push(r);
  assert.equal(records.length, 6);
  assert.equal(records[0].Id, '003RO00000Ab1CdYAJ');
  assert.deepEqual(leaks(records), []);
  await assert.rejects(connect(AGENT).bulk2.query('SELECT Id, Email FROM Contact').then(async (s) => {
    for await (const _ of s) { /* drain */ }
  }));
});

test('the audit log charges the records returned, never totalSize', async () => {
  const recs = audit();
  const pages = recs.filter((r) => r.user === '005RO000001QwEsYAK' && r.action === 'list' && r.decision === 'allow');
  assert.ok(pages.length >= 4, `want the query pages audited, got ${JSON.stringify(pages)}`);
  for (const p of pages) assert.ok(p.records <= 4, `a page charged ${p.records} records`);
  const exports = recs.filter((r) => r.export && r.decision === 'allow' && r.path.endsWith('/results'));
  assert.equal(exports.length, 1);
  assert.equal(exports[0].records, 6);
});
