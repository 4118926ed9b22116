// airtable.js, Airtable's own client, pointed at Veil in front of a fake Airtable API: the
// client still pages, reads and writes, and a customer-service agent sees masked fields.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Airtable from 'airtable';
import { startVeil, leaks } from '../tableserver/start.mjs';

const secrets = [
  '(415) 555-0132', '+86 138 0013 5521', '+46 70 555 12 34', '+91 98450 55501', '+33 1 55 55 01 77', '+233 24 555 0190',
  '123-45-6789', '310104199102285521', 'GHA-712345678-9',
  'm.okafor@northwind-example.com', 'li.na@example.cn', 'priya.r@contoso-example.in', 'theo.moreau@example.fr',
  'kwame.mensah@example.com.gh', 'daniel.reyes@example.com', 'wang.lei@example.com', 'aisha.bello@example.com',
  '415 Mission St', '漕溪北路 88 号', 'MG Road', '8 Rue de la Paix', '14 Independence Ave',
];

let veil;
let base;
before(async () => {
  veil = await startVeil();
  // The staff member's API key is a token from the company SSO, which Veil verifies and
  // swaps for its own Airtable credential.
  const airtable = new Airtable({
    apiKey: veil.token({ sub: 'alice', roles: ['cs_agent'] }),
    endpointUrl: veil.veil,
    noRetryIfRateLimited: true,
  });
  base = airtable.base('appVeilTest0000001');
});
after(async () => veil?.stop());

test('select().all() follows the offset through Veil and sees masked records', async () => {
  const records = await base('Customers').select({ pageSize: 4 }).all();
  assert.equal(records.length, 6, 'both pages');
  assert.deepEqual(leaks(records.map((r) => r.fields), secrets), []);
  assert.equal(records[0].get('Tier'), 'Gold');
  assert.match(records[0].get('Email'), /^m\*\*\*@northwind-example\.com$/);
  const audit = await veil.auditWhere((a) => a.system === 'airtable' && a.action === 'list', 2);
  assert.deepEqual(audit.map((a) => a.records), [4, 2], 'records charged per page, not totals');
  assert.deepEqual(audit.map((a) => a.user), ['alice', 'alice']);
});

test('returnFieldsByFieldId: field ids are masked by the names they stand for', async () => {
  const records = await base('Customers').select({ returnFieldsByFieldId: true, pageSize: 10 }).firstPage();
  assert.equal(records.length, 6);
  assert.ok(records[0].get('fldPhone000000001'), 'the fake answered by field id');
  assert.deepEqual(leaks(records.map((r) => r.fields), secrets), []);
});

test('find() reads one record, masked', async () => {
  const r = await base('Customers').find('recB2c3D4e5F6g7H8');
  assert.equal(r.id, 'recB2c3D4e5F6g7H8');
  assert.notEqual(r.get('Phone'), '+86 138 0013 5521');
  assert.match(r.get('Phone'), /\*/);
  assert.deepEqual(leaks(r.fields, secrets), []);
});

test('writes: an agent may update a public field; creating or touching a phone is refused', async () => {
  const updated = await base('Customers').update('recA1b2C3d4E5f6G7', { Tier: 'Silver' });
  assert.equal(updated.get('Tier'), 'Silver');
  await assert.rejects(base('Customers').update('recA1b2C3d4E5f6G7', { Phone: '13900000000' }), (err) => err.statusCode === 403);
  await assert.rejects(base('Customers').create({ Tier: 'Gold' }), (err) => err.statusCode === 403);
  await assert.rejects(base('Customers').destroy('recA1b2C3d4E5f6G7'), (err) => err.statusCode === 403);
});
