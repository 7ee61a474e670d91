// Agent: operators' nodes execute assigned jobs and commit, watchers' nodes prove fraud, and a
// requester with polkadot.js sees it all. Real verity-node and verity-worker processes on
// loopback; the three scenarios run side by side, each on its own dev chain.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, waitFor, freePort } from '../lib/node.js';
import { startWorker, workerRun, EXAMPLES } from '../lib/worker.js';
import { BLOCKS, connect, keyring, submitJob as submitJobOf, waitForReceipt, stopAll, startFraudNetwork } from '../lib/chain.js';

const UNIT = 1_000_000_000_000n;
const PRICE = UNIT; // Alice's price for the example models (genesis preset)
const COLLATERAL = 100n * UNIT; // JobCollateral
const PENALTY = 10n * UNIT; // MissedDeadlinePenalty
const PROVER_SHARE_PERCENT = 50n; // ProverShare
const MAX_FEE = 2n * UNIT;
const MODEL = EXAMPLES.digits_cnn;
const INPUT = readFileSync(MODEL.input);
// Block time 6 s: deadline 10 blocks, window 20 blocks. Every wait below is bounded (BLOCKS).

/** The example model's id, from the chain (registered in the genesis preset). */
async function modelId(api) {
  const expected = workerRun(MODEL.model, MODEL.input).model;
  const entry = await api.query.models.models(expected);
  assert.ok(entry.isSome, `example model ${expected} is registered`);
  return expected;
}

/** Charlie submits a job on the example model; returns { job, blockNumber, fee }. */
const submitJob = (api, charlie, model) => submitJobOf(api, charlie, model, INPUT, MAX_FEE);

/** Every event of blocks `from..=to` with its block number. */
async function eventsBetween(api, from, to) {
  const out = [];
  for (let n = from; n <= to; n++) {
    const hash = await api.rpc.chain.getBlockHash(n);
    const at = await api.at(hash);
    for (const record of await at.query.system.events()) out.push({ block: n, record });
  }
  return out;
}

/** The first event `ev` about `job` in blocks `from..=to`: { block, data }. */
async function findJobEvent(api, from, to, ev, job) {
  const all = await eventsBetween(api, from, to);
  const hit = all.find(({ record }) => ev.is(record.event) && record.event.data[0].toNumber() === job);
  return hit && { block: hit.block, data: hit.record.event.data };
}

/** Fees paid by `who` in blocks `from..=to`. */
async function feesPaid(api, from, to, who) {
  const all = await eventsBetween(api, from, to);
  return all
    .filter(({ record }) => api.events.transactionPayment.TransactionFeePaid.is(record.event) && record.event.data[0].toString() === who)
    .reduce((s, { record }) => s + record.event.data[1].toBigInt(), 0n);
}

async function freeAt(api, who, blockNumber) {
  return (await balancesAt(api, who, blockNumber)).free;
}

/** `who`'s free and held (reserved) balance at a block. */
async function balancesAt(api, who, blockNumber) {
  const at = await api.at(await api.rpc.chain.getBlockHash(blockNumber));
  const { data } = await at.query.system.account(who);
  return { free: data.free.toBigInt(), held: data.reserved.toBigInt() };
}

async function waitForStatus(api, job, pred, what, timeoutMs) {
  return waitFor(what, async () => {
    const j = await api.query.jobs.jobs(job);
    return j.isSome && pred(j.unwrap().status) ? j.unwrap() : null;
  }, { timeoutMs });
}

describe('agent', { concurrency: 3 }, () => {
  test('honest: Alice\'s node executes and commits, the job is final, Alice is paid', { timeout: 420_000 }, async () => {
    await cryptoWaitReady();
    const worker = await startWorker('honest-worker');
    const node = await startNode('honest-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    let api;
    try {
      api = await connect(node);
      const k = keyring();
      const alice = k.addFromUri('//Alice');
      const charlie = k.addFromUri('//Charlie');
      const model = await modelId(api);
      const submitted = await submitJob(api, charlie, model);
      const committed = await waitForStatus(api, submitted.job, (s) => s.isCommitted,
        `job ${submitted.job} committed by Alice's agent (logs: ${node.logFile}, ${worker.logFile})`, BLOCKS(10));
      const { best } = await waitForReceipt(api, submitted.job, `job ${submitted.job} final`, BLOCKS(24));
      const commitEv = await findJobEvent(api, submitted.blockNumber, best, api.events.jobs.Committed, submitted.job);
      const finalEv = await findJobEvent(api, submitted.blockNumber, best, api.events.jobs.Finalized, submitted.job);
      assert.ok(commitEv && finalEv, 'Committed and Finalized emitted');
      const receipt = (await api.query.jobs.receipts(submitted.job)).unwrap();
      assert.ok(receipt.outcome.isFinal, `outcome ${receipt.outcome.toString()}`);
      assert.equal(receipt.operator.toString(), alice.address);

      // The output equals `verity-worker run` on the same model and input.
      const local = workerRun(MODEL.model, MODEL.input);
      assert.equal(receipt.output.toHex(), local.output, 'on-chain output = verity-worker run output');
      assert.equal(committed.status.asCommitted.traceRoot.toHex(), local.trace_root, 'trace root matches');
      assert.equal(receipt.traceRoot.unwrap().toHex(), local.trace_root);

      // Alice got the fee: her free balance rose by the price minus her commit's fee.
      assert.equal(finalEv.data[2].toBigInt(), PRICE, 'fee paid = price');
      const before = await freeAt(api, alice.address, commitEv.block - 1);
      const after = await freeAt(api, alice.address, finalEv.block);
      const commitFee = await feesPaid(api, commitEv.block, commitEv.block, alice.address);
      assert.ok(commitFee > 0n, 'Alice paid for her commit');
      assert.equal(after - before, PRICE - commitFee, 'Alice: + price - commit fee');
      console.log(`# honest: submit #${submitted.blockNumber}, commit #${commitEv.block} (+${commitEv.block - submitted.blockNumber} blocks), final #${finalEv.block} (+${finalEv.block - submitted.blockNumber} blocks from submit)`);
    } finally {
      if (api) await api.disconnect();
      await stopAll(node, worker);
    }
  });

  test('fraud: Bob\'s watcher node proves Alice\'s substituted weights wrong; slash, reward, refund, jail', { timeout: 420_000 }, async () => {
    await cryptoWaitReady();
    const net = await startFraudNetwork('fraud');
    const { alice, bob, honest } = net;
    let api;
    try {
      const k = keyring();
      const a = k.addFromUri('//Alice');
      const b = k.addFromUri('//Bob');
      const charlie = k.addFromUri('//Charlie');

      api = await connect(alice);
      const model = await modelId(api);
      const opBefore = (await api.query.operators.operators(a.address)).unwrap();
      const submitted = await submitJob(api, charlie, model);
      const charlieBefore = await freeAt(api, charlie.address, submitted.blockNumber - 1);
      await waitForStatus(api, submitted.job, (s) => s.isCommitted,
        `job ${submitted.job} committed by Alice's agent (log: ${alice.logFile})`, BLOCKS(10));
      const { receipt, best } = await waitForReceipt(api, submitted.job,
        `fraud proven by Bob's watcher (logs: ${bob.logFile}, ${honest.logFile})`, BLOCKS(20));
      assert.ok(receipt.outcome.isFraud, `outcome ${receipt.outcome.toString()}`);
      assert.equal(receipt.outcome.asFraud.prover.toString(), b.address, 'Bob is the prover');

      const commitEv = await findJobEvent(api, submitted.blockNumber, best, api.events.jobs.Committed, submitted.job);
      const fraudEv = await findJobEvent(api, submitted.blockNumber, best, api.events.disputes.FraudProven, submitted.job);
      const refundEv = await findJobEvent(api, submitted.blockNumber, best, api.events.jobs.Fraudulent, submitted.job);
      assert.ok(commitEv && fraudEv && refundEv, 'Committed, FraudProven and Fraudulent emitted');
      const [, operator, prover, step, slashed, reward] = fraudEv.data;
      assert.equal(operator.toString(), a.address);
      assert.equal(prover.toString(), b.address);
      assert.equal(slashed.toBigInt(), COLLATERAL, 'the job\'s collateral is slashed');
      assert.equal(reward.toBigInt(), COLLATERAL * PROVER_SHARE_PERCENT / 100n, 'the configured share goes to Bob');

      // Bob committed to his proof in an earlier block than he revealed it (attack 2).
      const committedEv = await findJobEvent(api, commitEv.block, best, api.events.disputes.ProofCommitted, submitted.job);
      assert.ok(committedEv && committedEv.data[1].toString() === b.address, 'Bob committed to his proof');
      assert.ok(committedEv.block < fraudEv.block, `committed #${committedEv.block} before revealed #${fraudEv.block}`);
      // Bob's share is held for the grace period; his free balance paid the fees of the
      // commitment and the proof (the commitment's deposit came back with the reveal).
      const bobBefore = await balancesAt(api, b.address, commitEv.block);
      const bobAfter = await balancesAt(api, b.address, fraudEv.block);
      const bobFees = await feesPaid(api, commitEv.block + 1, fraudEv.block, b.address);
      assert.ok(bobFees > 0n, 'Bob paid for his proof');
      assert.equal(bobAfter.free - bobBefore.free, -bobFees, 'Bob: - fees');
      assert.equal(bobAfter.held - bobBefore.held, reward.toBigInt(), 'Bob: + share, held');
      // After the grace period Bob's agent claims it: the share becomes free.
      const until = fraudEv.data[6].toNumber();
      const paid = await waitFor(`Bob's reward paid after #${until} (log: ${bob.logFile})`, async () => {
        const head = (await api.rpc.chain.getHeader()).number.toNumber();
        return head > until ? findJobEvent(api, until, head, api.events.disputes.RewardPaid, submitted.job) : null;
      }, { timeoutMs: BLOCKS(until - fraudEv.block + 15), everyMs: 3_000 });
      assert.equal(paid.data[1].toString(), b.address);
      assert.equal(paid.data[2].toBigInt(), reward.toBigInt());
      const bobPaid = await balancesAt(api, b.address, paid.block);
      assert.equal(bobPaid.held - bobBefore.held, 0n, 'nothing of Bob\'s stays held');

      // Charlie is refunded: back to where he was before submitting, less the submit fee.
      assert.equal(refundEv.data[2].toBigInt(), MAX_FEE, 'the whole max_fee is refunded');
      const charlieAfter = await freeAt(api, charlie.address, fraudEv.block);
      assert.equal(charlieAfter, charlieBefore - submitted.fee, 'Charlie: only the submit fee spent');

      // Alice's stake lost the collateral and she is jailed.
      const opAfter = (await api.query.operators.operators(a.address)).unwrap();
      assert.equal(opBefore.active.toBigInt() - opAfter.active.toBigInt(), COLLATERAL, 'stake - collateral');
      assert.ok(opAfter.jailedUntil.isSome, 'Alice is jailed');
      console.log(`# fraud: submit #${submitted.blockNumber}, commit #${commitEv.block} (+${commitEv.block - submitted.blockNumber}), fraud proven #${fraudEv.block} (+${fraudEv.block - commitEv.block} after commit), wrong step ${step.toNumber()}`);
    } finally {
      if (api) await api.disconnect();
      await net.stop();
    }
  });

  test('faults: worker down -> deadline missed -> refund; node restarted mid-window -> job still final', { timeout: 480_000 }, async () => {
    await cryptoWaitReady();
    const deadPort = await freePort(); // nothing listens there
    let node = await startNode('faults-alice', ['--dev', '--inference-worker', `http://127.0.0.1:${deadPort}`]);
    const base = node.basePath;
    let worker;
    let api;
    const restart = async (name, args) => {
      if (api) await api.disconnect();
      api = null;
      const { code } = await node.stop({ keepBase: true });
      assert.equal(code, 0, `${node.name} stopped cleanly`);
      node = await startNode(name, ['--dev', ...args], { basePath: base });
      api = await connect(node);
    };
    try {
      api = await connect(node);
      const k = keyring();
      const alice = k.addFromUri('//Alice');
      const charlie = k.addFromUri('//Charlie');
      const model = await modelId(api);

      // 1. Alice's worker is down: she misses the deadline; no other operator serves the model,
      //    so the job expires and Charlie gets max_fee back; Alice pays the penalty.
      const j1 = await submitJob(api, charlie, model);
      const { receipt: r1, best: b1 } = await waitForReceipt(api, j1.job, `job ${j1.job} expired (log: ${node.logFile})`, BLOCKS(14));
      assert.ok(r1.outcome.isExpired, `outcome ${r1.outcome.toString()}`);
      const missed = await findJobEvent(api, j1.blockNumber, b1, api.events.jobs.DeadlineMissed, j1.job);
      const expired = await findJobEvent(api, j1.blockNumber, b1, api.events.jobs.Expired, j1.job);
      assert.ok(missed && expired, 'DeadlineMissed and Expired emitted');
      assert.equal(missed.data[1].toString(), alice.address);
      assert.equal(missed.data[2].toBigInt(), PENALTY);
      assert.equal(expired.data[2].toBigInt(), MAX_FEE, 'Charlie refunded');
      assert.ok(node.recentOutput().includes('verity::agent') || readFileSync(node.logFile, 'utf8').includes('gave no answer'),
        'the agent logged the unreachable worker');

      // 2. With a worker, Alice commits; the node is stopped and restarted inside the window and
      //    the job still finalizes.
      worker = await startWorker('faults-worker');
      await restart('faults-alice-2', ['--inference-worker', worker.url]);
      const j2 = await submitJob(api, charlie, model);
      await waitForStatus(api, j2.job, (s) => s.isCommitted, `job ${j2.job} committed (log: ${node.logFile})`, BLOCKS(10));
      await restart('faults-alice-3', ['--inference-worker', worker.url]);
      const { receipt: r2 } = await waitForReceipt(api, j2.job, `job ${j2.job} final after the restart`, BLOCKS(24));
      assert.ok(r2.outcome.isFinal, `outcome ${r2.outcome.toString()}`);
      assert.equal(r2.fee.toBigInt(), PRICE);
      console.log(`# faults: job ${j1.job} expired at #${expired.block} (+${expired.block - j1.blockNumber} blocks); job ${j2.job} final after a restart`);
    } finally {
      if (api) await api.disconnect();
      await stopAll(node, worker);
      // The restarted nodes' base path (kept across the restarts; no `stop` removes it).
      rmSync(base, { recursive: true, force: true });
    }
  });

  // Attack 13 with the node's real transaction pool: Alice's commit of job A is removed from the
  // pool (`author_removeExtrinsic`) every time the agent pools it, until A's deadline passes
  // and A closes without it; Alice's commit of job B, pooled meanwhile with the next nonce, then
  // waits behind a nonce nobody will use. The agent must re-sign B's commit into the gap so
  // that B is committed before its deadline.
  test('attack 13: a commit evicted from the real pool leaves a nonce gap; the agent fills it before the next deadline', { timeout: 420_000 }, async () => {
    await cryptoWaitReady();
    const worker = await startWorker('gap-worker');
    const node = await startNode('gap-alice', ['--dev', '--tmp', '--rpc-methods', 'unsafe', '--inference-worker', worker.url]);
    let api;
    let evicting = true;
    try {
      api = await connect(node);
      const k = keyring();
      const alice = k.addFromUri('//Alice');
      const charlie = k.addFromUri('//Charlie');
      const model = await modelId(api);
      const nonce0 = (await api.rpc.system.accountNextIndex(alice.address)).toNumber();
      /** Alice's pooled commits: [{ hex, job, nonce }]. */
      const pooledCommits = async () => (await api.rpc.author.pendingExtrinsics())
        .filter((xt) => xt.signer.toString() === alice.address && xt.method.section === 'jobs' && xt.method.method === 'commit')
        .map((xt) => ({ hex: xt.toHex(), job: xt.method.args[0].toNumber(), nonce: xt.nonce.toNumber() }));
      const a = await submitJob(api, charlie, model);
      let evicted = 0;
      let b = null;
      let seenB = false; // B's commit seen in the pool behind A's nonce
      const evictor = (async () => {
        while (evicting) {
          for (const c of await pooledCommits()) {
            if (c.job === a.job) {
              await api.rpc.author.removeExtrinsic([{ Extrinsic: c.hex }]).catch(() => {});
              evicted++;
            } else if (b && c.job === b.job && c.nonce === nonce0 + 1) {
              seenB = true;
            }
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      // B comes 3 blocks later: its commit is pooled with the nonce after A's.
      await waitFor('3 blocks after A', async () => (await api.rpc.chain.getHeader()).number.toNumber() >= a.blockNumber + 3, { timeoutMs: BLOCKS(4) });
      b = await submitJob(api, charlie, model);
      // A closes without a commit at its deadline; eviction stops there.
      const { receipt: ra } = await waitForReceipt(api, a.job, `job ${a.job} expired (log: ${node.logFile})`, BLOCKS(14));
      evicting = false;
      await evictor;
      assert.ok(ra.outcome.isExpired, `A: ${ra.outcome.toString()}`);
      assert.ok(evicted >= 1, 'A\'s commit was evicted from the pool');
      assert.ok(seenB, 'B\'s commit waited in the pool with the nonce after A\'s');
      assert.equal((await api.query.system.account(alice.address)).nonce.toNumber(), nonce0, 'the gap: Alice\'s nonce did not move');
      // B is committed before its deadline, by a commit re-signed with the gap's nonce.
      const jb = await waitForStatus(api, b.job, (s) => s.isCommitted, `job ${b.job} committed into the gap (log: ${node.logFile})`, BLOCKS(8));
      const deadlineB = (await findJobEvent(api, b.blockNumber, b.blockNumber, api.events.jobs.Assigned, b.job)).data[3].toNumber();
      const head = (await api.rpc.chain.getHeader()).number.toNumber();
      const commitEv = await findJobEvent(api, b.blockNumber, head, api.events.jobs.Committed, b.job);
      assert.ok(commitEv && commitEv.block < deadlineB, `B committed at #${commitEv?.block}, deadline #${deadlineB}`);
      assert.ok(jb.status.isCommitted);
      // The extrinsic that committed B is Alice's, with the gap's nonce (an older copy of B's
      // commit, nonce + 1, may follow it in the pool and fail harmlessly).
      const blockHash = await api.rpc.chain.getBlockHash(commitEv.block);
      const [block, records] = await Promise.all([api.rpc.chain.getBlock(blockHash), (await api.at(blockHash)).query.system.events()]);
      const rec = records.find(({ event }) => api.events.jobs.Committed.is(event) && event.data[0].toNumber() === b.job);
      const xt = block.block.extrinsics[rec.phase.asApplyExtrinsic.toNumber()];
      assert.equal(xt.signer.toString(), alice.address);
      assert.equal(xt.nonce.toNumber(), nonce0, 'B\'s commit used the gap\'s nonce');
      console.log(`# gap: A's commit evicted ${evicted} times, A expired; B committed at #${commitEv.block} (deadline #${deadlineB}) with nonce ${nonce0}`);
    } finally {
      evicting = false;
      if (api) await api.disconnect();
      await stopAll(node, worker);
    }
  });
});
