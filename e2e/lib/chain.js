// Chain helpers of the e2e suite: connect with polkadot.js, send and wait for inclusion, wait
// for a job's receipt, stop processes.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { startNode, rpc, waitFor, within } from './node.js';
import { startWorker } from './worker.js';

/** Block time 6 s: a bound for waiting `n` blocks (plus start-up slack). */
export const BLOCKS = (n) => n * 6_000 + 30_000;

/** polkadot.js connected to a node started by `startNode` (an error after 60 s, not a wait forever). */
export async function connect(node) {
  const provider = new WsProvider(`ws://127.0.0.1:${node.rpcPort}`);
  const api = await within(ApiPromise.create({ provider, noInitWarn: true }), 60_000);
  if (!api) {
    await provider.disconnect().catch(() => {});
    throw new Error(`polkadot.js did not connect to ${node.name ?? 'the node'} on port ${node.rpcPort} within 60 s (log: ${node.logFile})`);
  }
  return api;
}

export const keyring = () => new Keyring({ type: 'sr25519' });

/**
 * Sign and send; resolve when in a block with { blockHash, blockNumber, events, fee }.
 *
 * Inclusion is read from the pool's watch events (`author_submitAndWatchExtrinsic`) and, where
 * those stay silent, from the chain itself: a run here saw a dev node include a submit in its
 * next block while the watch subscription never reported it. From 12 s after sending, every
 * new block since the send is searched for the extrinsic's hash (its own events then read
 * from that block); 60 s without either is a failure.
 */
export function send(api, tx, signer, what) {
  return new Promise((ok, fail) => {
    let settled = false;
    const done = (f, v) => { if (!settled) { settled = true; clearTimeout(timer); clearInterval(poll); f(v); } };
    const included = async (blockHash, events) => {
      const failed = events.find(({ event }) => api.events.system.ExtrinsicFailed.is(event));
      if (failed) {
        const err = failed.event.data[0];
        const msg = err.isModule ? JSON.stringify(api.registry.findMetaError(err.asModule)) : err.toString();
        done(fail, new Error(`${what} failed: ${msg}`));
        return;
      }
      const header = await api.rpc.chain.getHeader(blockHash);
      const paid = events.find(({ event }) => api.events.transactionPayment.TransactionFeePaid.is(event));
      done(ok, { blockHash, blockNumber: header.number.toNumber(), events, fee: paid ? paid.event.data[1].toBigInt() : 0n });
    };
    let searchError = null; // the last failure of a search of the chain, reported with a timeout
    const timer = setTimeout(() => done(fail, new Error(`${what} not included within 60 s${searchError ? ` (searching the chain: ${searchError.message})` : ''}`)), 60_000);
    let poll = null;
    let searched = null; // the last block number searched
    const search = async () => {
      const best = (await api.rpc.chain.getHeader()).number.toNumber();
      for (let n = searched + 1; n <= best && !settled; n++) {
        const hash = await api.rpc.chain.getBlockHash(n);
        const block = await api.rpc.chain.getBlock(hash);
        const index = block.block.extrinsics.findIndex((x) => x.hash.eq(tx.hash));
        if (index >= 0) {
          const all = await (await api.at(hash)).query.system.events();
          await included(hash, all.filter(({ phase }) => phase.isApplyExtrinsic && phase.asApplyExtrinsic.eqn(index)));
          return;
        }
        searched = n;
      }
    };
    api.rpc.chain.getHeader().then((h) => {
      searched = h.number.toNumber();
      tx.signAndSend(signer, ({ status, events, dispatchError }) => {
        if (dispatchError) {
          const msg = dispatchError.isModule ? JSON.stringify(api.registry.findMetaError(dispatchError.asModule)) : dispatchError.toString();
          done(fail, new Error(`${what} failed: ${msg}`));
        } else if (status.isInBlock) {
          included(status.asInBlock, events).catch((e) => done(fail, e));
        }
      }).catch((e) => done(fail, e));
      setTimeout(() => {
        let busy = false; // one search at a time (a slow one outlasts the interval)
        if (!settled) {
          poll = setInterval(() => {
            if (busy) return;
            busy = true;
            search().catch((e) => { searchError = e; }).finally(() => { busy = false; });
          }, 3_000);
        }
      }, 12_000);
    }).catch((e) => done(fail, e));
  });
}

/** `signer` submits a job (`input`: bytes); returns { job, blockNumber, fee }. */
export async function submitJob(api, signer, model, input, maxFee) {
  const r = await send(api, api.tx.jobs.submit(model, u8aToHex(input), maxFee), signer, 'submit');
  const submitted = r.events.find(({ event }) => api.events.jobs.Submitted.is(event));
  if (!submitted) throw new Error('submit: no Submitted event');
  return { job: submitted.event.data[0].toNumber(), blockNumber: r.blockNumber, fee: r.fee };
}

/** Poll until job `job` has a receipt; returns { receipt, best } (best block number then). */
export async function waitForReceipt(api, job, what, timeoutMs) {
  const receipt = await waitFor(what, async () => {
    const r = await api.query.jobs.receipts(job);
    return r.isSome ? r.unwrap() : null;
  }, { timeoutMs, everyMs: 1_000 });
  const header = await api.rpc.chain.getHeader();
  return { receipt, best: header.number.toNumber() };
}

/** Stop every process given (nulls skipped), reporting failures without throwing. */
export async function stopAll(...procs) {
  for (const p of procs) {
    if (!p) continue;
    try { await p.stop(); } catch (e) { console.error(`stopping ${p.name}: ${e.message}`); }
  }
}


/**
 * A dev chain for fraud: Alice's node (the operator) with a faulty worker, Bob's node watching
 * (`--watcher`) with an honest one, peered with Alice, Bob's `vrty` key inserted with
 * `author_insertKey` (as the README documents). `fault` is the faulty worker's (default: the
 * classifiers'), `textModels` the `.vlm` files both workers serve. `stop()` stops all four
 * processes.
 */
export async function startFraudNetwork(prefix, { fault, textModels = [] } = {}) {
  const started = [];
  const stop = () => stopAll(...started.slice().reverse());
  try {
    const faulty = await startWorker(`${prefix}-faulty-worker`, { faulty: true, fault, textModels });
    started.push(faulty);
    const honest = await startWorker(`${prefix}-honest-worker`, { textModels });
    started.push(honest);
    const alice = await startNode(`${prefix}-alice`, ['--dev', '--tmp', '--inference-worker', faulty.url]);
    started.push(alice);
    const peer = await rpc(alice.rpcPort, 'system_localPeerId');
    const bob = await startNode(`${prefix}-bob`, ['--chain', 'dev', '--tmp', '--rpc-methods', 'unsafe',
      '--bootnodes', `/ip4/127.0.0.1/tcp/${alice.p2pPort}/p2p/${peer}`,
      '--watcher', '--inference-worker', honest.url]);
    started.push(bob);
    const b = keyring().addFromUri('//Bob');
    await rpc(bob.rpcPort, 'author_insertKey', ['vrty', '//Bob', u8aToHex(b.publicKey)]);
    // Bob dials Alice when he starts; on a loaded machine that first dial can fail (once seen:
    // no peer for 60 s), so after 30 s without a peer Alice is given to him again.
    const hasPeer = async () => (await rpc(bob.rpcPort, 'system_health')).peers >= 1;
    try {
      await waitFor('Bob\'s node has a peer', hasPeer, { timeoutMs: 30_000 });
    } catch {
      await rpc(bob.rpcPort, 'system_addReservedPeer', [`/ip4/127.0.0.1/tcp/${alice.p2pPort}/p2p/${peer}`]);
      await waitFor('Bob\'s node has a peer (Alice added as a reserved peer after 30 s)', hasPeer, { timeoutMs: 60_000 });
    }
    return { faulty, honest, alice, bob, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
