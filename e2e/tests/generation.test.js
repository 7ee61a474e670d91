// Generation jobs on chain, end to end: real verity-node and verity-worker processes on loopback,
// the language models imported from their PyPI packages, registered and served with
// examples/serve-text-models.js (as `make dev` does), asked for with examples/generate.js and
// polkadot.js. Four scenarios side by side, each on its own dev chain: an honest generation of
// the small model (its receipt verified offline, re-generated); a SmolLM2 chat; a faulty
// operator beaten by a watcher at exactly the corrupted step; a frivolous challenge that pays
// the operator and a silent operator that loses.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, waitFor, runNodeCmd } from '../lib/node.js';
import { startWorker, workerGenerate, WORKER_BIN } from '../lib/worker.js';
import { BLOCKS, connect, keyring, send, stopAll, startFraudNetwork } from '../lib/chain.js';
import { textModel, serveTextModels, generateExample } from '../lib/text.js';

const UNIT = 1_000_000_000_000n;
const PRICE = UNIT / 100n; // per position: serve-text-models.js's default, 0.01 VRTY
const COLLATERAL = 100n * UNIT; // JobCollateral (a small job's max fee x 50 is below it)
const CHALLENGE_BOND = 10n * UNIT; // ChallengeBond
const PROMPT = 'Once upon a time there was a little girl';
const hex = (s) => (s.startsWith('0x') ? s : `0x${s}`).toLowerCase();

/** The first event `ev` about `job` in blocks `from..=to`: { block, data }. */
async function findJobEvent(api, from, to, ev, job) {
  for (let n = from; n <= to; n++) {
    const at = await api.at(await api.rpc.chain.getBlockHash(n));
    for (const { event } of await at.query.system.events()) {
      if (ev.is(event) && event.data.job.toNumber() === job) return { block: n, data: event.data };
    }
  }
  return null;
}

async function bestNumber(api) {
  return (await api.rpc.chain.getHeader()).number.toNumber();
}

/** Wait until `ev` about `job` is in a block after `from`; returns { block, data }. */
async function waitForEvent(api, from, ev, job, what, timeoutMs) {
  let scanned = from - 1;
  return waitFor(what, async () => {
    const best = await bestNumber(api);
    const hit = scanned < best ? await findJobEvent(api, scanned + 1, best, ev, job) : null;
    scanned = best;
    return hit;
  }, { timeoutMs, everyMs: 2_000 });
}

/** `signer` submits a greedy generation of `prompt` tokens; returns { job, blockNumber, fee }. */
async function submitGeneration(api, signer, model, prompt, maxNew, maxFee) {
  const params = { temperatureQ16: 0, topK: 0, topPQ16: 65536, seed: new Uint8Array(32) };
  const r = await send(api, api.tx.jobs.submitGeneration(model, prompt, maxNew, params, maxFee), signer, 'submit_generation');
  const submitted = r.events.find(({ event }) => api.events.jobs.Submitted.is(event));
  return { job: submitted.event.data.job.toNumber(), blockNumber: r.blockNumber, fee: r.fee };
}

async function waitForStatus(api, job, pred, what, timeoutMs) {
  return waitFor(what, async () => {
    const j = await api.query.jobs.jobs(job);
    return j.isSome && pred(j.unwrap().status) ? j.unwrap() : null;
  }, { timeoutMs });
}

describe('generation', { concurrency: 4 }, () => {
  test('honest: the small model\'s generation runs to final; its text is verity-worker generate\'s; the receipt verifies offline and re-generates', { timeout: 600_000 }, async () => {
    await cryptoWaitReady();
    const model = await textModel('small');
    const worker = await startWorker('gen-honest-worker', { textModels: [model.vlm] });
    const node = await startNode('gen-honest-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    const dir = mkdtempSync(join(tmpdir(), 'verity-gen-receipt-'));
    try {
      const ids = await serveTextModels(node, [model]);
      assert.equal(ids[model.name], model.id, 'the chain registered the imported model\'s id');
      const local = workerGenerate(model.vlm, { prompt: PROMPT, maxTokens: 24 });
      const { code, out } = await generateExample(node, worker, ['--model', model.name, '--prompt', PROMPT, '--max-tokens', '24']);
      assert.equal(code, 0, 'final');
      assert.equal(out.text, local.text, 'the requester\'s text = verity-worker generate\'s');
      assert.deepEqual(out.receipt.prompt, local.prompt_tokens);
      assert.deepEqual(out.receipt.tokens, local.tokens);
      assert.equal(out.receipt.jobRoot, hex(local.job_root), 'the committed job root = the local one');
      assert.deepEqual(out.receipt.outcome, { final: null });
      const positions = BigInt(local.prompt_tokens.length + local.tokens.length);
      assert.equal(BigInt(out.receipt.fee), PRICE * positions, 'paid per position');

      // The receipt, fetched and verified offline; with the model file it re-generates.
      const file = join(dir, 'receipt.json');
      runNodeCmd(['receipt', 'fetch', '--job', String(out.receipt.job), '--rpc', `http://127.0.0.1:${node.rpcPort}`, '--out', file]);
      const verified = runNodeCmd(['receipt', 'verify', file, '--chain', 'dev', '--allow-dev-keys', '--model', model.vlm]);
      assert.match(verified, /outcome:\s+final/);
      assert.match(verified, new RegExp(`re-generated with the reference interpreter: the same ${local.tokens.length} tokens and job root ${hex(local.job_root)}`));
      console.log(`# honest generation: job ${out.receipt.job}, ${local.tokens.length} tokens, fee ${out.receipt.fee}; ${JSON.stringify(out.text)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await stopAll(node, worker);
    }
  });

  test('SmolLM2-135M-Instruct: a 16-token chat generation runs to final on a dev chain', { timeout: 900_000 }, async () => {
    await cryptoWaitReady();
    const model = await textModel('smollm2');
    const worker = await startWorker('gen-smollm2-worker', { textModels: [model.vlm] });
    const node = await startNode('gen-smollm2-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    try {
      await serveTextModels(node, [model]);
      const chat = 'What is the capital of France?';
      const local = workerGenerate(model.vlm, { chat, maxTokens: 16 });
      const { code, out } = await generateExample(node, worker, ['--model', model.name, '--chat', chat, '--max-tokens', '16']);
      assert.equal(code, 0, 'final');
      assert.equal(out.text, local.text);
      assert.deepEqual(out.receipt.tokens, local.tokens);
      assert.equal(out.receipt.jobRoot, hex(local.job_root));
      console.log(`# SmolLM2 chat: job ${out.receipt.job}, ${local.prompt_tokens.length} prompt tokens, ${JSON.stringify(out.text)}`);
    } finally {
      await stopAll(node, worker);
    }
  });

  test('fraud: a faulty operator\'s generation loses the dispute game at exactly the corrupted step; slashed, jailed, requester refunded', { timeout: 900_000 }, async () => {
    await cryptoWaitReady();
    const model = await textModel('small');
    const net = await startFraudNetwork('gen-fraud', { fault: 'lm-weights', textModels: [model.vlm] });
    const { alice, bob, honest, faulty } = net;
    const dir = mkdtempSync(join(tmpdir(), 'verity-gen-fraud-'));
    let api;
    try {
      const k = keyring();
      const a = k.addFromUri('//Alice');
      const b = k.addFromUri('//Bob');
      const charlie = k.addFromUri('//Charlie');
      await serveTextModels(alice, [model]);
      api = await connect(alice);
      // Where the faulty worker goes wrong: its own generation, judged by the honest binary.
      const wrong = workerGenerate(model.vlm, { prompt: PROMPT, maxTokens: 24, fault: 'lm-weights', files: join(dir, 'faulty') });
      const verify = (() => {
        try {
          execFileSync(WORKER_BIN, ['verify', '--json', '--model', model.vlm, '--commitment', join(dir, 'faulty.json'), '--reveal', join(dir, 'faulty.reveal')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          return null;
        } catch (e) {
          return JSON.parse(e.stdout);
        }
      })();
      assert.equal(verify?.outcome, 'fraud', 'the faulty generation is wrong');
      assert.equal(verify.position, wrong.prompt_tokens.length, 'from the position after the prompt');

      const opBefore = (await api.query.operators.operators(a.address)).unwrap();
      const charlieBefore = (await api.query.system.account(charlie.address)).data.free.toBigInt();
      const maxFee = PRICE * BigInt(wrong.prompt_tokens.length + 24);
      // generate.js's default max fee: the price for every position.
      const { code, out } = await generateExample(alice, honest, ['--model', model.name, '--prompt', PROMPT, '--max-tokens', '24']);
      assert.equal(code, 2, 'closed without a result');
      const job = out.receipt.job;
      const outcome = out.receipt.outcome.generationFraud;
      assert.ok(outcome, `outcome ${JSON.stringify(out.receipt.outcome)}`);
      assert.equal(outcome.prover, b.address, 'Bob\'s watcher won');
      assert.equal(outcome.position, verify.position, 'at the corrupted position');
      assert.equal(outcome.op, verify.op, `at the corrupted op (${verify.kind})`);

      const best = await bestNumber(api);
      const submitted = await findJobEvent(api, 1, best, api.events.jobs.Submitted, job);
      const proven = await findJobEvent(api, submitted.block, best, api.events.disputes.GenerationFraudProven, job);
      const refunded = await findJobEvent(api, submitted.block, best, api.events.jobs.Fraudulent, job);
      assert.ok(proven && refunded, 'GenerationFraudProven and Fraudulent emitted');
      assert.equal(proven.data.operator.toString(), a.address);
      assert.equal(proven.data.winner.toString(), b.address);
      assert.equal(proven.data.slashed.toBigInt(), COLLATERAL, 'the job\'s collateral is slashed');
      assert.equal(refunded.data.refund.toBigInt(), maxFee, 'the whole max fee is refunded');
      const paidByCharlie = charlieBefore - (await api.query.system.account(charlie.address)).data.free.toBigInt();
      const fees = [];
      for (let n = submitted.block; n <= best; n++) {
        const at = await api.at(await api.rpc.chain.getBlockHash(n));
        for (const { event } of await at.query.system.events()) {
          if (api.events.transactionPayment.TransactionFeePaid.is(event) && event.data[0].toString() === charlie.address) fees.push(event.data[1].toBigInt());
        }
      }
      assert.equal(paidByCharlie, fees.reduce((x, y) => x + y, 0n), 'Charlie: only the submit fee spent');
      const opAfter = (await api.query.operators.operators(a.address)).unwrap();
      assert.equal(opBefore.active.toBigInt() - opAfter.active.toBigInt(), COLLATERAL, 'stake - collateral');
      assert.ok(opAfter.jailedUntil.isSome, 'Alice is jailed');
      const moves = [];
      for (const ev of ['Challenged', 'RootsRevealed', 'PositionNamed', 'PositionRevealed', 'GenerationFraudProven']) {
        const hit = await findJobEvent(api, submitted.block, best, api.events.disputes[ev], job);
        assert.ok(hit, `${ev} emitted (logs: ${bob.logFile}, ${faulty.logFile})`);
        moves.push(`${ev} #${hit.block}`);
      }
      console.log(`# generation fraud: job ${job}, position ${outcome.position} op ${outcome.op} (${verify.kind}); ${moves.join(', ')}`);
    } finally {
      if (api) await api.disconnect();
      rmSync(dir, { recursive: true, force: true });
      await net.stop();
    }
  });

  test('challenges: a frivolous challenger pays the honest operator its bond and the job is final; a silent operator is slashed', { timeout: 900_000 }, async () => {
    await cryptoWaitReady();
    const model = await textModel('small');
    let worker = await startWorker('gen-challenge-worker', { textModels: [model.vlm] });
    const node = await startNode('gen-challenge-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    let api;
    try {
      const k = keyring();
      const a = k.addFromUri('//Alice');
      const b = k.addFromUri('//Bob');
      const charlie = k.addFromUri('//Charlie');
      await serveTextModels(node, [model]);
      api = await connect(node);
      const prompt = (await worker.rpc('tokenize', [model.id, { text: PROMPT }])).tokens;
      const maxFee = PRICE * BigInt(prompt.length + 16);
      const first = await submitGeneration(api, charlie, model.id, prompt, 16, maxFee);
      const second = await submitGeneration(api, charlie, model.id, prompt.slice(1), 16, maxFee);
      for (const j of [first, second]) {
        await waitForStatus(api, j.job, (s) => s.isCommitted, `job ${j.job} committed (log: ${node.logFile})`, BLOCKS(10));
      }

      // A frivolous challenge: Alice's agent reveals the roots; Bob names nothing.
      const challenged = await send(api, api.tx.disputes.challenge(first.job), b, 'challenge');
      const bobHeld = (await api.query.system.account(b.address)).data.reserved.toBigInt();
      assert.equal(bobHeld, CHALLENGE_BOND, 'Bob\'s bond is held');
      await waitForEvent(api, challenged.blockNumber, api.events.disputes.RootsRevealed, first.job,
        `Alice's agent reveals the roots (log: ${node.logFile})`, BLOCKS(6));

      // The second job: Alice's worker goes away, so her node cannot answer the challenge.
      await worker.stop();
      worker = null;
      const silent = await send(api, api.tx.disputes.challenge(second.job), b, 'challenge');
      const due = (await api.query.disputes.disputes(second.job)).unwrap().rootsDue.toNumber();
      await waitFor(`block #${due}`, async () => (await bestNumber(api)) >= due, { timeoutMs: BLOCKS(due - silent.blockNumber + 2), everyMs: 2_000 });
      const settled = await send(api, api.tx.disputes.settle(second.job, b.address), b, 'settle');
      const won = settled.events.find(({ event }) => api.events.disputes.GenerationFraudProven.is(event));
      assert.ok(won, 'the silent operator loses');
      assert.equal(won.event.data.winner.toString(), b.address);
      assert.ok(won.event.data.position.isNone, 'no position: the roots were never revealed');
      assert.equal(won.event.data.slashed.toBigInt(), COLLATERAL, 'the job\'s collateral is slashed');
      const r2 = (await api.query.jobs.receipts(second.job)).unwrap();
      assert.ok(r2.outcome.isGenerationFraud, `outcome ${r2.outcome.toString()}`);
      assert.ok((await api.query.operators.operators(a.address)).unwrap().jailedUntil.isSome, 'Alice is jailed');

      // The frivolous game: Bob's time to name a position runs out; Alice's agent ends the game
      // (the bond is hers) and the job becomes final with Alice paid.
      const ended = await waitForEvent(api, challenged.blockNumber, api.events.disputes.GameEnded, first.job,
        `Alice's agent ends Bob's late game (log: ${node.logFile})`, BLOCKS(20));
      assert.equal(ended.data.challenger.toString(), b.address);
      assert.equal(ended.data.to.toString(), a.address, 'the bond goes to the operator');
      assert.equal(ended.data.bond.toBigInt(), CHALLENGE_BOND);
      const final = await waitForEvent(api, challenged.blockNumber, api.events.jobs.Finalized, first.job,
        `job ${first.job} final after the game ended`, BLOCKS(30));
      const r1 = (await api.query.jobs.receipts(first.job)).unwrap();
      assert.ok(r1.outcome.isFinal, `outcome ${r1.outcome.toString()}`);
      const generated = BigInt(r1.output.length / 4);
      assert.equal(final.data.fee.toBigInt(), PRICE * (BigInt(prompt.length) + generated), 'Alice is paid per position');
      assert.equal((await api.query.system.account(b.address)).data.reserved.toBigInt(), 0n, 'nothing of Bob\'s stays held');
      console.log(`# challenges: frivolous game on job ${first.job} ended #${ended.block}, final #${final.block}; silent operator lost job ${second.job} #${settled.blockNumber}`);
    } finally {
      if (api) await api.disconnect();
      await stopAll(node, worker);
    }
  });
});
