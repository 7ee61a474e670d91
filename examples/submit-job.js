#!/usr/bin/env node
// Submit an inference job to a Verity chain, follow it to the end and print its output and receipt.
//
// Run (a dev chain from `make dev` on ws://127.0.0.1:9944; `npm ci` in examples/ once, or
// `bash scripts/setup.sh`):
//
//   node examples/submit-job.js                       # //Charlie runs digits-cnn on its sample input
//   node examples/submit-job.js --model digits-mlp --max-fee 1.5
//   node examples/submit-job.js --model 0x<model id> --input my-image.bin --seed "//Dave"
//
// Options: --url (default ws://127.0.0.1:9944), --seed (secret URI of the requester, default
// //Charlie), --model (a registered model's name or id, default digits-cnn), --input (a file of
// raw int8 bytes, the model's input size; default: the repository's sample input of the example
// model), --max-fee (VRTY, default 2), --timeout (seconds, default 600).
//
// It prints every event of the job from finalized blocks (Submitted, Assigned, Committed,
// DeadlineMissed, FraudProven, then Finalized, Expired or Fraudulent), the output tensor (int8)
// and the receipt kept on-chain (`jobs.receipts(job)`). Exit status: 0 when the job is final,
// 2 when it closed without a result (expired or fraud proven; the fee was refunded), 1 on any
// error (one line on stderr, e.g. `submit-job.js: error: submit failed: jobs.NoOperatorAvailable
// (...)`).
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { u8aToHex } from '@polkadot/util';
import {
  REPO, DEFAULT_URL, parseArgs, run, fail, connect, signer, findModel, sampleInput, parseVrty, vrty,
  dispatchErrorText, followFinalized,
} from './lib/common.js';

const USAGE = `
usage: node examples/submit-job.js [--url ws://127.0.0.1:9944] [--seed //Charlie] [--model digits-cnn|0x<id>]
                                   [--input FILE] [--max-fee VRTY] [--timeout SECONDS]
Submits a job, follows its events until it closes, prints the output (int8) and the receipt.
Exit status: 0 final, 2 expired or fraud proven, 1 error.`;

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, seed: '//Charlie', model: 'digits-cnn', input: '', 'max-fee': '2', timeout: '600' }, USAGE);
  const timeoutS = Number(opts.timeout);
  if (!(timeoutS > 0)) throw new Error(`bad --timeout ${opts.timeout}`);
  setTimeout(() => fail(`the job did not close within ${timeoutS} s`), timeoutS * 1000).unref();
  const maxFee = parseVrty(opts['max-fee']);
  const requester = await signer(opts.seed);

  const api = await connect(opts.url);
  const best = await api.rpc.chain.getHeader();
  console.log(`connected to ${opts.url} (${await api.rpc.system.chain()}, best block #${best.number.toNumber()})`);

  const model = await findModel(api, opts.model);
  const inputFile = opts.input || sampleInput(model.name);
  if (!inputFile) throw new Error(`model ${model.name} has no sample input here; pass --input FILE`);
  const input = readFileSync(inputFile);
  console.log(`model ${model.name} ${model.id}: ${model.record.numOps.toNumber()} ops, input ${model.record.inputElements.toNumber()} bytes, output ${model.record.outputElements.toNumber()} bytes`);
  const shown = relative(process.cwd(), inputFile);
  console.log(`submitting as ${requester.address} (${opts.seed}): input ${shown && !shown.startsWith('..') ? shown : inputFile} (${input.length} bytes), max fee ${vrty(maxFee)}`);

  // Submit and wait until the block that includes the submission is finalized.
  const included = await new Promise((ok, ko) => {
    api.tx.jobs.submit(model.id, u8aToHex(input), maxFee)
      .signAndSend(requester, ({ status, events, dispatchError }) => {
        if (dispatchError) return ko(new Error(`submit failed: ${dispatchErrorText(api, dispatchError)}`));
        if (status.isFinalized) {
          const submitted = events.find(({ event }) => api.events.jobs.Submitted.is(event));
          const paid = events.find(({ event }) => api.events.transactionPayment.TransactionFeePaid.is(event));
          if (!submitted) return ko(new Error('submit included without a jobs.Submitted event'));
          ok({ hash: status.asFinalized, job: submitted.event.data.job.toNumber(), fee: paid?.event.data.actualFee.toBigInt() ?? 0n });
        } else if (status.isDropped || status.isInvalid || status.isUsurped) {
          ko(new Error(`submit transaction ${status.type.toLowerCase()}`));
        }
      })
      .catch((e) => ko(new Error(`submit rejected: ${e.message}`)));
  });
  const from = (await api.rpc.chain.getHeader(included.hash)).number.toNumber();
  const job = included.job;
  console.log(`job ${job} submitted in block #${from} (transaction fee ${vrty(included.fee)})`);

  // Follow the job's events, block by block, until it closes.
  const E = api.events;
  const closed = await new Promise((ok, ko) => {
    followFinalized(api, from, async (n, events) => {
      let done = false;
      for (const { event } of events) {
        const d = event.data;
        if (!d.job || d.job.toNumber() !== job) continue;
        const at = `#${n} ${event.section}.${event.method}`;
        if (E.jobs.Submitted.is(event)) console.log(`${at}: by ${d.requester}, max fee ${vrty(d.maxFee)}`);
        else if (E.jobs.Assigned.is(event)) console.log(`${at}: operator ${d.operator}, price ${vrty(d.price)}, deadline #${d.deadline}`);
        else if (E.jobs.Committed.is(event)) console.log(`${at}: by ${d.operator}, trace root ${d.traceRoot.toHex()}, challenge window until #${d.windowEnd}`);
        else if (E.jobs.DeadlineMissed.is(event)) console.log(`${at}: ${d.operator} missed the deadline, penalty ${vrty(d.penalty)}`);
        else if (E.disputes.FraudProven.is(event)) console.log(`${at}: ${d.prover} proved step ${d.step} of ${d.operator} wrong; slashed ${vrty(d.slashed)}, prover's reward ${vrty(d.reward)}`);
        else if (E.jobs.Finalized.is(event)) console.log(`${at}: final, ${d.operator} paid ${vrty(d.fee)}`);
        else if (E.jobs.Expired.is(event) || E.jobs.Fraudulent.is(event)) console.log(`${at}: closed, ${vrty(d.refund)} refunded to ${d.requester}`);
        // The block's other events about the job still follow (FraudProven comes after Fraudulent).
        if (E.jobs.Finalized.is(event) || E.jobs.Expired.is(event) || E.jobs.Fraudulent.is(event)) done = true;
      }
      if (done) ok(n);
      return done;
    }, ko).catch(ko);
  });

  // The receipt, as stored at the block where the job closed.
  const at = await api.at(await api.rpc.chain.getBlockHash(closed));
  const r = (await at.query.jobs.receipts(job)).unwrap();
  const outcome = r.outcome.isFraud
    ? { Fraud: { prover: r.outcome.asFraud.prover.toString(), step: r.outcome.asFraud.step.toNumber() } }
    : r.outcome.type;
  const receipt = {
    job,
    requester: r.requester.toString(),
    model: r.model.toHex(),
    operator: r.operator.toString(),
    output: r.output.toHex(),
    traceRoot: r.traceRoot.isSome ? r.traceRoot.unwrap().toHex() : null,
    fee: r.fee.toString(),
    closedAt: r.closedAt.toNumber(),
    outcome,
  };
  if (r.outcome.isFinal) {
    const bytes = r.output.toU8a(true);
    const values = Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    const argmax = values.indexOf(Math.max(...values));
    console.log(`output: ${receipt.output}`);
    console.log(`output (int8): ${values.join(' ')} (argmax ${argmax})`);
  }
  console.log(`receipt: ${JSON.stringify(receipt)}`);
  await api.disconnect();
  if (!r.outcome.isFinal) fail(`job ${job} closed as ${r.outcome.type} without a result (the max fee was refunded)`, 2);
  return 0;
});
