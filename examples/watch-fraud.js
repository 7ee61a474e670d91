#!/usr/bin/env node
// A watcher's feed: every fraud proof the chain accepts (disputes.FraudProven: the slashed
// collateral and the prover's reward, net of the proof's transaction fees: its commitment's,
// disputes.commit_proof, when this feed saw it, and its reveal's), the rewards taken over by an
// earlier commitment and paid after the grace period, and every proof transaction the chain
// rejects (a disputes error: what the sender paid for it), from finalized blocks.
//
// Run (against `make dev` or any node; `npm ci` in examples/ once, or `bash scripts/setup.sh`):
//
//   node examples/watch-fraud.js                    # from now on, until Ctrl-C
//   node examples/watch-fraud.js --from 0           # the chain's history first, then new blocks
//   node examples/watch-fraud.js --prover //Bob --count 1 --timeout 300
//
// Options: --url (default ws://127.0.0.1:9944), --from (first block; default the block after the
// finalized head), --prover (an SS58 address or secret URI: only that prover's proofs),
// --count N (exit 0 after N accepted fraud proofs), --timeout SECONDS (with --count: exit 1 if
// they do not come in time). Errors: one line on stderr, exit 1.
import {
  DEFAULT_URL, parseArgs, run, fail, connect, account, vrty, dispatchErrorText, followFinalized,
} from './lib/common.js';

const USAGE = `
usage: node examples/watch-fraud.js [--url ws://127.0.0.1:9944] [--from BLOCK] [--prover //Bob|ADDRESS] [--count N] [--timeout SECONDS]
Prints accepted fraud proofs (slash, reward, fee) and rejected ones (error, fee) from finalized blocks.`;

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, from: '', prover: '', count: '', timeout: '' }, USAGE);
  const prover = opts.prover ? await account(opts.prover) : null;
  const count = opts.count === '' ? Infinity : Number(opts.count);
  if (!(count >= 1)) throw new Error(`bad --count ${opts.count}`);
  if (opts.timeout !== '') {
    const s = Number(opts.timeout);
    if (!(s > 0)) throw new Error(`bad --timeout ${opts.timeout}`);
    setTimeout(() => fail(`fewer than ${opts.count || 'any'} fraud proofs within ${s} s`), s * 1000).unref();
  }
  const api = await connect(opts.url);
  const head = (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber();
  const from = opts.from === '' ? head + 1 : Number(opts.from);
  if (!Number.isInteger(from) || from < 0) throw new Error(`bad --from ${opts.from}`);
  console.log(`watching fraud proofs${prover ? ` by ${prover}` : ''} in finalized blocks from #${from} (finalized head #${head})`);

  const E = api.events;
  let seen = 0;
  let totals = { reward: 0n, fees: 0n };
  const commitFees = new Map(); // `${job}/${prover}` -> the commitment's fee
  await new Promise((ok, ko) => {
    followFinalized(api, from, (n, events) => {
      // The transaction fee paid by each extrinsic of the block, by its index.
      const fees = new Map();
      for (const { phase, event } of events) {
        if (phase.isApplyExtrinsic && E.transactionPayment.TransactionFeePaid.is(event)) {
          fees.set(phase.asApplyExtrinsic.toNumber(), { who: event.data.who.toString(), fee: event.data.actualFee.toBigInt() });
        }
      }
      for (const { phase, event } of events) {
        const paid = phase.isApplyExtrinsic ? fees.get(phase.asApplyExtrinsic.toNumber()) : undefined;
        if (E.disputes.ProofCommitted.is(event)) {
          commitFees.set(`${event.data.job}/${event.data.prover}`, paid?.fee ?? 0n);
        } else if (E.disputes.RewardTakenOver.is(event)) {
          const d = event.data;
          if (prover && ![d.from.toString(), d.to.toString()].includes(prover)) continue;
          console.log(`#${n} job ${d.job}: ${d.to} revealed the same proof with an earlier commitment: the reward of ${vrty(d.amount)} moved from ${d.from}`);
        } else if (E.disputes.RewardPaid.is(event)) {
          const d = event.data;
          if (prover && d.prover.toString() !== prover) continue;
          console.log(`#${n} job ${d.job}: reward of ${vrty(d.amount)} paid to ${d.prover} (grace period over)`);
        } else if (E.disputes.FraudProven.is(event)) {
          const d = event.data;
          if (prover && d.prover.toString() !== prover) continue;
          const fee = (paid?.fee ?? 0n) + (commitFees.get(`${d.job}/${d.prover}`) ?? 0n);
          console.log(`#${n} job ${d.job}: ${d.prover} proved step ${d.step} of ${d.operator}'s commitment wrong: ` +
            `slashed ${vrty(d.slashed)}, reward ${vrty(d.reward)}, proof's transaction fee ${vrty(fee)}, net ${vrty(d.reward.toBigInt() - fee)}`);
          totals = { reward: totals.reward + d.reward.toBigInt(), fees: totals.fees + fee };
          seen++;
        } else if (E.system.ExtrinsicFailed.is(event)) {
          const err = event.data.dispatchError;
          if (!err.isModule || api.registry.findMetaError(err.asModule).section !== 'disputes') continue;
          if (prover && paid?.who !== prover) continue;
          console.log(`#${n} rejected proof from ${paid?.who ?? '?'}: ${dispatchErrorText(api, err)}; it paid ${vrty(paid?.fee ?? 0n)}`);
          totals.fees += paid?.fee ?? 0n;
        }
      }
      if (seen >= count) {
        ok();
        return true;
      }
      return false;
    }, ko).catch(ko);
  });
  console.log(`${seen} fraud proofs: rewards ${vrty(totals.reward)}, transaction fees ${vrty(totals.fees)}`);
  await api.disconnect();
  return 0;
});
