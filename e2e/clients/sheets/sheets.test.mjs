// @googleapis/sheets, Google's own client, pointed at Veil in front of a fake Sheets API:
// the client still works, and a customer-service agent sees masked cells.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sheets } from '@googleapis/sheets';
import { startVeil, leaks } from '../tableserver/start.mjs';

const spreadsheetId = '1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEF';
const agent = { headers: { 'X-Veil-User': 'alice', 'X-Veil-Roles': 'cs_agent' } };
const secrets = [
  '13812345678', '15800001111', '+86 137 0000 4444', '0087 555 0100',
  '320102198507152413', '44030519920811632X',
  'wangjianguo@example.cn', 'liufang@example.com', 'emily.chen@example.com', 'sean.obrien@example.ie',
  '中山路 18 号', '科技园南区', '世纪大道 100 号', '王建国', 'Emily Chen',
];

let veil;
let client;
before(async () => {
  veil = await startVeil();
  // An API key as auth: the client sends it as ?key=, Veil forwards it to the upstream.
  client = sheets({ version: 'v4', rootUrl: `${veil.veil}/`, auth: 'AIzaVeilTestKey' });
});
after(async () => veil?.stop());

test('values.get: the header row names the columns, the cells come back masked', async () => {
  const res = await client.spreadsheets.values.get({ spreadsheetId, range: "'客户 名单'!A1:H1000" }, agent);
  assert.equal(res.status, 200);
  const rows = res.data.values;
  assert.deepEqual(rows[0], ['客户ID', '姓名', '手机', '邮箱', '身份证号', '地址', '累计消费', '备注']);
  assert.equal(rows[1][0], 'C-0001');
  assert.equal(rows[1][2], '138****5678');
  assert.equal(rows[1][4], '320102********2413');
  assert.deepEqual(leaks(res.data, secrets), []);
  const [a] = await veil.auditWhere((r) => r.path.endsWith('A1:H1000'));
  assert.equal(a.system, 'sheets');
  assert.equal(a.action, 'list');
  assert.equal(a.records, 6, 'the header row is not a record');
});

test('paging by ranges: a page below the header row is named by the configured columns', async () => {
  const page2 = await client.spreadsheets.values.get({ spreadsheetId, range: "'客户 名单'!A5:H7" }, agent);
  assert.equal(page2.status, 200);
  assert.equal(page2.data.values[1][0], 'C-0005');
  assert.equal(page2.data.values[1][2], '+86 137 **** 4444');
  assert.deepEqual(leaks(page2.data, secrets), []);
});

test('values:batchGet: each range is named by its own header row, the cells come back masked', async () => {
  const res = await client.spreadsheets.values.batchGet({ spreadsheetId, ranges: ["'客户 名单'!A1:H4", 'Customers!A1:E4'] }, agent);
  assert.equal(res.status, 200);
  const [names, customers] = res.data.valueRanges;
  assert.equal(names.values[1][0], 'C-0001');
  assert.equal(names.values[1][2], '138****5678');
  assert.deepEqual(leaks(res.data, secrets), []);
  assert.deepEqual(leaks(res.data, ['+1-555-010-4477', 'grace.hopper@example.com']), []);
  const [a] = await veil.auditWhere((r) => r.path.endsWith('values:batchGet'));
  assert.equal(a.records, names.values.length - 1 + customers.values.length - 1, 'header rows are not records');
});

test('values:batchGet with ranges named two ways is refused with a reason the client surfaces', async () => {
  await assert.rejects(
    client.spreadsheets.values.batchGet({ spreadsheetId, ranges: ["'客户 名单'!A1:H4", "'客户 名单'!A5:H7"] }, agent),
    (err) => err.status === 400 && /values\.get/.test(JSON.stringify(err.response.data)),
  );
});

test('writes: an agent may update a public column, not a phone column', async () => {
  const ok = await client.spreadsheets.values.update({
    spreadsheetId, range: "'客户 名单'!G2", valueInputOption: 'RAW', requestBody: { values: [['60,000.00']] },
  }, agent);
  assert.equal(ok.status, 200);
  await assert.rejects(
    client.spreadsheets.values.update({
      spreadsheetId, range: "'客户 名单'!C2", valueInputOption: 'RAW', requestBody: { values: [['13900000000']] },
    }, agent),
    (err) => err.status === 403,
  );
});
