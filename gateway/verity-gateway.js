#!/usr/bin/env node
// verity-gateway: an OpenAI-compatible HTTP endpoint in front of a Verity chain. Every answer
// is a generation job on chain, and says which model generated it and how to check it
// (docs/ENDPOINT.md).
//
//   node gateway/verity-gateway.js --keys keys.json [--url ws://127.0.0.1:9944]
//        [--worker http://127.0.0.1:9955] [--host 127.0.0.1] [--port 8080]
//        [--node-bin target/release/verity-node] [--receipts DIR] [--max-inflight 4]
//        [--max-tokens 64] [--timeout 300]
//
// `--keys` is a JSON file mapping API keys to the accounts that pay for their requests:
//   { "sk-...": "//Charlie", "sk-...": { "suri": "<mnemonic>" },
//     "sk-...": { "keystore": "account.json", "password": "..." } }
// (a secret URI, or a polkadot.js keystore file and its password). One key spends one account.
//
// The chain is read and written with polkadot.js (@polkadot/api: metadata-driven, the types
// come from the node's runtime metadata); text becomes tokens and back with the inference
// worker's `tokenize` / `detokenize` (the model's own tokenizer and chat template, whose hashes
// the model's header commits to).
import http from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToString, u8aToHex } from '@polkadot/util';
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');

// ---- options -------------------------------------------------------------------------------
const USAGE = `usage: verity-gateway --keys FILE [--url ws://127.0.0.1:9944] [--worker http://127.0.0.1:9955]
                      [--host 127.0.0.1] [--port 8080] [--node-bin PATH] [--receipts DIR]
                      [--max-inflight 4] [--max-tokens 64] [--timeout 300]
An OpenAI-compatible endpoint (/v1/models, /v1/chat/completions, /v1/completions) whose answers
are Verity generation jobs, with their provenance and receipts (docs/ENDPOINT.md).`;

function die(message) {
  process.stderr.write(`verity-gateway: error: ${String(message).split('\n')[0]}\n`);
  process.exit(1);
}

function parseOptions(argv) {
  const opts = {
    keys: '', url: 'ws://127.0.0.1:9944', worker: 'http://127.0.0.1:9955', host: '127.0.0.1', port: '8080',
    'node-bin': join(REPO, 'target', 'release', 'verity-node'), receipts: '', 'max-inflight': '4',
    'max-tokens': '64', timeout: '300',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !(m[1] in opts)) die(`unknown argument ${a} (see --help)`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) die(`--${m[1]} needs a value`);
    opts[m[1]] = v;
  }
  if (!opts.keys) die('--keys FILE is required (API keys -> accounts; see --help)');
  for (const name of ['port', 'max-inflight', 'max-tokens', 'timeout']) {
    const n = Number(opts[name]);
    if (!Number.isInteger(n) || n < (name === 'port' ? 0 : 1)) die(`--${name} must be a positive integer (got ${opts[name]})`);
    opts[name] = n;
  }
  if (!/^wss?:\/\//.test(opts.url)) die(`--url must start with ws:// or wss:// (got ${opts.url})`);
  return opts;
}

/** API key -> { name, pair } from the keys file. */
async function loadKeys(file) {
  let raw;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    die(`cannot read the keys file ${file}: ${e.message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw) || !Object.keys(raw).length) {
    die(`the keys file ${file} must be a JSON object of API keys`);
  }
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const keys = new Map();
  for (const [apiKey, v] of Object.entries(raw)) {
    if (apiKey.length < 8) die(`API key ${JSON.stringify(apiKey)} in ${file} is shorter than 8 characters`);
    const spec = typeof v === 'string' ? { suri: v } : v;
    try {
      let pair;
      if (spec?.suri) pair = keyring.addFromUri(spec.suri);
      else if (spec?.keystore) {
        pair = keyring.addFromJson(JSON.parse(readFileSync(resolve(dirname(file), spec.keystore), 'utf8')));
        pair.decodePkcs8(spec.password ?? '');
      } else throw new Error('give "suri" or "keystore"');
      keys.set(apiKey, { name: spec.name ?? pair.address, pair });
    } catch (e) {
      die(`the account of API key ${apiKey.slice(0, 6)}... in ${file}: ${e.message}`);
    }
  }
  return keys;
}

// ---- errors in OpenAI's format ---------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message, { type, code = null, param = null, extra } = {}) {
    super(message);
    this.status = status;
    this.type = type ?? {
      400: 'invalid_request_error', 401: 'authentication_error', 402: 'insufficient_quota',
      404: 'invalid_request_error', 409: 'invalid_request_error', 429: 'rate_limit_exceeded',
      503: 'service_unavailable', 504: 'timeout',
    }[status] ?? 'server_error';
    this.code = code;
    this.param = param;
    this.extra = extra;
  }
  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code, ...(this.extra ? { verity: this.extra } : {}) } };
  }
}
const bad = (message, param, code = null) => new ApiError(400, message, { param, code });

// ---- the chain -------------------------------------------------------------------------------
class Chain {
  constructor(url) {
    this.url = url;
    // Reconnects by itself (every 2.5 s); requests in between are answered 503.
    this.provider = new WsProvider(url, 2_500);
    this.provider.on('error', () => {});
    this.api = null;
    this.ready = ApiPromise.create({ provider: this.provider, noInitWarn: true }).then((api) => {
      this.api = api;
      return api;
    });
    this.ready.catch(() => {});
  }

  /** The API if the node answers now; 503 otherwise. */
  async live() {
    if (!this.api || !this.provider.isConnected) {
      throw new ApiError(503, `the chain at ${this.url} is unreachable; try again later`, { code: 'chain_unreachable' });
    }
    return this.api;
  }

  async timing(api) {
    if (!this.timingCache) {
      const t = await api.query.jobs.chainTiming();
      this.timingCache = t.isSome
        ? { deadline: t.unwrap().executionDeadline.toNumber(), window: t.unwrap().challengeWindow.toNumber() }
        : { deadline: api.consts.jobs.executionDeadline.toNumber(), window: api.consts.jobs.challengeWindow.toNumber() };
      this.blockMs = api.consts.babe?.expectedBlockTime?.toNumber?.() ?? api.consts.aura?.slotDuration?.toNumber?.()
        ?? (api.consts.timestamp.minimumPeriod.toNumber() * 2);
    }
    return this.timingCache;
  }

  /** The registered language models with their servers: [{ id, name, vocab, context, servers }]. */
  async textModels(api) {
    const out = [];
    for (const [key, meta] of await api.query.models.metadata.entries()) {
      const id = key.args[0].toHex();
      const record = await api.query.models.models(id);
      if (record.isNone || meta.isNone || !record.unwrap().kind.isText) continue;
      const text = record.unwrap().kind.asText;
      const m = meta.unwrap();
      const servers = (await api.query.operators.servers(id)).map((s) => ({ operator: s.operator.toString(), price: s.price.toBigInt() }));
      out.push({
        id, name: u8aToString(m.name), publisher: record.unwrap().publisher?.toString?.() ?? null,
        vocab: text.vocab.toNumber(), context: text.maxContext.toNumber(), servers,
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async model(api, nameOrId) {
    const all = await this.textModels(api);
    const hit = all.find((m) => m.name === nameOrId || m.id === String(nameOrId).toLowerCase());
    if (!hit) {
      throw new ApiError(404, `The model '${nameOrId}' does not exist on this chain (its language models: ${all.map((m) => m.name).join(', ') || 'none'})`, { code: 'model_not_found', param: 'model' });
    }
    return hit;
  }

  /**
   * Where a job stands at block `hash` (default the best block): { status, ... } with status
   * `submitted` (assigned, not committed), `committed`, `challenged`, `final`, `fraud`, `expired`,
   * or null when the chain knows nothing of it.
   */
  async jobState(api, job, hash) {
    const at = hash ? await api.at(hash) : api;
    const [j, dispute, receipt] = await Promise.all([at.query.jobs.jobs(job), at.query.disputes.disputes(job), at.query.jobs.receipts(job)]);
    if (j.isSome) {
      const r = j.unwrap();
      const base = { model: r.model.toHex(), requester: r.requester.toString(), operator: r.operator.toString(), maxFee: r.maxFee.toString(), submittedAt: r.submittedAt.toNumber() };
      if (r.status.isAssigned) return { ...base, status: 'submitted', deadline: r.status.asAssigned.deadline.toNumber() };
      const c = r.status.asCommitted;
      return {
        ...base, status: dispute.isSome ? 'challenged' : 'committed', tokens: tokensOf(c.output.toU8a(true)),
        jobRoot: c.traceRoot.toHex(), committedAt: c.committedAt.toNumber(), windowEnd: c.windowEnd.toNumber(),
      };
    }
    if (receipt.isSome) {
      const r = receipt.unwrap();
      const o = r.outcome;
      return {
        status: o.isFinal ? 'final' : o.isExpired ? 'expired' : 'fraud', model: r.model.toHex(), requester: r.requester.toString(),
        operator: r.operator.toString(), tokens: tokensOf(r.output.toU8a(true)), jobRoot: r.traceRoot.isSome ? r.traceRoot.unwrap().toHex() : null,
        fee: r.fee.toString(), closedAt: r.closedAt.toNumber(), outcome: o.toJSON(),
      };
    }
    if ((await at.query.jobs.receiptDigests(job)).isSome) return { status: 'closed', pruned: true };
    return null;
  }
}

/** The tokens of a `Vec<u32>` output (4 bytes each, little-endian). */
function tokensOf(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = [];
  for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(view.getUint32(i, true));
  return out;
}

/** blake2-256 of token ids as the chain stores them (u32 little-endian each). */
function tokensHash(tokens) {
  const b = new Uint8Array(tokens.length * 4);
  const v = new DataView(b.buffer);
  tokens.forEach((t, i) => v.setUint32(i * 4, t, true));
  return blake2AsHex(b, 256);
}

// ---- the inference worker (tokenizer) ----------------------------------------------------------
async function workerCall(url, method, params) {
  let res;
  try {
    res = await fetch(url, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new ApiError(503, `the tokenizer (inference worker at ${url}) is unreachable (${e.cause?.code ?? e.message})`, { code: 'worker_unreachable' });
  }
  const body = await res.json();
  if (body.error) {
    const err = new ApiError(body.error.code === -32001 ? 404 : 400, `${method}: ${body.error.message}`, { code: `worker_${body.error.code}` });
    err.worker = body.error;
    throw err;
  }
  return body.result;
}

// ---- the gateway -------------------------------------------------------------------------------
class Gateway {
  constructor(opts, keys) {
    this.opts = opts;
    this.keys = keys;
    this.chain = new Chain(opts.url);
    this.inflight = new Map(); // API key -> open requests
    this.sending = new Map(); // account -> promise chain (one submission at a time per account)
    this.nonces = new Map(); // account -> the next nonce after this gateway's last accepted transaction
    this.jobs = new Map(); // job -> what this gateway knows (status kept current by follow())
    this.receiptDir = opts.receipts || mkdtempSync(join(tmpdir(), 'verity-gateway-receipts-'));
    // A directory of its own (no --receipts) is removed when the process exits.
    if (!opts.receipts) process.on('exit', () => rmSync(this.receiptDir, { recursive: true, force: true }));
    mkdirSync(this.receiptDir, { recursive: true });
    this.page = readFileSync(join(HERE, 'public', 'index.html'));
    this.chain.ready.then((api) => this.follow(api), () => {});
  }

  auth(req) {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m) throw new ApiError(401, 'You did not provide an API key: send it as "Authorization: Bearer <key>".', { code: 'missing_api_key' });
    const user = this.keys.get(m[1]);
    if (!user) throw new ApiError(401, `Incorrect API key provided: ${m[1].slice(0, 6)}...`, { code: 'invalid_api_key' });
    return { key: m[1], ...user };
  }

  /** Keep every job this gateway submitted current: its status at each finalized block. */
  async follow(api) {
    await api.rpc.chain.subscribeFinalizedHeads(async (header) => {
      const open = [...this.jobs.values()].filter((j) => !['final', 'fraud', 'expired'].includes(j.status));
      for (const j of open) {
        try {
          const s = await this.chain.jobState(api, j.job, header.hash);
          if (s) this.update(j, s, header.number.toNumber());
        } catch { /* the next block retries */ }
      }
    }).catch(() => {});
  }

  update(j, s, block) {
    // States come from best blocks (a request waiting for its commitment) and finalized ones
    // (the follower): a state older than the one already seen never replaces it.
    if (s.status === 'closed' || block < (j.seenAt ?? 0)) return;
    j.seenAt = block;
    if (s.status !== j.status) j.history.push({ status: s.status, block });
    j.status = s.status;
    if (s.windowEnd !== undefined) j.windowEnd = s.windowEnd;
    if (s.committedAt !== undefined) j.committedAt = s.committedAt;
    if (s.closedAt !== undefined) { j.closedAt = s.closedAt; j.outcome = s.outcome; j.fee = s.fee; }
  }

  /** The `verity` object of a job. */
  provenance(j) {
    return {
      chain: j.chain, chain_name: j.chainName, job: j.job, model: j.modelName, model_id: j.model, operator: j.operator,
      requester: j.requester, status: j.status, prompt_tokens: j.prompt.length, prompt_tokens_hash: tokensHash(j.prompt),
      output_tokens_hash: j.tokens ? tokensHash(j.tokens) : null, text_hash: j.textHash ?? null, job_root: j.jobRoot ?? null,
      submitted_block: j.submittedAt, committed_block: j.committedAt ?? null, window_end: j.windowEnd ?? null,
      closed_block: j.closedAt ?? null, outcome: j.outcome ?? null, price_per_position: j.price, max_fee: j.maxFee, fee: j.fee ?? null,
      history: j.history, status_url: `/v1/verity/jobs/${j.job}`, receipt_url: `/v1/verity/receipts/${j.job}`,
    };
  }

  // -- requests --------------------------------------------------------------------------------
  async handle(req, res) {
    const url = new URL(req.url, 'http://gateway');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    try {
      if (req.method === 'GET' && (p === '/' || p === '/index.html')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(this.page);
      }
      if (req.method === 'GET' && p === '/v1/models') return json(res, 200, await this.models(this.auth(req)));
      let m = /^\/v1\/models\/(.+)$/.exec(p);
      if (req.method === 'GET' && m) {
        this.auth(req);
        const api = await this.chain.live();
        return json(res, 200, modelObject(await this.chain.model(api, decodeURIComponent(m[1]))));
      }
      if (req.method === 'POST' && p === '/v1/chat/completions') return await this.complete(req, res, 'chat');
      if (req.method === 'POST' && p === '/v1/completions') return await this.complete(req, res, 'text');
      m = /^\/v1\/verity\/jobs\/(\d+)$/.exec(p);
      if (req.method === 'GET' && m) return json(res, 200, await this.status(Number(m[1])));
      m = /^\/v1\/verity\/receipts\/(\d+)$/.exec(p);
      if (req.method === 'GET' && m) return await this.receipt(res, Number(m[1]));
      throw new ApiError(404, `Unknown request URL: ${req.method} ${p}`, { code: 'unknown_url' });
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e.message}`, { type: 'server_error' });
      if (res.headersSent) {
        // A stream already began: the error is its last event.
        res.write(`data: ${JSON.stringify(err.body())}\n\n`);
        return res.end();
      }
      return json(res, err.status, err.body());
    }
  }

  async models(_user) {
    const api = await this.chain.live();
    return { object: 'list', data: (await this.chain.textModels(api)).map(modelObject) };
  }

  async status(job) {
    const known = this.jobs.get(job);
    if (known) return this.provenance(known);
    const api = await this.chain.live();
    const s = await this.chain.jobState(api, job);
    if (!s) throw new ApiError(404, `job ${job} is unknown to this chain`, { code: 'job_not_found' });
    return { job, ...s, receipt_url: `/v1/verity/receipts/${job}` };
  }

  async receipt(res, job) {
    const file = join(this.receiptDir, `receipt-${job}.json`);
    if (!existsSync(file)) {
      const api = await this.chain.live();
      const fin = await api.rpc.chain.getFinalizedHead();
      const s = await this.chain.jobState(api, job, fin);
      if (!s) throw new ApiError(404, `job ${job} is unknown to this chain`, { code: 'job_not_found' });
      if (!['final', 'fraud', 'expired'].includes(s.status)) {
        throw new ApiError(409, `job ${job} is ${s.status}: its receipt exists once it closes${s.windowEnd ? ` (challenge window ends at #${s.windowEnd})` : ''}`, { code: 'job_open' });
      }
      const rpcUrl = this.opts.url.replace(/^ws/, 'http');
      const tmp = `${file}.part`;
      const out = await runProcess(this.opts['node-bin'], ['receipt', 'fetch', '--rpc', rpcUrl, '--job', String(job), '--out', tmp]);
      if (out.code !== 0) throw new ApiError(502, `receipt fetch failed: ${out.stderr.trim().split('\n').at(-1)}`, { type: 'server_error', code: 'receipt_fetch' });
      writeFileSync(file, readFileSync(tmp));
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="verity-receipt-${job}.json"` });
    res.end(readFileSync(file));
  }

  /** Check a completion request's body; returns what the job needs. */
  validate(body, kind) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('The request body must be a JSON object.', null);
    if (typeof body.model !== 'string' || !body.model) throw bad("'model' is required (a model name from /v1/models).", 'model', 'missing_model');
    let prompt;
    if (kind === 'chat') {
      if (!Array.isArray(body.messages) || body.messages.length === 0) throw bad("'messages' must be a non-empty array.", 'messages');
      prompt = { messages: body.messages.map((m, i) => {
        if (!m || typeof m !== 'object' || !['system', 'user', 'assistant', 'developer'].includes(m.role)) {
          throw bad(`messages[${i}].role must be one of system, user, assistant.`, `messages[${i}].role`);
        }
        let content = m.content;
        if (Array.isArray(content)) {
          if (!content.every((c) => c?.type === 'text' && typeof c.text === 'string')) throw bad(`messages[${i}].content: only text parts are supported.`, `messages[${i}].content`);
          content = content.map((c) => c.text).join('');
        }
        if (typeof content !== 'string') throw bad(`messages[${i}].content must be a string.`, `messages[${i}].content`);
        return { role: m.role === 'developer' ? 'system' : m.role, content };
      }) };
    } else {
      let text = body.prompt;
      if (Array.isArray(text) && text.length === 1 && typeof text[0] === 'string') text = text[0];
      if (typeof text !== 'string' || !text) throw bad("'prompt' must be a non-empty string.", 'prompt');
      prompt = { text };
    }
    const n = body.n ?? 1;
    if (n !== 1) throw bad("Only 'n' = 1 is supported (one job, one answer).", 'n');
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
    if (maxTokens !== null && (!Number.isInteger(maxTokens) || maxTokens < 1)) throw bad("'max_tokens' must be a positive integer.", 'max_tokens');
    const temperature = body.temperature ?? 0;
    if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= 2)) throw bad("'temperature' must be a number in [0, 2].", 'temperature');
    const topP = body.top_p ?? 1;
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw bad("'top_p' must be a number in (0, 1].", 'top_p');
    const seed = body.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0) throw bad("'seed' must be a non-negative integer.", 'seed');
    let stop = body.stop ?? [];
    if (typeof stop === 'string') stop = [stop];
    if (!Array.isArray(stop) || stop.length > 4 || !stop.every((s) => typeof s === 'string' && s.length > 0)) throw bad("'stop' must be a string or up to 4 non-empty strings.", 'stop');
    const v = body.verity ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw bad("'verity' must be an object.", 'verity');
    const wait = v.wait ?? 'commit';
    if (!['commit', 'final'].includes(wait)) throw bad("'verity.wait' must be 'commit' or 'final'.", 'verity.wait');
    const timeout = v.timeout ?? this.opts.timeout;
    if (typeof timeout !== 'number' || !(timeout > 0)) throw bad("'verity.timeout' must be a positive number of seconds.", 'verity.timeout');
    const seedBytes = new Uint8Array(32);
    new DataView(seedBytes.buffer).setBigUint64(0, BigInt(seed), true);
    return {
      prompt, maxTokens, stop, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true, wait, timeout,
      params: { temperatureQ16: Math.round(temperature * 65536), topK: 0, topPQ16: Math.round(topP * 65536), seed: seedBytes },
    };
  }

  async complete(req, res, kind) {
    const user = this.auth(req);
    const started = Date.now();
    const body = await readJson(req);
    const r = this.validate(body, kind);
    const api = await this.chain.live();
    const model = await this.chain.model(api, body.model);
    if (!model.servers.length) throw new ApiError(503, `nobody serves ${model.name} at the moment`, { code: 'no_operator' });
    const tokenized = await workerCall(this.opts.worker, 'tokenize', [model.id, r.prompt]).catch((e) => {
      if (e.worker) throw bad(`The prompt cannot be tokenized for ${model.name}: ${e.worker.message}`, kind === 'chat' ? 'messages' : 'prompt', 'bad_prompt');
      throw e;
    });
    const prompt = tokenized.tokens;
    const room = model.context - prompt.length;
    if (room < 1) throw bad(`This model's maximum context length is ${model.context} tokens; the prompt has ${prompt.length}.`, kind === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
    const maxNew = r.maxTokens ?? Math.min(this.opts['max-tokens'], room);
    if (prompt.length + maxNew > model.context) {
      throw bad(`This model's maximum context length is ${model.context} tokens: ${prompt.length} in the prompt and ${maxNew} to generate do not fit.`, 'max_tokens', 'context_length_exceeded');
    }
    // Can the answer come in time? A commitment needs at least two blocks (inclusion, then the
    // operator's commit); finality the challenge window on top.
    const timing = await this.chain.timing(api);
    const needBlocks = r.wait === 'final' ? timing.window + 2 : 2;
    if (r.timeout * 1000 < needBlocks * this.chain.blockMs) {
      throw new ApiError(504, `An answer ${r.wait === 'final' ? 'at finality' : 'at commitment'} takes at least ${needBlocks} blocks (${(needBlocks * this.chain.blockMs / 1000).toFixed(0)} s) on this chain; the deadline is ${r.timeout} s. Nothing was submitted.`, { code: 'deadline_too_short' });
    }
    // Per key, at most --max-inflight requests at a time.
    const open = this.inflight.get(user.key) ?? 0;
    if (open >= this.opts['max-inflight']) {
      throw new ApiError(429, `Too many requests in flight for this API key (${open} of ${this.opts['max-inflight']}); retry when one is answered.`, { code: 'too_many_inflight' });
    }
    this.inflight.set(user.key, open + 1);
    try {
      return await this.run(api, res, user, model, r, prompt, maxNew, kind, started);
    } finally {
      this.inflight.set(user.key, (this.inflight.get(user.key) ?? 1) - 1);
    }
  }

  async run(api, res, user, model, r, prompt, maxNew, kind, started) {
    const price = model.servers.reduce((m, s) => (s.price > m ? s.price : m), 0n);
    const maxFee = price * BigInt(prompt.length + maxNew);
    const tx = api.tx.jobs.submitGeneration(model.id, prompt, maxNew, r.params, maxFee);
    // Funds: the max fee is held, the transaction fee paid; the account must stay alive.
    const [account, info] = await Promise.all([api.query.system.account(user.pair.address), tx.paymentInfo(user.pair)]);
    const free = account.data.free.toBigInt() - account.data.frozen.toBigInt();
    const need = maxFee + info.partialFee.toBigInt() + api.consts.balances.existentialDeposit.toBigInt();
    if (free < need) {
      throw new ApiError(402, `Insufficient funds: account ${user.pair.address} has ${vrty(free)} spendable; this request needs ${vrty(need)} (max fee ${vrty(maxFee)} = ${prompt.length + maxNew} positions × ${vrty(price)}, the transaction fee, the existential deposit). Nothing was submitted.`, { code: 'insufficient_funds' });
    }
    const deadline = started + r.timeout * 1000;
    const { job, block } = await this.submit(api, user, tx);
    const [genesis, chainName] = [api.genesisHash.toHex(), (await api.rpc.system.chain()).toString()];
    const st = await this.chain.jobState(api, job);
    const j = {
      job, chain: genesis, chainName, model: model.id, modelName: model.name, operator: st?.operator ?? null, requester: user.pair.address,
      prompt, maxNew, price: price.toString(), maxFee: maxFee.toString(), submittedAt: block, status: 'submitted', history: [{ status: 'submitted', block }],
    };
    this.jobs.set(job, j);
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-verity-${job}`;
    const created = Math.floor(started / 1000);
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    if (r.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // The job is on chain: say so at once (its id and status), then the text once committed.
      const first = kind === 'chat' ? { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null } : { index: 0, text: '', finish_reason: null, logprobs: null };
      sse(res, { id, object: `${object}.chunk`, created, model: model.name, choices: [first], verity: this.provenance(j) });
    }
    // Wait for the answer: the commitment (in a best block) or finality.
    const state = await this.await(api, j, r.wait, deadline);
    j.tokens = state.tokens;
    j.jobRoot = state.jobRoot;
    const text = (await workerCall(this.opts.worker, 'detokenize', [model.id, state.tokens])).text;
    j.textHash = blake2AsHex(new TextEncoder().encode(text), 256);
    // `stop`: the answer is cut before the first stop sequence (the job's tokens stay whole).
    let answer = text;
    let stopped = false;
    for (const s of r.stop) {
      const at = answer.indexOf(s);
      if (at >= 0) { answer = answer.slice(0, at); stopped = true; }
    }
    const finish = stopped || state.tokens.length < maxNew ? 'stop' : 'length';
    const usage = { prompt_tokens: prompt.length, completion_tokens: state.tokens.length, total_tokens: prompt.length + state.tokens.length };
    if (r.stream) {
      // One chunk per token of the committed output (the text each adds, whole characters).
      let sent = '';
      for (let i = 1; i <= state.tokens.length && sent.length < answer.length; i++) {
        let upTo = (await workerCall(this.opts.worker, 'detokenize', [model.id, state.tokens.slice(0, i)])).text;
        if (upTo.endsWith('\uFFFD') && i < state.tokens.length) continue; // a character split across tokens
        upTo = upTo.slice(0, answer.length);
        if (upTo.length <= sent.length) continue;
        const delta = upTo.slice(sent.length);
        sent = upTo;
        const choice = kind === 'chat' ? { index: 0, delta: { content: delta }, finish_reason: null, logprobs: null } : { index: 0, text: delta, finish_reason: null, logprobs: null };
        sse(res, { id, object: `${object}.chunk`, created, model: model.name, choices: [choice] });
      }
      const last = kind === 'chat' ? { index: 0, delta: {}, finish_reason: finish, logprobs: null } : { index: 0, text: '', finish_reason: finish, logprobs: null };
      sse(res, { id, object: `${object}.chunk`, created, model: model.name, choices: [last], verity: this.provenance(j) });
      if (r.includeUsage) sse(res, { id, object: `${object}.chunk`, created, model: model.name, choices: [], usage });
      res.write('data: [DONE]\n\n');
      return res.end();
    }
    const choice = kind === 'chat'
      ? { index: 0, message: { role: 'assistant', content: answer, refusal: null }, finish_reason: finish, logprobs: null }
      : { index: 0, text: answer, finish_reason: finish, logprobs: null };
    return json(res, 200, { id, object, created, model: model.name, system_fingerprint: model.id, choices: [choice], usage, verity: this.provenance(j) });
  }

  /**
   * Sign and send `tx` as the key's account, one submission at a time per account, with nonces
   * kept here (the node's `system_accountNextIndex` may not see a transaction that just entered
   * its pool). Before sending, the signed transaction is dry-run by the node's runtime
   * (`system_dryRun`): a job the chain would refuse (no operator with the stake to secure it,
   * the funds, the prompt) is answered with its error and never submitted, so it costs nothing.
   */
  async submit(api, user, tx) {
    const who = user.pair.address;
    const prev = this.sending.get(who) ?? Promise.resolve();
    let release;
    const mine = new Promise((ok) => { release = ok; });
    this.sending.set(who, prev.then(() => mine));
    await prev;
    let included;
    try {
      const chainNonce = (await api.rpc.system.accountNextIndex(who)).toNumber();
      const nonce = Math.max(chainNonce, this.nonces.get(who) ?? 0);
      // Mortal (64 blocks), born at the best block's parent: the dry run executes on top of the
      // best block, where the runtime knows its parent's hash but not its own yet.
      const best = await api.rpc.chain.getHeader();
      const birth = Math.max(0, best.number.toNumber() - 1);
      const era = api.createType('ExtrinsicEra', { current: birth, period: 64 });
      const signed = await tx.signAsync(user.pair, { nonce, era, blockHash: birth === 0 ? api.genesisHash : best.parentHash });
      await this.dryRun(api, signed);
      included = await new Promise((ok, ko) => {
        signed.send(({ status, events, dispatchError }) => {
          if (status.isReady || status.isBroadcast || status.isInBlock) {
            this.nonces.set(who, nonce + 1);
            release();
          }
          if (dispatchError) return ko(new ApiError(400, `submit_generation failed: ${dispatchErrorText(api, dispatchError)}`, { code: 'dispatch_error' }));
          if (status.isInBlock) {
            const ev = events.find(({ event }) => api.events.jobs.Submitted.is(event));
            if (!ev) return ko(new ApiError(500, 'submit_generation included without a jobs.Submitted event'));
            ok({ job: ev.event.data.job.toNumber(), hash: status.asInBlock });
          } else if (status.isDropped || status.isInvalid || status.isUsurped) {
            ko(new ApiError(429, `the transaction pool did not keep the job (${status.type}); retry`, { code: 'pool_rejected' }));
          }
        }).catch((e) => ko(poolError(e)));
      });
    } finally {
      release();
    }
    const header = await api.rpc.chain.getHeader(included.hash);
    return { job: included.job, block: header.number.toNumber() };
  }

  /** The runtime's verdict on `signed` at the best block; a refusal becomes its HTTP error. */
  async dryRun(api, signed) {
    let result;
    try {
      result = await api.rpc.system.dryRun(signed.toHex());
    } catch {
      return; // a node that does not offer system_dryRun (unsafe RPC): the pool decides
    }
    if (result.isErr) {
      const v = result.asErr;
      // A nonce after transactions still in the pool: valid once they are in; the pool decides.
      if (v.isInvalid && v.asInvalid.isFuture) return;
      if (v.isInvalid && v.asInvalid.isPayment) throw new ApiError(402, 'Insufficient funds: the account cannot pay the transaction fee. Nothing was submitted.', { code: 'insufficient_funds' });
      throw new ApiError(503, `the chain would refuse the job: ${v.toString()}. Nothing was submitted.`, { code: 'submit_rejected' });
    }
    const outcome = result.asOk;
    if (outcome.isErr) {
      const err = outcome.asErr;
      const name = dispatchErrorText(api, err);
      if (name === 'jobs.NoOperatorAvailable') {
        throw new ApiError(503, 'No operator serving this model has the free stake to secure the job now (or one at this price); retry later. Nothing was submitted.', { code: 'no_operator' });
      }
      if (/InsufficientBalance|FundsUnavailable|Funds|BalanceLow/.test(name) || (err.isToken && err.asToken.isFundsUnavailable)) {
        throw new ApiError(402, `Insufficient funds (${name}). Nothing was submitted.`, { code: 'insufficient_funds' });
      }
      throw new ApiError(400, `The chain refuses this job: ${name}. Nothing was submitted.`, { code: 'chain_refused' });
    }
  }

  /** Wait until the job is committed (`commit`) or closed (`final`), or the deadline passes. */
  async await(api, j, wait, deadline) {
    return await new Promise((ok, ko) => {
      let unsub = null;
      let done = false;
      const finish = (f) => { if (done) return; done = true; clearTimeout(timer); if (unsub) unsub(); f(); };
      const timer = setTimeout(() => finish(() => ko(new ApiError(504, `job ${j.job} was not ${wait === 'final' ? 'final' : 'committed'} before the deadline; it stays on chain (its status: /v1/verity/jobs/${j.job}); an expired job's max fee is refunded.`, { code: 'deadline', extra: this.provenance(j) }))), Math.max(0, deadline - Date.now()));
      const subscribe = wait === 'final' ? api.rpc.chain.subscribeFinalizedHeads : api.rpc.chain.subscribeNewHeads;
      let busy = false;
      subscribe(async (header) => {
        if (busy || done) return;
        busy = true;
        try {
          const s = await this.chain.jobState(api, j.job, header.hash);
          if (!s) return;
          this.update(j, s, header.number.toNumber());
          if (s.status === 'expired' || (s.status === 'fraud' && !s.tokens?.length)) {
            finish(() => ko(new ApiError(502, `job ${j.job} closed as ${s.status} without an answer; its max fee was refunded`, { type: 'server_error', code: `job_${s.status}`, extra: this.provenance(j) })));
          } else if (s.tokens && (wait === 'commit' || ['final', 'fraud'].includes(s.status))) {
            finish(() => ok(s));
          }
        } catch { /* the next head retries */ } finally { busy = false; }
      }).then((u) => { unsub = u; if (done) u(); }).catch((e) => finish(() => ko(new ApiError(503, `lost the chain while waiting for job ${j.job}: ${e.message}`))));
    });
  }
}

function modelObject(m) {
  return {
    id: m.name, object: 'model', created: 0, owned_by: m.publisher ?? 'verity',
    verity: {
      model_id: m.id, context_length: m.context, vocabulary: m.vocab,
      operators: m.servers.map((s) => ({ operator: s.operator, price_per_position: s.price.toString() })),
    },
  };
}

function poolError(e) {
  const msg = e?.message ?? String(e);
  if (/1014|1016|Priority is too low|Immediately Dropped|pool.*full|TooLowPriority|ExhaustsResources/i.test(msg)) {
    return new ApiError(429, `the chain's transaction pool is full (${msg}); retry later. Nothing was submitted.`, { code: 'pool_full' });
  }
  if (/1010.*(pay|balance)|Inability to pay/i.test(msg)) return new ApiError(402, `the account cannot pay: ${msg}`, { code: 'insufficient_funds' });
  return new ApiError(503, `the chain refused the job: ${msg}`, { code: 'submit_rejected' });
}

function dispatchErrorText(api, err) {
  if (!err.isModule) return err.toString();
  const { section, name } = api.registry.findMetaError(err.asModule);
  return `${section}.${name}`;
}

function vrty(planck) {
  const unit = 10n ** 12n;
  const frac = (planck % unit).toString().padStart(12, '0').replace(/0+$/, '');
  return `${planck / unit}${frac ? `.${frac}` : ''} VRTY`;
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sse(res, obj) {
  res.write(`data: ${JSON.stringify(obj)}\n\n`);
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 1 << 20) throw bad('The request body exceeds 1 MiB.', null);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw bad(`We could not parse the JSON body of your request (${e.message}).`, null, 'invalid_json');
  }
}

function runProcess(bin, args) {
  return new Promise((ok) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', (e) => ok({ code: -1, stderr: `cannot run ${bin}: ${e.message}` }));
    p.on('close', (code) => ok({ code, stderr }));
  });
}

// ---- main --------------------------------------------------------------------------------------
const opts = parseOptions(process.argv.slice(2));
// polkadot.js reports reconnecting on stderr itself; the gateway answers 503 instead.
if (!process.env.VERITY_GATEWAY_DEBUG) console.warn = () => {};
const keys = await loadKeys(opts.keys);
const gateway = new Gateway(opts, keys);
const server = http.createServer((req, res) => { gateway.handle(req, res); });
server.on('error', (e) => die(`cannot listen on ${opts.host}:${opts.port}: ${e.message}`));
server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  process.stdout.write(`verity-gateway listening on http://${opts.host}:${port}/v1 (chain ${opts.url}, worker ${opts.worker}, ${keys.size} API key(s))\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
