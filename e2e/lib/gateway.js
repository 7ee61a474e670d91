// verity-gateway in the end-to-end suite: started against a test chain and worker on a free
// loopback port, with an API-key file of its own; plus the clients the tests use on it.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, LOG_DIR, captureOutput, freePort, killOnExit, removeOnExit, waitFor, within } from './node.js';

const run = promisify(execFile);

/** The venv scripts/setup.sh installs the official OpenAI Python client into. */
export const OPENAI_PYTHON = join(process.env.VERITY_CACHE ?? join(homedir(), '.cache', 'verity'), 'openai-venv', 'bin', 'python');

/**
 * Start gateway/verity-gateway.js for `node`'s chain and `worker`'s tokenizer (or `url`, a
 * WebSocket URL, instead of `node`), with `keys` (API key -> secret URI) and `args`; waits until
 * it listens. Returns { name, port, url (http://127.0.0.1:port), base (.../v1), proc, stop() }.
 */
export async function startGateway(name, { node, url, worker, keys, args = [], waitForChain = true }) {
  const port = await freePort();
  // Its key file and receipts, removed when it is stopped or the test process exits.
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), `verity-${name}-`)));
  const keyFile = join(dir, 'keys.json');
  writeFileSync(keyFile, JSON.stringify(keys));
  const logFile = join(LOG_DIR, `${name}-${port}.log`);
  const proc = killOnExit(spawn(process.execPath, [join(REPO, 'gateway', 'verity-gateway.js'), '--keys', keyFile,
    '--url', url ?? `ws://127.0.0.1:${node.rpcPort}`, '--worker', worker.url, '--port', String(port),
    '--receipts', join(dir, 'receipts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const recentOutput = captureOutput(proc, logFile);
  const exited = new Promise((ok) => proc.on('exit', (code, signal) => ok({ code, signal })));
  const gw = {
    name, port, url: `http://127.0.0.1:${port}`, base: `http://127.0.0.1:${port}/v1`, proc, logFile, recentOutput,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      if ((await within(exited, 10_000)) === null) proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await waitFor(`${name} listening (log: ${logFile})`, async () => {
    if (proc.exitCode !== null) {
      const e = new Error(`${name} exited with ${proc.exitCode}: ${recentOutput()}`);
      e.fatal = true;
      throw e;
    }
    return /listening on/.test(recentOutput());
  }, { timeoutMs: 30_000 });
  // The gateway listens at once and answers 503 (chain_unreachable) until its chain connection
  // is up, as it should; a test's first request waits for that (on a loaded machine the
  // connection takes seconds), except where the chain is meant to be unreachable.
  if (waitForChain) {
    const key = Object.keys(keys)[0];
    await waitFor(`${name} connected to the chain (log: ${logFile})`, async () => {
      const r = await gwRequest(gw, 'GET', '/v1/models', { key });
      if (r.status === 200) return true;
      if (r.status !== 503) {
        const e = new Error(`${name}: /v1/models answered ${r.status}: ${JSON.stringify(r.body)}`);
        e.fatal = true;
        throw e;
      }
      return null;
    }, { timeoutMs: 60_000 });
  }
  return gw;
}

/** One HTTP request to the gateway: { status, body (parsed JSON or text), headers }. */
export async function gwRequest(gw, method, path, { key, body, raw } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${gw.url}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** `curl` with `args` against the gateway (for the curl cases): stdout. */
export async function curl(args) {
  const { stdout } = await run('curl', ['-sS', '--max-time', '600', ...args], { timeout: 620_000, maxBuffer: 16 << 20 });
  return stdout;
}

/** The text and last `verity` object of a server-sent-event stream body. */
export function parseStream(body) {
  let text = '';
  let verity = null;
  let finish = null;
  let done = false;
  for (const block of body.split('\n\n')) {
    const line = block.trim();
    if (!line.startsWith('data: ')) continue;
    const data = line.slice(6);
    if (data === '[DONE]') { done = true; continue; }
    const ev = JSON.parse(data);
    if (ev.error) throw new Error(`stream error: ${ev.error.message}`);
    if (ev.verity) verity = ev.verity;
    for (const c of ev.choices ?? []) {
      text += c.delta?.content ?? c.text ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, verity, finish, done };
}

/** gateway/tests/openai_client.py (the official OpenAI Python client) with `args`: its JSON. */
export async function openaiClient(args) {
  const { stdout } = await run(OPENAI_PYTHON, [join(REPO, 'gateway', 'tests', 'openai_client.py'), ...args], { timeout: 900_000 });
  return JSON.parse(stdout);
}
