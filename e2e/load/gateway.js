#!/usr/bin/env node
// The price of verification a user feels, and what the gateway sustains (a benchmark script, not
// a test; numbers in docs/PERFORMANCE.md "The gateway"). Starts `make dev`'s script
// (scripts/dev.sh, small model only) on free loopback ports with the gateway on, then measures,
// side by side in one run, with the small model (glassllm-en), greedy, --new-tokens per answer:
//
//   1. `verity-worker generate` alone: the CLI's wall time (process start, model load,
//      generation) and the running worker's JSON-RPC `generate` (warm), each prompt distinct;
//   2. through the gateway, one request at a time: time to the first token (streamed) and to
//      the committed answer (not streamed), each prompt distinct;
//   3. throughput: --concurrency clients (spread over 8 API keys, 8 funded accounts) sending
//      distinct requests for --seconds; answered requests per second, latency percentiles, and
//      the gateway process's CPU time per request.
//
//   node e2e/load/gateway.js [--new-tokens 16] [--sequential 10] [--concurrency 32] [--seconds 120] [--out report.json]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { REPO, freePort, waitFor, rpc } from '../lib/node.js';
import { WORKER_BIN } from '../lib/worker.js';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i < 0 ? def : argv[i + 1]; };
const NEW = Number(opt('new-tokens', '16'));
const SEQ = Number(opt('sequential', '10'));
const CONC = Number(opt('concurrency', '32'));
const SECONDS = Number(opt('seconds', '120'));
const OUT = opt('out', null);
const KEYS = 8;
const t0 = Date.now();
const log = (...a) => console.error(`[gateway-bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`, ...a);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null; };
const median = (xs) => pct(xs, 50);
const ms = (x) => Math.round(x);

const dir = mkdtempSync(join(tmpdir(), 'verity-gateway-bench-'));
const [rpcPort, p2pPort, workerPort, gwPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
const keyFile = join(dir, 'keys.json');
await cryptoWaitReady();
const k = new Keyring({ type: 'sr25519' });
const accounts = Array.from({ length: KEYS }, (_, i) => k.addFromUri(`//GatewayBench//${i}`));
writeFileSync(keyFile, JSON.stringify(Object.fromEntries(accounts.map((_, i) => [`sk-bench-${i}-0000`, `//GatewayBench//${i}`]))));
const dev = spawn('bash', [join(REPO, 'scripts', 'dev.sh'), '--tmp', '--rpc-port', String(rpcPort), '--listen-addr', `/ip4/127.0.0.1/tcp/${p2pPort}`,
  '--no-mdns', '--no-telemetry', '--no-prometheus'], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, VERITY_WORKER_LISTEN: `127.0.0.1:${workerPort}`, VERITY_DEV_MODELS: join(dir, 'models'), VERITY_WORKER_LOG: join(dir, 'worker.log'),
    VERITY_DEV_SMOLLM2: '0', VERITY_GATEWAY_LISTEN: `127.0.0.1:${gwPort}`, VERITY_GATEWAY_KEYS: keyFile, VERITY_GATEWAY_LOG: join(dir, 'gateway.log') },
});
const devLog = createWriteStream(join(dir, 'dev.log'));
dev.stdout.pipe(devLog);
dev.stderr.pipe(devLog);
const stop = () => { try { dev.kill('SIGTERM'); } catch { /* gone */ } };
process.on('exit', stop);
log(`scripts/dev.sh: rpc ${rpcPort}, worker ${workerPort}, gateway ${gwPort}; logs ${dir}`);

const gw = `http://127.0.0.1:${gwPort}`;
const worker = `http://127.0.0.1:${workerPort}`;
await waitFor('glassllm-en served, through the gateway', async () => {
  const r = await fetch(`${gw}/v1/models`, { headers: { authorization: 'Bearer sk-bench-0-0000' } }).catch(() => null);
  if (!r?.ok) return null;
  return (await r.json()).data.find((m) => m.id === 'glassllm-en' && m.verity.operators.length);
}, { timeoutMs: 300_000, everyMs: 2_000 });
const api = await ApiPromise.create({ provider: new WsProvider(`ws://127.0.0.1:${rpcPort}`), noInitWarn: true });
// Fund the accounts (Ferdie, consecutive nonces, all in one block or two).
const ferdie = k.addFromUri('//Ferdie');
const nonce = (await api.rpc.system.accountNextIndex(ferdie.address)).toNumber();
await Promise.all(accounts.map((a, i) => new Promise((ok, ko) => api.tx.balances.transferKeepAlive(a.address, 1_000n * 10n ** 12n)
  .signAndSend(ferdie, { nonce: nonce + i }, ({ status, dispatchError }) => { if (dispatchError) ko(new Error(dispatchError.toString())); if (status.isInBlock) ok(); }).catch(ko))));
log(`funded ${KEYS} accounts`);
// Alice's genesis stake secures 100 open jobs (JobCollateral 100 VRTY each), and an answer at
// commit leaves its job open for the challenge window: bond enough for the run, as the load run
// does, so that the operator's stake is not what this measures.
await new Promise((ok, ko) => api.tx.operators.bondExtra(200_000n * 10n ** 12n).signAndSend(k.addFromUri('//Alice'), ({ status, dispatchError }) => {
  if (dispatchError) ko(new Error(`bond_extra: ${dispatchError.toString()}`)); if (status.isInBlock) ok();
}).catch(ko));
log('Alice bonded 200,000 VRTY more (2,000 open jobs)');

const model = (await (await fetch(`${gw}/v1/models/glassllm-en`, { headers: { authorization: 'Bearer sk-bench-0-0000' } })).json());
const vlm = join(process.env.VERITY_CACHE ?? join(process.env.HOME, '.cache', 'verity'), 'dev-text-models', 'glassllm-en.vlm');
const prompt = (i) => `Story number ${i}: once upon a time`;

// 1. verity-worker generate alone.
const cli = [];
for (let i = 0; i < SEQ; i++) {
  const s = performance.now();
  execFileSync(WORKER_BIN, ['generate', '--json', '--model', vlm, '--prompt', prompt(1000 + i), '--max-tokens', String(NEW)], { stdio: ['ignore', 'pipe', 'pipe'] });
  cli.push(performance.now() - s);
}
const rpcTimes = [];
for (let i = 0; i < SEQ; i++) {
  const { tokens } = await rpc(workerPort, 'tokenize', [model.verity.model_id, { text: prompt(2000 + i) }]);
  const s = performance.now();
  const job = { prompt: tokens, max_new_tokens: NEW, temperature_q16: 0, top_k: 0, top_p_q16: 65536, seed: `0x${'00'.repeat(32)}` };
  await rpc(workerPort, 'generate', [model.verity.model_id, job, 60_000]);
  rpcTimes.push(performance.now() - s);
}
log(`verity-worker generate: CLI median ${ms(median(cli))} ms, RPC median ${ms(median(rpcTimes))} ms`);

// 2. Through the gateway, one at a time.
const headers = (i) => ({ 'content-type': 'application/json', authorization: `Bearer sk-bench-${i % KEYS}-0000` });
async function streamed(i, p) {
  const s = performance.now();
  const res = await fetch(`${gw}/v1/completions`, { method: 'POST', headers: headers(i), body: JSON.stringify({ model: 'glassllm-en', prompt: p, max_tokens: NEW, stream: true }) });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let first = null;
  let accepted = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let j;
    while ((j = buf.indexOf('\n\n')) >= 0) {
      const data = buf.slice(6, j);
      buf = buf.slice(j + 2);
      if (data === '[DONE]') continue;
      const ev = JSON.parse(data);
      if (ev.error) throw new Error(ev.error.message);
      if (accepted === null) accepted = performance.now() - s;
      if (first === null && ev.choices?.[0]?.text) first = performance.now() - s;
    }
  }
  return { accepted, first, total: performance.now() - s };
}
async function plain(i, p) {
  const s = performance.now();
  const res = await fetch(`${gw}/v1/completions`, { method: 'POST', headers: headers(i), body: JSON.stringify({ model: 'glassllm-en', prompt: p, max_tokens: NEW }) });
  const body = await res.json();
  if (!res.ok) throw new Error(`${res.status} ${body.error?.message}`);
  return { total: performance.now() - s, blocks: body.verity.committed_block - body.verity.submitted_block };
}
const ttft = [];
const accepted = [];
const committed = [];
for (let i = 0; i < SEQ; i++) {
  const r = await streamed(i, prompt(3000 + i));
  ttft.push(r.first);
  accepted.push(r.accepted);
  committed.push((await plain(i, prompt(4000 + i))).total);
}
log(`gateway, one at a time: job accepted (first event) median ${ms(median(accepted))} ms, first token ${ms(median(ttft))} ms, committed answer ${ms(median(committed))} ms`);

// 3. Throughput.
const gwPid = Number(execFileSync('pgrep', ['-f', `verity-gateway.js.*--port ${gwPort}`], { encoding: 'utf8' }).trim().split('\n')[0]);
const cpu = () => { const f = readFileSync(`/proc/${gwPid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const until = performance.now() + SECONDS * 1000;
const lat = [];
const errors = {};
let next = 10_000;
const cpu0 = cpu();
const w0 = performance.now();
await Promise.all(Array.from({ length: CONC }, async (_, c) => {
  while (performance.now() < until) {
    const i = next++;
    try {
      lat.push((await plain(c, prompt(i))).total);
    } catch (e) {
      const key = e.message.slice(0, 60);
      errors[key] = (errors[key] ?? 0) + 1;
      await new Promise((ok) => setTimeout(ok, 1_000)); // a refused request waits before the next
    }
  }
}));
const wall = (performance.now() - w0) / 1000;
const cpuPer = (cpu() - cpu0) / Math.max(1, lat.length);
log(`throughput: ${lat.length} answered in ${wall.toFixed(1)} s = ${(lat.length / wall).toFixed(2)}/s with ${CONC} clients; p50 ${ms(pct(lat, 50))} ms, p99 ${ms(pct(lat, 99))} ms; gateway CPU ${(cpuPer * 1000).toFixed(1)} ms per request; errors ${JSON.stringify(errors)}`);

const report = {
  date: new Date().toISOString(), model: 'glassllm-en', newTokens: NEW,
  alone: { cliMedianMs: median(cli), rpcMedianMs: median(rpcTimes) },
  gateway: { acceptedMedianMs: median(accepted), firstTokenMedianMs: median(ttft), committedMedianMs: median(committed), firstTokenMs: ttft, committedMs: committed },
  throughput: { clients: CONC, seconds: wall, answered: lat.length, perSecond: lat.length / wall, p50Ms: pct(lat, 50), p90Ms: pct(lat, 90), p99Ms: pct(lat, 99), gatewayCpuMsPerRequest: cpuPer * 1000, errors },
};
console.log(JSON.stringify(report, null, 2));
if (OUT) writeFileSync(OUT, JSON.stringify(report, null, 2));
await api.disconnect();
stop();
process.exit(0);
