// @larksuiteoapi/node-sdk, the Open Platform's own client, pointed at Veil in front of a fake
// Feishu/Lark: search pages through Veil, records come back masked, a business error
// (HTTP 200, code != 0) reaches the client and is not counted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as lark from '@larksuiteoapi/node-sdk';
import { startVeil, leaks } from '../tableserver/start.mjs';

const path = { app_token: 'bascnVeilTest', table_id: 'tblCustomers' };
const secrets = [
  '13812345678', '15800001111', '+85261234567', '18600002222', '13700004444', '13987654321',
  '320102198507152413', '44030519920811632X', 'H12345678', '510107200101014851', 'E12345678',
  'wangjianguo@example.cn', 'liufang@example.com', 'zhaolj@example.hk', 'xiaoming.huang@example.org',
  'emily.chen@example.com', 'zhouting@example.com', 'chenhao@example.com',
  '中山路 18 号', '皇后大道中 99 号', '王建国', '赵丽娟', 'Emily Chen',
];

let veil;
let client;
let as; // request options: the user's token and Veil's identity headers
before(async () => {
  veil = await startVeil();
  client = new lark.Client({
    appId: 'cli_veiltest', appSecret: 'veiltest-secret', domain: veil.veil,
    disableTokenCache: true, loggerLevel: lark.LoggerLevel.fatal,
  });
  as = (roles) => lark.withAll([
    lark.withTenantToken('t-veiltest-tenant-token'),
    { headers: { 'X-Veil-User': 'alice', 'X-Veil-Roles': roles } },
  ]);
});
after(async () => veil?.stop());

test('search pages through Veil with page_token, every record masked', async () => {
  const items = [];
  for await (const page of await client.bitable.appTableRecord.searchWithIterator(
    { path, params: { page_size: 4 }, data: { automatic_fields: false } }, as('cs_agent'))) {
    items.push(...(page?.items ?? []));
  }
  assert.equal(items.length, 6);
  assert.deepEqual(leaks(items, secrets), []);
  assert.equal(items[0].fields['手机号'], '138****5678');
  assert.equal(items[0].fields['客户等级'], 'VIP');
  const audit = await veil.auditWhere((a) => a.path.endsWith('/records/search'), 2);
  assert.deepEqual(audit.map((a) => a.records), [4, 2], 'records charged per page, not data.total');
});

test('list and get work and are masked', async () => {
  const list = await client.bitable.appTableRecord.list({ path, params: { page_size: 10 } }, as('cs_agent'));
  assert.equal(list.code, 0);
  assert.equal(list.data.items.length, 6);
  assert.deepEqual(leaks(list.data, secrets), []);
  const one = await client.bitable.appTableRecord.get({ path: { ...path, record_id: 'recuXq2Ba4' } }, as('cs_agent'));
  assert.equal(one.data.record.record_id, 'recuXq2Ba4');
  assert.deepEqual(leaks(one.data, secrets), []);
});

test('a business error (HTTP 200, code != 0) reaches the client and charges nothing', async () => {
  const res = await client.bitable.appTableRecord.search(
    { path: { ...path, table_id: 'tblMissing' }, params: { page_size: 10 }, data: {} }, as('cs_agent'));
  assert.equal(res.code, 1254004);
  const [a] = await veil.auditWhere((r) => r.path.includes('tblMissing'));
  assert.equal(a.records, 0);
  assert.equal(a.decision, 'allow');
});

test('writes: updating a public field is allowed, a phone number or a create is refused', async () => {
  const ok = await client.bitable.appTableRecord.update(
    { path: { ...path, record_id: 'recuXq2Ba1' }, data: { fields: { 客户等级: '普通' } } }, as('cs_agent'));
  assert.equal(ok.code, 0);
  await assert.rejects(
    client.bitable.appTableRecord.update(
      { path: { ...path, record_id: 'recuXq2Ba1' }, data: { fields: { 手机号: '13900000000' } } }, as('cs_agent')),
    (err) => err?.response?.status === 403,
  );
  await assert.rejects(
    client.bitable.appTableRecord.create({ path, data: { fields: { 客户等级: 'VIP' } } }, as('cs_agent')),
    (err) => err?.response?.status === 403,
  );
});
