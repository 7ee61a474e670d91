// verity-gateway end to end: a real dev chain (verity-node), its inference worker serving the
// small model and SmolLM2-135M-Instruct, the gateway in front, and the clients people use: the
// official OpenAI Python client, curl, and the chat page in headless Chromium. Then a faulty
// operator beaten by a watcher, seen through the gateway's status endpoint.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';
import puppeteer from 'puppeteer-core';
import { REPO, LOG_DIR, captureOutput, startNode, waitFor, runNodeCmd, freePort } from '../lib/node.js';
import { startWorker, workerGenerate } from '../lib/worker.js';
import { BLOCKS, connect, keyring, send, stopAll, startFraudNetwork } from '../lib/chain.js';
import { textModel, serveTextModels } from '../lib/text.js';
import { startGateway, gwRequest, curl, parseStream, openaiClient } from '../lib/gateway.js';

const KEY = 'sk-verity-test-charlie';
const ERR_KEY = 'sk-verity-test-dave'; // the error cases' account: no other job touches it
const POOR_KEY = 'sk-verity-test-poor';
const KEYS = { [KEY]: '//Charlie', [ERR_KEY]: '//Dave', [POOR_KEY]: '//Poor' };
const PROMPT = 'Once upon a time there was a little girl';
const CHAT = 'What is the capital of France?';
const hex = (s) => (s.startsWith('0x') ? s : `0x${s}`).toLowerCase();
const tokensHash = (tokens) => {
  const b = new Uint8Array(tokens.length * 4);
  tokens.forEach((t, i) => new DataView(b.buffer).setUint32(i * 4, t, true));
  return blake2AsHex(b, 256);
};

describe('gateway: OpenAI clients against a dev chain', () => {
  let small, smol, worker, node, gw, api;
  before(async () => {
    await cryptoWaitReady();
    [small, smol] = await Promise.all([textModel('small'), textModel('smollm2')]);
    worker = await startWorker('gw-worker', { textModels: [small.vlm, smol.vlm] });
    node = await startNode('gw-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    await serveTextModels(node, [small, smol]);
    api = await connect(node);
    // //Poor holds 0.05 VRTY: less than any request's max fee.
    const k = keyring();
    await send(api, api.tx.balances.transferKeepAlive(k.addFromUri('//Poor').address, 50_000_000_000n), k.addFromUri('//Ferdie'), 'fund //Poor');
    gw = await startGateway('gw', { node, worker, keys: KEYS });
  }, { timeout: 900_000 });
  after(async () => {
    await api?.disconnect();
    await stopAll(gw, node, worker);
  });

  /** What must not change on a refused request: balances of the key's account, the job count. */
  async function snapshot(seed) {
    const who = keyring().addFromUri(seed).address;
    const a = await api.query.system.account(who);
    return { free: a.data.free.toBigInt(), reserved: a.data.reserved.toBigInt(), jobs: (await api.query.jobs.nextJobId()).toNumber() };
  }

  test('every error: OpenAI\'s status and error body, no job submitted, no balance changed', { timeout: 600_000 }, async () => {
    const chat = (extra = {}) => ({ model: smol.name, messages: [{ role: 'user', content: CHAT }], max_tokens: 4, ...extra });
    const dead = await startGateway('gw-dead', { url: `ws://127.0.0.1:${await freePort()}`, worker, keys: KEYS, waitForChain: false });
    try {
      const cases = [
        ['malformed JSON', 400, 'invalid_request_error', 'invalid_json', () => gwRequest(gw, 'POST', '/v1/chat/completions', { key: ERR_KEY, raw: '{"model": ' })],
        ['a bad parameter', 400, 'invalid_request_error', null, () => gwRequest(gw, 'POST', '/v1/chat/completions', { key: ERR_KEY, body: chat({ temperature: 7 }) })],
        ['a context overflow', 400, 'invalid_request_error', 'context_length_exceeded', () => gwRequest(gw, 'POST', '/v1/completions', { key: ERR_KEY, body: { model: small.name, prompt: PROMPT, max_tokens: 500 } })],
        ['an unknown model', 404, 'invalid_request_error', 'model_not_found', () => gwRequest(gw, 'POST', '/v1/chat/completions', { key: ERR_KEY, body: chat({ model: 'gpt-4o' }) })],
        ['no API key', 401, 'authentication_error', 'missing_api_key', () => gwRequest(gw, 'POST', '/v1/chat/completions', { body: chat() })],
        ['a wrong API key', 401, 'authentication_error', 'invalid_api_key', () => gwRequest(gw, 'POST', '/v1/chat/completions', { key: 'sk-not-a-key', body: chat() })],
        ['a deadline shorter than a commitment', 504, 'timeout', 'deadline_too_short', () => gwRequest(gw, 'POST', '/v1/chat/completions', { key: ERR_KEY, body: chat({ verity: { timeout: 1 } }) })],
        ['the chain unreachable', 503, 'service_unavailable', 'chain_unreachable', () => gwRequest(dead, 'POST', '/v1/chat/completions', { key: ERR_KEY, body: chat() })],
      ];
      for (const [what, status, type, code, call] of cases) {
        const before = await snapshot('//Dave');
        const r = await call();
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.type, type, what);
        assert.equal(typeof r.body.error.message, 'string', what);
        if (code) assert.equal(r.body.error.code, code, what);
        assert.deepEqual(await snapshot('//Dave'), before, `${what}: no job, no balance change`);
      }
      // Insufficient funds: //Poor cannot cover the max fee.
      const poor = await snapshot('//Poor');
      const r = await gwRequest(gw, 'POST', '/v1/chat/completions', { key: POOR_KEY, body: chat() });
      assert.equal(r.status, 402, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'insufficient_funds');
      assert.deepEqual(await snapshot('//Poor'), poor, 'no job, no balance change');
      // Pool full: a gateway admitting one request in flight per key refuses the second.
      const one = await startGateway('gw-one', { node, worker, keys: KEYS, args: ['--max-inflight', '1'] });
      try {
        const jobs = (await api.query.jobs.nextJobId()).toNumber();
        const first = gwRequest(one, 'POST', '/v1/completions', { key: ERR_KEY, body: { model: small.name, prompt: PROMPT, max_tokens: 4 } });
        await new Promise((ok) => setTimeout(ok, 500));
        const second = await gwRequest(one, 'POST', '/v1/completions', { key: ERR_KEY, body: { model: small.name, prompt: PROMPT, max_tokens: 4 } });
        assert.equal(second.status, 429, JSON.stringify(second.body));
        assert.equal(second.body.error.type, 'rate_limit_exceeded');
        const ok = await first;
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal((await api.query.jobs.nextJobId()).toNumber(), jobs + 1, 'only the admitted request became a job');
        assert.equal(ok.body.verity.job, jobs);
      } finally {
        await one.stop();
      }
    } finally {
      await dead.stop();
    }
  });

  test('the official OpenAI Python client: models, a chat completion and a streamed one (SmolLM2) and a completion (small model), equal to verity-worker generate, with their provenance', { timeout: 900_000 }, async () => {
    const localChat = workerGenerate(smol.vlm, { chat: CHAT, maxTokens: 16 });
    const localText = workerGenerate(small.vlm, { prompt: PROMPT, maxTokens: 16 });
    const out = await openaiClient(['--base-url', gw.base, '--api-key', KEY, '--model', smol.name, '--chat', CHAT, '--prompt', PROMPT, '--completion-model', small.name, '--max-tokens', '16']);
    assert.deepEqual(out.models.sort(), [small.name, smol.name].sort());
    for (const [what, got] of [['chat', out.chat], ['stream', out.stream]]) {
      assert.equal(got.text, localChat.text, `${what}: the text verity-worker generate --chat gives`);
      const v = got.verity;
      assert.equal(v.model_id, smol.id, `${what}: the model id`);
      assert.equal(v.chain, api.genesisHash.toHex());
      assert.equal(v.output_tokens_hash, tokensHash(localChat.tokens));
      assert.equal(v.prompt_tokens_hash, tokensHash(localChat.prompt_tokens));
      assert.equal(v.job_root, hex(localChat.job_root));
      assert.ok(['committed', 'final'].includes(v.status), v.status);
      // The job on chain is this one: Charlie's, SmolLM2's, with the same prompt.
      const gen = (await api.query.jobs.generations(v.job)).unwrap();
      assert.deepEqual(gen.prompt.map((t) => t.toNumber()), localChat.prompt_tokens);
      const job = (await api.query.jobs.jobs(v.job)).unwrap();
      assert.equal(job.model.toHex(), smol.id);
      assert.equal(job.requester.toString(), keyring().addFromUri('//Charlie').address);
    }
    assert.notEqual(out.chat.verity.job, out.stream.verity.job, 'two requests, two jobs');
    // 'stop' when the model ended its answer (end token) within the 16 tokens, else 'length'.
    assert.equal(out.chat.finish_reason, localChat.tokens.length < 16 ? 'stop' : 'length');
    assert.equal(out.chat.usage.completion_tokens, localChat.tokens.length);
    assert.equal(out.completion.text, localText.text, 'the completion: verity-worker generate --prompt\'s text');
    assert.equal(out.completion.verity.model_id, small.id);
    assert.deepEqual(out.unknown_model, { status: 404, code: 'model_not_found' });
    console.log(`# ${out.client}: chat job ${out.chat.verity.job} ${JSON.stringify(out.chat.text)}; stream job ${out.stream.verity.job} in ${out.stream.chunks} chunks`);
  });

  test('curl: a completion at finality and a streamed one; the receipt from the gateway verifies offline and re-generates', { timeout: 900_000 }, async () => {
    const local = workerGenerate(small.vlm, { prompt: PROMPT, maxTokens: 12, extra: ['--seed', '7'] });
    const body = (extra) => JSON.stringify({ model: small.name, prompt: PROMPT, max_tokens: 12, seed: 7, ...extra });
    const auth = ['-H', `Authorization: Bearer ${KEY}`, '-H', 'Content-Type: application/json'];
    const streamed = parseStream(await curl(['-N', ...auth, '-d', body({ stream: true }), `${gw.base}/completions`]));
    assert.equal(streamed.text, local.text, 'streamed: verity-worker generate\'s text');
    assert.ok(streamed.done, 'the stream ends with [DONE]');
    assert.equal(streamed.verity.job_root, hex(local.job_root));
    const fin = JSON.parse(await curl([...auth, '-d', body({ verity: { wait: 'final' } }), `${gw.base}/completions`]));
    assert.equal(fin.choices[0].text, local.text);
    assert.equal(fin.verity.status, 'final', 'answered at finality');
    assert.equal(fin.verity.model_id, small.id);
    // The status endpoint and the receipt, as any client fetches them.
    const status = JSON.parse(await curl([`${gw.url}/v1/verity/jobs/${fin.verity.job}`]));
    assert.equal(status.status, 'final');
    const dir = mkdtempSync(join(tmpdir(), 'verity-gw-receipt-'));
    try {
      const file = join(dir, 'receipt.json');
      await curl(['-f', '-o', file, `${gw.url}${fin.verity.receipt_url}`]);
      const verified = runNodeCmd(['receipt', 'verify', file, '--chain', 'dev', '--allow-dev-keys', '--model', small.vlm]);
      assert.match(verified, /outcome:\s+final/);
      assert.match(verified, new RegExp(`re-generated with the reference interpreter: the same ${local.tokens.length} tokens and job root ${hex(local.job_root)}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Before finality the receipt is refused with a reason.
    const open = await gwRequest(gw, 'GET', `/v1/verity/receipts/${streamed.verity.job}`);
    assert.ok([200, 409].includes(open.status), JSON.stringify(open.body));
  });

  test('the chat page in headless Chromium: a prompt gives the answer and its provenance', { timeout: 600_000 }, async () => {
    const local = workerGenerate(smol.vlm, { chat: CHAT, maxTokens: 8 });
    const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${gw.url}/?key=${KEY}`);
      await page.waitForFunction((name) => [...document.querySelectorAll('#model option')].some((o) => o.value === name), { timeout: 60_000 }, smol.name);
      await page.select('#model', smol.name);
      await page.$eval('#max-tokens', (e) => { e.value = '8'; });
      await page.type('#prompt', CHAT);
      await page.click('#send');
      await page.waitForFunction(() => !document.querySelector('#send').disabled && document.querySelector('#answer').textContent.length > 0, { timeout: 300_000 });
      const shown = await page.evaluate(() => Object.fromEntries(['answer', 'prov-model', 'prov-model-id', 'prov-operator', 'prov-job', 'prov-status', 'error']
        .map((id) => [id, document.getElementById(id).textContent])));
      assert.equal(shown.error, '');
      assert.equal(shown.answer, local.text, 'the page shows verity-worker generate\'s answer');
      assert.equal(shown['prov-model'], smol.name);
      assert.equal(shown['prov-model-id'], smol.id);
      assert.equal(shown['prov-operator'], keyring().addFromUri('//Alice').address);
      assert.ok(['committed', 'final'].includes(shown['prov-status']), shown['prov-status']);
      const job = (await api.query.jobs.jobs(Number(shown['prov-job']))).unwrap();
      assert.equal(job.model.toHex(), smol.id, 'the job the page names is SmolLM2\'s');
    } finally {
      await browser.close();
    }
  });
});

describe('gateway: a later fraud proof', () => {
  test('a job of a faulty operator, answered at commit, shows status fraud once the watcher wins', { timeout: 900_000 }, async () => {
    await cryptoWaitReady();
    const model = await textModel('small');
    const net = await startFraudNetwork('gw-fraud', { fault: 'lm-weights', textModels: [model.vlm] });
    let gw;
    try {
      await serveTextModels(net.alice, [model]);
      gw = await startGateway('gw-fraud-gateway', { node: net.alice, worker: net.honest, keys: KEYS });
      const r = await gwRequest(gw, 'POST', '/v1/completions', { key: KEY, body: { model: model.name, prompt: PROMPT, max_tokens: 24 } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.verity.status, 'committed', 'answered at commit');
      const honest = workerGenerate(model.vlm, { prompt: PROMPT, maxTokens: 24 });
      assert.notEqual(r.body.verity.output_tokens_hash, tokensHash(honest.tokens), 'the faulty operator\'s answer is not the honest one');
      const s = await waitFor(`job ${r.body.verity.job} proven fraudulent`, async () => {
        const st = await gwRequest(gw, 'GET', r.body.verity.status_url);
        return st.body.status === 'fraud' ? st.body : null;
      }, { timeoutMs: BLOCKS(12), everyMs: 2_000 });
      assert.ok(s.outcome.generationFraud, JSON.stringify(s.outcome));
      assert.deepEqual(s.history.map((h) => h.status).filter((x, i, a) => a.indexOf(x) === i).at(-1), 'fraud');
      console.log(`# fraud seen through the gateway: job ${s.job}, ${JSON.stringify(s.history)}`);
    } finally {
      await stopAll(gw, net);
    }
  });
});

describe('gateway: make dev', () => {
  test('scripts/dev.sh (make dev) starts the gateway with a dev API key; it lists the served model, answers, and stops with the chain', { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'verity-gw-dev-'));
    const [rpcPort, p2pPort, workerPort, gwPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const dev = spawn('bash', [join(REPO, 'scripts', 'dev.sh'), '--tmp', '--rpc-port', String(rpcPort), '--listen-addr', `/ip4/127.0.0.1/tcp/${p2pPort}`,
      '--no-mdns', '--no-telemetry', '--no-prometheus'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env, VERITY_WORKER_LISTEN: `127.0.0.1:${workerPort}`, VERITY_DEV_MODELS: join(dir, 'models'), VERITY_WORKER_LOG: join(dir, 'worker.log'),
        VERITY_DEV_SMOLLM2: '0', VERITY_GATEWAY_LISTEN: `127.0.0.1:${gwPort}`, VERITY_GATEWAY_KEYS: join(dir, 'keys.json'), VERITY_GATEWAY_LOG: join(dir, 'gateway.log'),
      },
    });
    const output = captureOutput(dev, join(LOG_DIR, `gw-dev-${rpcPort}.log`));
    const exited = new Promise((ok) => dev.on('exit', ok));
    const gw = { url: `http://127.0.0.1:${gwPort}` };
    try {
      const models = await waitFor('make dev\'s gateway lists glassllm-en served by Alice', async () => {
        if (dev.exitCode !== null) { const e = new Error(`dev.sh exited: ${output()}`); e.fatal = true; throw e; }
        const r = await gwRequest(gw, 'GET', '/v1/models', { key: 'sk-verity-dev' }).catch(() => null);
        const m = r?.status === 200 ? r.body.data.find((x) => x.id === 'glassllm-en') : null;
        return m?.verity.operators.length ? m : null;
      }, { timeoutMs: 300_000, everyMs: 2_000 });
      assert.equal(models.verity.operators[0].operator, keyring().addFromUri('//Alice').address);
      const r = await gwRequest(gw, 'POST', '/v1/completions', { key: 'sk-verity-dev', body: { model: 'glassllm-en', prompt: PROMPT, max_tokens: 4 } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.verity.requester, keyring().addFromUri('//Charlie').address, 'the dev key spends //Charlie');
      const page = await fetch(`${gw.url}/`);
      assert.match(await page.text(), /id="prompt"/, 'the chat page');
    } finally {
      dev.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
    await assert.rejects(fetch(`${gw.url}/v1/models`), 'the gateway stopped with make dev');
  });
});
