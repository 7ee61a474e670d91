// Chain helpers of the e2e suite: connect with polkadot.js, send and wait for inclusion, wait
// for a job's receipt, stop processes.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { waitFor } from './node.js';

/** Block time 6 s: a bound for waiting `n` blocks (plus start-up slack). */
export const BLOCKS = (n) => n * 6_000 + 30_000;

/** polkadot.js connected to a node started by `startNode`. */
export async function connect(node) {
  return ApiPromise.create({ provider: new WsProvider(`ws://127.0.0.1:${node.rpcPort}`), noInitWarn: true });
}

export const keyring = () => new Keyring({ type: 'sr25519' });

/** Sign and send; resolve when in a block with { blockHash, blockNumber, events, fee }. */
export function send(api, tx, signer, what) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} not included within 60 s`)), 60_000);
    tx.signAndSend(signer, async ({ status, events, dispatchError }) => {
      if (dispatchError) {
        clearTimeout(timer);
        const msg = dispatchError.isModule ? JSON.stringify(api.registry.findMetaError(dispatchError.asModule)) : dispatchError.toString();
        fail(new Error(`${what} failed: ${msg}`));
        return;
      }
      if (status.isInBlock) {
        clearTimeout(timer);
        const header = await api.rpc.chain.getHeader(status.asInBlock);
        const paid = events.find(({ event }) => api.events.transactionPayment.TransactionFeePaid.is(event));
        ok({ blockHash: status.asInBlock, blockNumber: header.number.toNumber(), events, fee: paid ? paid.event.data[1].toBigInt() : 0n });
      }
    }).catch((e) => { clearTimeout(timer); fail(e); });
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

