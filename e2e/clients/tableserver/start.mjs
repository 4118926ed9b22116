// startVeil runs `go run ./e2e/clients/tableserver` from the repository root: a real Veil,
// with the shipped policy, in front of fake Google Sheets, Airtable and Lark upstreams.
// It resolves once the server prints its address, with:
//   veil          the base URL to point a client at
//   audit(n)      the audit records written so far, waiting until there are at least n
//   auditWhere(pred, n)  the records matching pred, waiting until there are at least n
//   token(claims) an HS256 JWT from the server's "SSO", for routes that take one
//   stop()        ends the server
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export async function startVeil() {
  const child = spawn('go', ['run', './e2e/clients/tableserver'], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`tableserver exited with ${code} before it was ready`)));
  });
  const info = JSON.parse(line);
  const { veil, audit: auditPath } = info;

  function token(claims) {
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
      iss: info.jwt_issuer, aud: info.jwt_audience, iat: now, exp: now + 600, ...claims,
    })}`;
    return `${body}.${createHmac('sha256', info.jwt_secret).update(body).digest('base64url')}`;
  }

  async function audit(n = 0) {
    for (let i = 0; i < 200; i++) {
      const text = await readFile(auditPath, 'utf8').catch(() => '');
      const records = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (records.length >= n) return records;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`audit log holds fewer than ${n} records`);
  }

  // auditWhere waits for the audit records that match pred, until there are at least n.
  async function auditWhere(pred, n = 1) {
    for (let i = 0; i < 200; i++) {
      const found = (await audit()).filter(pred);
      if (found.length >= n) return found;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`audit log holds fewer than ${n} matching records`);
  }

  async function stop() {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  }

  return { veil, audit, auditWhere, token, stop };
}

// leaks returns the secrets that appear anywhere in value (serialised as JSON).
export function leaks(value, secrets) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return secrets.filter((s) => text.includes(s));
}
