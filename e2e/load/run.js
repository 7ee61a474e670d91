#!/usr/bin/env node
// Load run (a script, not a test): submit many jobs through polkadot.js from several accounts,
// wait until every job is closed, report throughput, latency, transaction-pool behaviour and
// block fullness, and reconcile every job and every balance change. Exits non-zero when anything
// does not reconcile (a job lost, closed twice, paid twice, an unexplained balance change).
//
//   node e2e/load/run.js [--jobs 1000] [--accounts 8] [--window 128] [--per-block 256]
//                        [--model digits_cnn|digits_mlp] [--ws ws://127.0.0.1:9944]
//                        [--prometheus http://127.0.0.1:9615/metrics] [--out report.json]
//                        [--no-bond] [--timeout-min 40]
//                        [--generation [--text-model glassllm-en] [--prompt-tokens 8] [--new-tokens 16]]
//
// With --generation every job is a generation job (`jobs.submit_generation`) of the language
// model registered under --text-model (`make dev` registers glassllm-en and Alice serves it at a
// price per position): each job's own prompt of --prompt-tokens pseudo-random token ids,
// greedy, at most --new-tokens generated, max fee the price of all its positions. A final
// generation is paid the price per position of its prompt and generated tokens (reconciled
// against the receipt's output); the rest of the max fee goes back to the requester.
//
// Without --ws it starts `make dev`'s script (scripts/dev.sh: verity-worker with the example
// models, then `verity-node --dev --tmp`) on free loopback ports with Prometheus on, and stops it
// at the end. With --ws it uses a running chain (`make dev`, `make testnet`).
//
// Every job has its own input (pseudo-random int8 bytes), so the operator's worker executes each
// one (it caches results by content). The load is closed-loop: at most --window jobs wait for their commitment at any time, and at
// most --per-block submissions are sent per new block; so the offered load follows what the
// operator's agent can take (it asks its worker for at most MaxRequestsPerBlock = 64 executions
// per block) instead of piling up jobs that would miss their execution deadline.
//
// Requesters are fresh accounts //Load//0..N-1, funded from Ferdie before the run; the operator
// is whoever serves the model (Alice on --dev, Dave on the testnet). Unless --no-bond, the
// operator first bonds enough extra stake to secure every job (JobCollateral each), so that the
// operator's stake is not what bounds the run (the genesis stake of 10,000 VRTY secures 100 open
// jobs: see the report). Balances are snapshotted after that set-up and at the end.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { REPO, freePort, waitFor, rpc, sleep } from '../lib/node.js';
import { EXAMPLES, workerRun } from '../lib/worker.js';

// ---- options ---------------------------------------------------------------------------------
const argv = process.argv.slice(2);
function opt(name, def) {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return def;
  if (typeof def === 'boolean') return true;
  return argv[i + 1];
}
const JOBS = Number(opt('jobs', '1000'));
const ACCOUNTS = Number(opt('accounts', '8'));
const WINDOW = Number(opt('window', '128'));
const PER_BLOCK = Number(opt('per-block', '256'));
const MODEL_NAME = opt('model', 'digits_cnn');
const WS = opt('ws', null);
let PROMETHEUS = opt('prometheus', null);
const OUT = opt('out', null);
const NO_BOND = opt('no-bond', false);
const TIMEOUT_MS = Number(opt('timeout-min', '40')) * 60_000;
const GENERATION = opt('generation', false);
const TEXT_MODEL = opt('text-model', 'glassllm-en');
const PROMPT_TOKENS = Number(opt('prompt-tokens', '8'));
const NEW_TOKENS = Number(opt('new-tokens', '16'));
const UNIT = 1_000_000_000_000n;
const FUND = 1_000n * UNIT; // per requester
const DEV = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'];

const t0 = Date.now();
const log = (...a) => console.error(`[load ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`, ...a);
const fmt = (b) => `${(Number(b) / 1e12).toFixed(6)} VRTY`;

// ---- the chain -------------------------------------------------------------------------------
let devProc = null;
let devDir = null;
async function startDev() {
  const rpcPort = await freePort();
  const promPort = await freePort();
  const p2pPort = await freePort();
  const workerPort = await freePort();
  devDir = mkdtempSync(join(tmpdir(), 'verity-load-'));
  const logFile = join(devDir, 'dev.log');
  const out = createWriteStream(logFile);
  devProc = spawn('bash', [join(REPO, 'scripts', 'dev.sh'), '--tmp', '--rpc-port', String(rpcPort),
    '--prometheus-port', String(promPort), '--listen-addr', `/ip4/127.0.0.1/tcp/${p2pPort}`,
    '--no-mdns', '--no-telemetry'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      VERITY_WORKER_LISTEN: `127.0.0.1:${workerPort}`,
      VERITY_DEV_MODELS: join(devDir, 'models'),
      VERITY_WORKER_LOG: join(devDir, 'worker.log'),
      // The load uses one model; SmolLM2 is not needed for it.
      VERITY_DEV_SMOLLM2: process.env.VERITY_DEV_SMOLLM2 ?? '0',
      // The load talks to the chain; no gateway (its port could be taken by a `make dev`).
      VERITY_GATEWAY_LISTEN: 'off',
    },
  });
  devProc.stdout.pipe(out);
  devProc.stderr.pipe(out);
  log(`scripts/dev.sh: rpc ${rpcPort}, prometheus ${promPort}, worker ${workerPort}, logs ${devDir}`);
  await waitFor(`dev node RPC on ${rpcPort} (log ${logFile})`, async () => {
    if (devProc.exitCode !== null) {
      const e = new Error(`scripts/dev.sh exited with ${devProc.exitCode} (log ${logFile})`);
      e.fatal = true;
      throw e;
    }
    return await rpc(rpcPort, 'system_health');
  }, { timeoutMs: 120_000 });
  PROMETHEUS = `http://127.0.0.1:${promPort}/metrics`;
  return `ws://127.0.0.1:${rpcPort}`;
}
async function stopDev() {
  if (!devProc) return;
  const exited = new Promise((ok) => devProc.on('exit', ok));
  if (devProc.exitCode === null) devProc.kill('SIGTERM');
  let timer;
  await Promise.race([exited, new Promise((ok) => { timer = setTimeout(ok, 30_000); })]);
  clearTimeout(timer);
}

/** Prometheus gauges/counters of interest (pool and proposer), or null without Prometheus. */
async function metrics() {
  if (!PROMETHEUS) return null;
  try {
    const text = await (await fetch(PROMETHEUS, { signal: AbortSignal.timeout(3_000) })).text();
    const m = {};
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const hit = line.match(/^(substrate_ready_transactions_number|substrate_sub_txpool_(?:unwatched_txs|watched_txs|submitted_txs_total|reported_invalid_txs_total|removed_invalid_txs_total|timing_event_future_count|timing_event_invalid_count|timing_event_dropped_count|timing_event_usurped_count)|substrate_proposer_end_proposal_reason|substrate_proposer_number_of_transactions)(\{[^}]*\})? (\S+)/);
      if (!hit) continue;
      const reason = hit[2]?.match(/reason="([^"]+)"/);
      m[reason ? `end_proposal_reason.${reason[1]}` : hit[1].replace(/^substrate_(sub_txpool_)?/, '')] = Number(hit[3]);
    }
    return m;
  } catch {
    return null;
  }
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);

async function main() {
  await cryptoWaitReady();
  const ws = WS ?? (await startDev());
  const api = await ApiPromise.create({ provider: new WsProvider(ws), noInitWarn: true });
  const k = new Keyring({ type: 'sr25519' });
  const dev = Object.fromEntries(DEV.map((n) => [k.addFromUri(`//${n}`).address, k.addFromUri(`//${n}`)]));
  const requesters = Array.from({ length: ACCOUNTS }, (_, i) => k.addFromUri(`//Load//${i}`));
  const reqSet = new Set(requesters.map((r) => r.address));
  const funder = k.addFromUri('//Ferdie');

  const model = GENERATION ? EXAMPLES.digits_cnn : EXAMPLES[MODEL_NAME];
  if (!model) throw new Error(`unknown --model ${MODEL_NAME}`);
  // Every job gets its own input (the worker caches results by content: one input for all jobs
  // would measure its cache, not the operator's execution). Deterministic pseudo-random int8
  // bytes, the model's input length.
  const inputLen = readFileSync(model.input).length;
  const inputFor = (i) => {
    let x = (i + 1) * 2654435761 >>> 0;
    const bytes = new Uint8Array(inputLen);
    for (let b = 0; b < inputLen; b++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      bytes[b] = x & 0xff;
    }
    return u8aToHex(bytes);
  };
  let jobIndex = 0;
  // A generation's prompt: PROMPT_TOKENS pseudo-random token ids below the vocabulary.
  let vocab = 0;
  const promptFor = (i) => {
    let x = (i + 7) * 2246822519 >>> 0;
    return Array.from({ length: PROMPT_TOKENS }, () => {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      return x % vocab;
    });
  };
  let modelId;
  if (GENERATION) {
    // The text model by name, once `make dev` has registered it and Alice serves it.
    modelId = await waitFor(`${TEXT_MODEL} registered and served`, async () => {
      for (const [key, meta] of await api.query.models.metadata.entries()) {
        if (meta.isSome && Buffer.from(meta.unwrap().name.toU8a(true)).toString() === TEXT_MODEL) {
          const id = key.args[0].toHex();
          return (await api.query.operators.servers(id)).length ? id : null;
        }
      }
      return null;
    }, { timeoutMs: 180_000, everyMs: 2_000 });
    vocab = (await api.query.models.models(modelId)).unwrap().kind.asText.vocab.toNumber();
  } else {
    modelId = workerRun(model.model, model.input).model;
  }
  const servers = await api.query.operators.servers(modelId);
  if (!servers.length) throw new Error(`nobody serves ${GENERATION ? TEXT_MODEL : MODEL_NAME} (${modelId})`);
  const operatorAddr = servers[0].operator.toString();
  const price = servers[0].price.toBigInt();
  // A generation's price is per position: its max fee pays for every position it may have.
  const maxFee = GENERATION ? price * BigInt(PROMPT_TOKENS + NEW_TOKENS) : 2n * price;
  const collateral = api.consts.jobs.jobCollateral.toBigInt();
  // The chain's timing: genesis's (every preset but --dev), else the runtime's constants.
  const timing = await api.query.jobs.chainTiming();
  const deadline = timing.isSome ? timing.unwrap().executionDeadline.toNumber() : api.consts.jobs.executionDeadline.toNumber();
  const windowBlocks = timing.isSome ? timing.unwrap().challengeWindow.toNumber() : api.consts.jobs.challengeWindow.toNumber();
  log(`chain ${(await api.rpc.system.chain()).toString()} at ${ws}; model ${GENERATION ? TEXT_MODEL : MODEL_NAME} ${modelId}; operator ${operatorAddr} at ${fmt(price)}; ${servers.length} server(s)`);

  // ---- set-up: fund the requesters, bond the operator's extra stake ---------------------------
  const inBlock = (tx, signer, what, options = {}) => new Promise((ok, fail) => {
    tx.signAndSend(signer, options, ({ status, dispatchError }) => {
      if (dispatchError) fail(new Error(`${what}: ${dispatchError.toString()}`));
      else if (status.isFinalized) ok(status.asFinalized);
    }).catch(fail);
  });
  let fnonce = (await api.rpc.system.accountNextIndex(funder.address)).toNumber();
  await Promise.all(requesters.map((r) => inBlock(api.tx.balances.transferKeepAlive(r.address, FUND), funder, `fund ${r.address}`, { nonce: fnonce++ })));
  log(`funded ${ACCOUNTS} requesters with ${fmt(FUND)} each from Ferdie`);
  const opBefore = (await api.query.operators.operators(operatorAddr)).unwrap();
  const needed = collateral * BigInt(JOBS);
  const freeStake = opBefore.active.toBigInt() - opBefore.locked.toBigInt();
  let bonded = 0n;
  if (!NO_BOND && freeStake < needed) {
    const signer = dev[operatorAddr];
    if (!signer) throw new Error(`the operator ${operatorAddr} is not a dev account: bond its stake yourself or pass --no-bond`);
    bonded = needed - freeStake;
    await inBlock(api.tx.operators.bondExtra(bonded), signer, 'bond_extra');
    log(`operator bonded ${fmt(bonded)} more (free stake ${fmt(freeStake)} secures ${freeStake / collateral} open jobs; ${JOBS} need ${fmt(needed)})`);
  }

  // Start snapshot: a finalized block after the set-up.
  const startHash = await api.rpc.chain.getFinalizedHead();
  const startAt = await api.at(startHash);
  const startNumber = (await api.rpc.chain.getHeader(startHash)).number.toNumber();
  const watched = [...requesters.map((r) => r.address), operatorAddr];
  const snap = async (at) => {
    const s = {};
    for (const a of watched) {
      const d = (await at.query.system.account(a)).data;
      s[a] = { free: d.free.toBigInt(), reserved: d.reserved.toBigInt() };
    }
    s.issuance = (await at.query.balances.totalIssuance()).toBigInt();
    s.nextJob = (await at.query.jobs.nextJobId()).toNumber();
    const op = (await at.query.operators.operators(operatorAddr)).unwrap();
    s.op = { active: op.active.toBigInt(), locked: op.locked.toBigInt(), open: op.openJobs.toNumber() };
    return s;
  };
  const before = await snap(startAt);
  const m0 = await metrics();
  log(`start at finalized #${startNumber}; ${JOBS} jobs from ${ACCOUNTS} accounts, window ${WINDOW}, at most ${PER_BLOCK} per block`);

  // ---- bookkeeping -----------------------------------------------------------------------------
  const nonces = {};
  for (const r of requesters) nonces[r.address] = (await api.rpc.system.accountNextIndex(r.address)).toNumber();
  const sent = new Map(); // `${addr}/${nonce}` -> { tSend, bestAtSend, hash, included: [] }
  const rejections = [];
  const jobs = new Map(); // job id -> record
  const blocks = []; // per processed block
  const pool = []; // samples
  const unexplained = [];
  let best = (await api.rpc.chain.getHeader()).number.toNumber();
  let processed = startNumber;
  let toSend = JOBS;
  let round = 0;
  const maxWeight = api.consts.system.blockWeights.perClass.normal.maxTotal.unwrap();
  const maxRef = maxWeight.refTime.toBigInt();
  const maxProof = maxWeight.proofSize.toBigInt();
  const maxLen = api.consts.system.blockLength.max.normal.toNumber();
  const maxBlockRef = api.consts.system.blockWeights.maxBlock.refTime.toBigInt();

  const waitingCommit = () => {
    let n = 0;
    for (const s of sent.values()) if (s.included.length === 0 && !s.failed) n++;
    for (const j of jobs.values()) if (j.committed === undefined && j.closed === undefined) n++;
    return n;
  };

  async function sendRound() {
    if (toSend <= 0) return;
    const room = Math.min(PER_BLOCK, WINDOW - waitingCommit(), toSend);
    if (room <= 0) return;
    const batch = [];
    for (let i = 0; i < room; i++) {
      const r = requesters[(round + i) % ACCOUNTS];
      batch.push(r);
    }
    round += room;
    toSend -= room;
    await Promise.all(batch.map(async (r) => {
      const nonce = nonces[r.address]++;
      const greedy = { temperatureQ16: 0, topK: 0, topPQ16: 65536, seed: new Uint8Array(32) };
      const tx = GENERATION
        ? api.tx.jobs.submitGeneration(modelId, promptFor(jobIndex++), NEW_TOKENS, greedy, maxFee)
        : api.tx.jobs.submit(modelId, inputFor(jobIndex++), maxFee);
      await tx.signAsync(r, { nonce, era: 0 });
      const key = `${r.address}/${nonce}`;
      const rec = { tSend: Date.now(), bestAtSend: best, included: [] };
      sent.set(key, rec);
      try {
        rec.hash = (await api.rpc.author.submitExtrinsic(tx)).toHex();
      } catch (e) {
        // Rejected by the pool: this nonce never lands; re-sync the account and send the job again.
        sent.delete(key);
        rejections.push({ at: Date.now() - t0, who: r.address, nonce, error: e.message });
        nonces[r.address] = (await api.rpc.system.accountNextIndex(r.address)).toNumber();
        toSend++;
      }
    }));
  }

  async function processBlock(n) {
    const hash = await api.rpc.chain.getBlockHash(n);
    const [signed, at] = await Promise.all([api.rpc.chain.getBlock(hash), api.at(hash)]);
    const [events, weight, now] = await Promise.all([at.query.system.events(), at.query.system.blockWeight(), at.query.timestamp.now()]);
    const ts = now.toNumber();
    const tSeen = Date.now();
    const exts = signed.block.extrinsics;
    const b = { n, ts, tSeen, len: signed.block.encodedLength, exts: exts.length, submits: 0, commits: 0, other: 0,
      refTime: weight.normal.refTime.toBigInt(), proof: weight.normal.proofSize.toBigInt(),
      mandatoryRef: weight.mandatory.refTime.toBigInt(), operationalRef: weight.operational.refTime.toBigInt(), submitted: 0, committed: 0, finalized: 0, expired: 0, fraud: 0, missed: 0 };
    const failedIdx = new Set();
    for (const { phase, event } of events) {
      if (phase.isApplyExtrinsic && api.events.system.ExtrinsicFailed.is(event)) failedIdx.add(phase.asApplyExtrinsic.toNumber());
    }
    exts.forEach((ex, i) => {
      const { section, method } = ex.method;
      const submit = section === 'jobs' && (method === 'submit' || method === 'submitGeneration');
      if (submit) b.submits++;
      else if (section === 'jobs' && (method === 'commit' || method === 'commitGeneration')) b.commits++;
      else if (ex.isSigned) b.other++;
      if (ex.isSigned && reqSet.has(ex.signer.toString()) && submit) {
        const key = `${ex.signer.toString()}/${ex.nonce.toNumber()}`;
        const s = sent.get(key);
        if (!s) unexplained.push(`block #${n}: submit ${key} that this run did not send`);
        else {
          s.included.push(n);
          if (failedIdx.has(i)) s.failed = true;
        }
      }
    });
    for (const { phase, event } of events) {
      const ev = api.events;
      if (ev.jobs.Submitted.is(event) && reqSet.has(event.data.requester.toString())) {
        const i = phase.asApplyExtrinsic.toNumber();
        const ex = exts[i];
        const key = `${ex.signer.toString()}/${ex.nonce.toNumber()}`;
        const id = event.data.job.toNumber();
        if (jobs.has(id)) unexplained.push(`job ${id} submitted twice`);
        jobs.set(id, { id, key, requester: event.data.requester.toString(), submitted: n, tSend: sent.get(key)?.tSend,
          assigned: [], closes: [] });
        b.submitted++;
        continue;
      }
      const id = event.data?.job?.toNumber?.();
      const j = id === undefined ? undefined : jobs.get(id);
      if (!j) continue;
      if (ev.jobs.Assigned.is(event)) j.assigned.push({ n, operator: event.data.operator.toString(), price: event.data.price.toBigInt() });
      else if (ev.jobs.Committed.is(event)) { j.committed = n; b.committed++; }
      else if (ev.jobs.DeadlineMissed.is(event)) { (j.missed ??= []).push({ n, penalty: event.data.penalty.toBigInt(), operator: event.data.operator.toString() }); b.missed++; }
      else if (ev.jobs.Finalized.is(event)) { j.closes.push({ n, kind: 'final', fee: event.data.fee.toBigInt(), operator: event.data.operator.toString(), ts, tSeen }); b.finalized++; }
      else if (ev.jobs.Expired.is(event)) { j.closes.push({ n, kind: 'expired', refund: event.data.refund.toBigInt(), ts, tSeen }); b.expired++; }
      else if (ev.jobs.Fraudulent.is(event)) { j.closes.push({ n, kind: 'fraud', refund: event.data.refund.toBigInt(), ts, tSeen }); b.fraud++; }
      else if (ev.disputes.FraudProven.is(event)) { j.fraud = { slashed: event.data.slashed.toBigInt(), reward: event.data.reward.toBigInt(), prover: event.data.prover.toString() }; }
      if (j.closed === undefined && j.closes.length) j.closed = n;
    }
    // Transaction fees, by payer, and every fee in the block (for the issuance check).
    b.fees = {};
    for (const { event } of events) {
      if (api.events.transactionPayment.TransactionFeePaid.is(event)) {
        const who = event.data.who.toString();
        b.fees[who] = (b.fees[who] ?? 0n) + event.data.actualFee.toBigInt();
      }
    }
    blocks.push(b);
  }

  // ---- the run ---------------------------------------------------------------------------------
  let lastLog = 0;
  const allClosed = () => jobs.size === JOBS && [...jobs.values()].every((j) => j.closed !== undefined);
  const sampler = setInterval(async () => {
    const m = await metrics();
    let ready = null;
    try { ready = (await api.rpc.author.pendingExtrinsics()).length; } catch { /* ignore */ }
    pool.push({ t: Date.now() - t0, best, ready, m });
  }, 2_000);

  const unsub = await api.rpc.chain.subscribeNewHeads((h) => { best = Math.max(best, h.number.toNumber()); });
  // Send after every new best block and after every newly processed (finalized) block: the
  // window is counted from finalized blocks, which follow the best block by a moment; sending
  // only on a new best block would leave a block without submissions whenever its parent was
  // not finalized yet (a first run did exactly that: 128 jobs per 3 blocks).
  let lastBestSent = -1;
  let lastProcessedSent = -1;
  while (!allClosed()) {
    if (Date.now() - t0 > TIMEOUT_MS) { unexplained.push(`timed out after ${TIMEOUT_MS / 60000} min with ${[...jobs.values()].filter((j) => j.closed === undefined).length} open and ${JOBS - jobs.size} not submitted`); break; }
    const fin = (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber();
    while (processed < fin) { processed++; await processBlock(processed); }
    if (best !== lastBestSent || processed !== lastProcessedSent) {
      lastBestSent = best;
      lastProcessedSent = processed;
      await sendRound();
    }
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now();
      const vals = [...jobs.values()];
      log(`best #${best} fin #${fin}: sent ${sent.size}, submitted ${jobs.size}, committed ${vals.filter((j) => j.committed).length}, closed ${vals.filter((j) => j.closed !== undefined).length}, waiting for a commit ${waitingCommit()}, rejected ${rejections.length}`);
    }
    await sleep(250);
  }
  clearInterval(sampler);
  unsub();
  // One more finalized block so that the end snapshot follows every close.
  const endHash = await api.rpc.chain.getFinalizedHead();
  const endNumber = (await api.rpc.chain.getHeader(endHash)).number.toNumber();
  while (processed < endNumber) { processed++; await processBlock(processed); }
  const after = await snap(await api.at(endHash));
  const m1 = await metrics();

  // ---- reconciliation --------------------------------------------------------------------------
  const problems = [...unexplained];
  const byKind = { final: 0, expired: 0, fraud: 0 };
  for (const [key, s] of sent) {
    if (s.included.length !== 1) problems.push(`submit ${key} included ${s.included.length} times`);
    if (s.failed) problems.push(`submit ${key} failed on-chain`);
  }
  if (jobs.size !== JOBS) problems.push(`${jobs.size} jobs on-chain, ${JOBS} intended`);
  if (after.nextJob - before.nextJob !== jobs.size) problems.push(`NextJobId moved by ${after.nextJob - before.nextJob}, this run has ${jobs.size} jobs`);
  const earned = {};
  const paidBy = {};
  let penalties = 0n;
  let slashed = 0n;
  let rewards = 0n;
  for (const j of jobs.values()) {
    if (j.closes.length !== 1) { problems.push(`job ${j.id} closed ${j.closes.length} times`); continue; }
    const c = j.closes[0];
    byKind[c.kind]++;
    const last = j.assigned.at(-1);
    if (!last) { problems.push(`job ${j.id} never assigned`); continue; }
    if (c.kind === 'final') {
      // A generation's price is checked against its receipt (per position) below.
      if (!GENERATION && c.fee !== last.price) problems.push(`job ${j.id} paid ${c.fee}, price ${last.price}`);
      if (c.operator !== last.operator) problems.push(`job ${j.id} paid to ${c.operator}, assigned to ${last.operator}`);
      earned[c.operator] = (earned[c.operator] ?? 0n) + c.fee;
      paidBy[j.requester] = (paidBy[j.requester] ?? 0n) + c.fee;
      if (j.committed === undefined) problems.push(`job ${j.id} final without a commitment`);
    }
    for (const m of j.missed ?? []) penalties += m.penalty;
    if (j.fraud) { slashed += j.fraud.slashed; rewards += j.fraud.reward; }
  }
  // Receipts agree with the events; no job is left open.
  const ids = [...jobs.keys()];
  const endAt = await api.at(endHash);
  for (let i = 0; i < ids.length; i += 200) {
    const part = ids.slice(i, i + 200);
    const [receipts, open] = await Promise.all([endAt.query.jobs.receipts.multi(part), endAt.query.jobs.jobs.multi(part)]);
    part.forEach((id, x) => {
      const j = jobs.get(id);
      if (open[x].isSome) problems.push(`job ${id} still open`);
      if (receipts[x].isNone) { problems.push(`job ${id} has no receipt`); return; }
      const r = receipts[x].unwrap();
      const kind = r.outcome.isFinal ? 'final' : r.outcome.isExpired ? 'expired' : 'fraud';
      if (j.closes[0] && kind !== j.closes[0].kind) problems.push(`job ${id}: receipt says ${kind}, event ${j.closes[0].kind}`);
      if (kind === 'final' && r.fee.toBigInt() !== j.closes[0]?.fee) problems.push(`job ${id}: receipt fee ${r.fee} differs`);
      if (GENERATION && kind === 'final') {
        const generated = r.output.length / 4;
        const due = price * BigInt(PROMPT_TOKENS + generated);
        if (generated < 1 || generated > NEW_TOKENS) problems.push(`job ${id}: ${generated} tokens generated, at most ${NEW_TOKENS} asked`);
        if (r.fee.toBigInt() !== due) problems.push(`job ${id}: paid ${r.fee}, ${PROMPT_TOKENS} + ${generated} positions at ${price} = ${due}`);
        j.generated = generated;
      }
      if (r.requester.toString() !== j.requester) problems.push(`job ${id}: receipt requester differs`);
    });
  }
  // Balances: fees paid between the snapshots, by payer.
  const fees = {};
  let allFees = 0n;
  for (const b of blocks) {
    if (b.n <= startNumber || b.n > endNumber) continue;
    for (const [who, f] of Object.entries(b.fees)) { fees[who] = (fees[who] ?? 0n) + f; allFees += f; }
  }
  const balanceLines = [];
  for (const r of requesters) {
    const a = r.address;
    const dTotal = after[a].free + after[a].reserved - before[a].free - before[a].reserved;
    const expect = -(paidBy[a] ?? 0n) - (fees[a] ?? 0n);
    balanceLines.push({ who: a, role: 'requester', dFree: after[a].free - before[a].free, dReserved: after[a].reserved - before[a].reserved, paid: paidBy[a] ?? 0n, fees: fees[a] ?? 0n, ok: dTotal === expect && after[a].reserved === before[a].reserved });
    if (dTotal !== expect) problems.push(`requester ${a}: balance moved by ${dTotal}, expected ${expect} (prices ${paidBy[a] ?? 0n}, fees ${fees[a] ?? 0n})`);
    if (after[a].reserved !== before[a].reserved) problems.push(`requester ${a}: ${after[a].reserved - before[a].reserved} still held`);
  }
  {
    const a = operatorAddr;
    const dFree = after[a].free - before[a].free;
    const dReserved = after[a].reserved - before[a].reserved;
    const expFree = (earned[a] ?? 0n) - (fees[a] ?? 0n);
    const expReserved = -penalties - slashed;
    balanceLines.push({ who: a, role: 'operator', dFree, dReserved, earned: earned[a] ?? 0n, fees: fees[a] ?? 0n, penalties, slashed, ok: dFree === expFree && dReserved === expReserved });
    if (dFree !== expFree) problems.push(`operator ${a}: free moved by ${dFree}, expected earnings ${earned[a] ?? 0n} - fees ${fees[a] ?? 0n} = ${expFree}`);
    if (dReserved !== expReserved) problems.push(`operator ${a}: held moved by ${dReserved}, expected -(penalties ${penalties} + slashed ${slashed})`);
    if (after.op.locked !== before.op.locked) problems.push(`operator collateral locked ${after.op.locked}, was ${before.op.locked}`);
    if (after.op.open !== before.op.open) problems.push(`operator open jobs ${after.op.open}, was ${before.op.open}`);
  }
  // Issuance: fees are burnt (no fee destination), as are penalties and the unrewarded part of slashes.
  const dIssuance = after.issuance - before.issuance;
  const expIssuance = -allFees - penalties - (slashed - rewards);
  if (dIssuance !== expIssuance) problems.push(`total issuance moved by ${dIssuance}, expected ${expIssuance} (fees ${allFees}, penalties ${penalties}, burnt slash ${slashed - rewards})`);

  // ---- report ---------------------------------------------------------------------------------
  const vals = [...jobs.values()].filter((j) => j.closes.length === 1);
  const finals = vals.filter((j) => j.closes[0].kind === 'final');
  const blockLat = finals.map((j) => j.closes[0].n - j.submitted).sort((a, b) => a - b);
  const secLat = finals.map((j) => (j.closes[0].tSeen - j.tSend) / 1000).sort((a, b) => a - b);
  const commitLat = vals.filter((j) => j.committed).map((j) => j.committed - j.submitted).sort((a, b) => a - b);
  const firstSend = Math.min(...[...sent.values()].map((s) => s.tSend));
  const lastFinal = Math.max(...finals.map((j) => j.closes[0].tSeen));
  const runMin = (lastFinal - firstSend) / 60_000;
  const runBlocks = blocks.filter((b) => b.n > startNumber);
  // Steady state: blocks with both submissions and finalizations.
  const finalsPerBlock = runBlocks.map((b) => b.finalized);
  const blockTime = runBlocks.length > 1 ? (runBlocks.at(-1).ts - runBlocks[0].ts) / 1000 / (runBlocks.length - 1) : 6;
  let bestMinute = 0;
  const per = Math.max(1, Math.round(60 / blockTime));
  for (let i = 0; i + per <= finalsPerBlock.length; i++) bestMinute = Math.max(bestMinute, finalsPerBlock.slice(i, i + per).reduce((s, x) => s + x, 0));
  const fill = runBlocks.map((b) => ({ n: b.n, ref: Number(b.refTime) / Number(maxRef), proof: Number(b.proof) / Number(maxProof), len: b.len / maxLen, exts: b.exts, submits: b.submits, commits: b.commits }));
  const maxOf = (f) => fill.reduce((m, x) => (f(x) > f(m) ? x : m), fill[0]);
  const readyVals = pool.map((p) => p.ready).filter((x) => x !== null);
  const report = {
    date: new Date().toISOString(), chain: (await api.rpc.system.chain()).toString(), cpus: cpus().length,
    jobs: JOBS, accounts: ACCOUNTS, window: WINDOW, perBlock: PER_BLOCK, model: GENERATION ? TEXT_MODEL : MODEL_NAME, price: price.toString(),
    generation: GENERATION ? { promptTokens: PROMPT_TOKENS, maxNewTokens: NEW_TOKENS, generatedTokens: finals.reduce((t, j) => t + (j.generated ?? 0), 0) } : null,
    bondedExtra: bonded.toString(), deadlineBlocks: deadline, challengeWindowBlocks: windowBlocks,
    outcomes: byKind, blocks: { from: startNumber + 1, to: endNumber, meanBlockTimeS: blockTime },
    throughput: { finalPerMinuteOverall: finals.length / runMin, runMinutes: runMin, bestMinute, submitsPerBlockMax: Math.max(...runBlocks.map((b) => b.submits)), commitsPerBlockMax: Math.max(...runBlocks.map((b) => b.commits)), finalizedPerBlockMax: Math.max(...finalsPerBlock) },
    latency: {
      commitBlocks: { p50: pct(commitLat, 50), p90: pct(commitLat, 90), p99: pct(commitLat, 99), max: commitLat.at(-1) },
      finalBlocks: { p50: pct(blockLat, 50), p90: pct(blockLat, 90), p99: pct(blockLat, 99), max: blockLat.at(-1) },
      finalSeconds: { p50: pct(secLat, 50), p90: pct(secLat, 90), p99: pct(secLat, 99), max: secLat.at(-1) },
    },
    pool: { rejections: rejections.length, rejectionSamples: rejections.slice(0, 5), readyMax: Math.max(0, ...readyVals), readyMean: readyVals.reduce((s, x) => s + x, 0) / Math.max(1, readyVals.length), metricsStart: m0, metricsEnd: m1, samples: pool.length },
    fullness: {
      maxMandatoryRefTimeOfBlock: Math.max(...runBlocks.map((b) => Number(b.mandatoryRef) / Number(maxBlockRef))),
      maxNormalRefTime: maxOf((x) => x.ref), maxNormalProofSize: maxOf((x) => x.proof), maxLength: maxOf((x) => x.len), maxExtrinsics: maxOf((x) => x.exts),
      limits: { normalRefTime: maxRef.toString(), blockRefTime: maxBlockRef.toString(), proofSize: maxProof.toString(), normalLength: maxLen },
    },
    balances: balanceLines.map((l) => Object.fromEntries(Object.entries(l).map(([kk, v]) => [kk, typeof v === 'bigint' ? v.toString() : v]))),
    issuance: { delta: dIssuance.toString(), fees: allFees.toString(), penalties: penalties.toString() },
    perBlock: runBlocks.map((b) => ({ n: b.n, ts: b.ts, exts: b.exts, submits: b.submits, commits: b.commits, submitted: b.submitted, committed: b.committed, finalized: b.finalized, expired: b.expired, missed: b.missed, len: b.len, refTime: b.refTime.toString(), mandatoryRefTime: b.mandatoryRef.toString(), operationalRefTime: b.operationalRef.toString(), proof: b.proof.toString() })),
    poolSamples: pool.map((p) => ({ t: p.t, best: p.best, ready: p.ready, ...(p.m ?? {}) })),
    problems,
  };
  console.log(JSON.stringify({ ...report, perBlock: undefined, poolSamples: undefined }, null, 2));
  // A compact per-block table (every block of the run).
  console.log('\nblock  exts submits commits | submitted committed finalized missed | normal%  oper%  mand%  len%  ready');
  for (const b of runBlocks) {
    const s = pool.filter((p) => p.best === b.n).map((p) => p.ready).filter((x) => x !== null);
    console.log(`#${String(b.n).padEnd(5)} ${String(b.exts).padStart(4)} ${String(b.submits).padStart(7)} ${String(b.commits).padStart(7)} | ${String(b.submitted).padStart(9)} ${String(b.committed).padStart(9)} ${String(b.finalized).padStart(9)} ${String(b.missed).padStart(6)} | ${(100 * Number(b.refTime) / Number(maxRef)).toFixed(2).padStart(7)} ${(100 * Number(b.operationalRef) / Number(maxBlockRef)).toFixed(2).padStart(6)} ${(100 * Number(b.mandatoryRef) / Number(maxBlockRef)).toFixed(2).padStart(6)} ${(100 * b.len / maxLen).toFixed(2).padStart(5)} ${s.length ? Math.max(...s) : '-'}`);
  }
  if (OUT) writeFileSync(OUT, JSON.stringify(report, null, 2));
  await api.disconnect();
  await stopDev();
  if (devDir) console.error(`node and worker logs: ${devDir}`);
  if (problems.length) {
    console.error(`\nRECONCILIATION FAILED (${problems.length}):\n  ${problems.slice(0, 50).join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.error(`\nreconciled: ${jobs.size} jobs (${byKind.final} final, ${byKind.expired} expired, ${byKind.fraud} fraud), every balance change explained`);
  }
}

main().catch(async (e) => {
  console.error(e);
  await stopDev();
  process.exit(2);
});
