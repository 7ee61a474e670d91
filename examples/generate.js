#!/usr/bin/env node
// Ask a Verity chain for a text generation: turn a prompt into tokens, submit a generation job,
// follow it to the end, and print the text and the receipt.
//
// Run (a dev chain from `make dev` on ws://127.0.0.1:9944, its inference worker on
// http://127.0.0.1:9955; `npm ci` in examples/ once, or `bash scripts/setup.sh`):
//
//   node examples/generate.js --prompt "Once upon a time"                    # glassllm-en, 32 tokens
//   node examples/generate.js --model SmolLM2-135M-Instruct --chat "What is the capital of France?" --max-tokens 16
//   node examples/generate.js --prompt "The sea" --temperature 0.8 --top-p 0.9 --sample-seed 7
//
// Options: --url (default ws://127.0.0.1:9944), --worker (an inference worker serving the
// model, for its tokenizer: text -> tokens and back; default http://127.0.0.1:9955), --seed
// (secret URI of the requester, default //Charlie), --model (a registered language model's name
// or id, default glassllm-en), --prompt TEXT or --chat TEXT (one user message in the model's
// chat template), --max-tokens (default 32), --temperature (0: greedy, the default), --top-k
// (0: off), --top-p (1: off), --sample-seed (an integer, the sampler's seed; the job's 32-byte
// seed is its 8 little-endian bytes and zeros, as `verity-worker generate --seed` makes it),
// --max-fee VRTY (default: the highest server price times the job's positions), --timeout
// (seconds, default 600), --json (print one JSON object at the end instead of the lines).
//
// The tokens are the job: the chain, the operator and the watchers see token ids only; the
// worker's tokenizer is the model's own (its file's hash is in the model's header). The prompt,
// the parameters and the output tokens are all on chain; the text is decoded from the output
// tokens. It prints every event of the job from finalized blocks (Submitted, Assigned,
// Committed, the dispute game's moves if a watcher challenges, then Finalized or Fraudulent),
// the text, and the receipt kept on chain (`jobs.receipts(job)`: output tokens, job root,
// outcome) with the text's blake2-256. Exit status: 0 when the job is final, 2 when it closed
// without a result (expired or fraud proven; the fee was refunded), 1 on any error (one line on
// stderr).
import { blake2AsHex } from '@polkadot/util-crypto';
import { stringToU8a } from '@polkadot/util';
import {
  DEFAULT_URL, parseArgs, run, fail, connect, signer, findModel, parseVrty, vrty,
  dispatchErrorText, followFinalized,
} from './lib/common.js';

const USAGE = `
usage: node examples/generate.js (--prompt TEXT | --chat TEXT) [--model glassllm-en|0x<id>] [--max-tokens 32]
                                 [--temperature T] [--top-k K] [--top-p P] [--sample-seed S] [--max-fee VRTY]
                                 [--url ws://127.0.0.1:9944] [--worker http://127.0.0.1:9955] [--seed //Charlie]
                                 [--timeout SECONDS] [--json]
Submits a generation job, follows it until it closes, prints the text and the receipt.
Exit status: 0 final, 2 expired or fraud proven, 1 error.`;

/** One JSON-RPC call to the inference worker; its error becomes an exception. */
async function workerCall(url, method, params) {
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new Error(`cannot reach the inference worker at ${url} (${e.cause?.code ?? e.message}); give --worker`);
  }
  const body = await res.json();
  if (body.error) throw new Error(`worker ${method}: ${body.error.message}`);
  return body.result;
}

/** The tokens of a `Vec<u32>` output (4 bytes each, little-endian). */
function tokensOf(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = [];
  for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(view.getUint32(i, true));
  return out;
}

/** Q16 of a number in 0..=max (rounded, as the worker does). */
function q16(v, name, max) {
  const x = Number(v);
  if (!(x >= 0 && x <= max)) throw new Error(`--${name} must be a number in 0..=${max} (got ${v})`);
  return Math.round(x * 65536);
}

run(async () => {
  const opts = parseArgs({
    url: DEFAULT_URL, worker: 'http://127.0.0.1:9955', seed: '//Charlie', model: 'glassllm-en', prompt: '', chat: '',
    'max-tokens': '32', temperature: '0', 'top-k': '0', 'top-p': '1', 'sample-seed': '0', 'max-fee': '', timeout: '600', json: false,
  }, USAGE);
  if (!opts.prompt === !opts.chat) throw new Error('give exactly one of --prompt and --chat');
  const timeoutS = Number(opts.timeout);
  if (!(timeoutS > 0)) throw new Error(`bad --timeout ${opts.timeout}`);
  setTimeout(() => fail(`the job did not close within ${timeoutS} s`), timeoutS * 1000).unref();
  const maxNew = Number(opts['max-tokens']);
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new Error(`--max-tokens must be a positive integer (got ${opts['max-tokens']})`);
  const topK = Number(opts['top-k']);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`--top-k must be a non-negative integer (got ${opts['top-k']})`);
  if (!/^\d+$/.test(opts['sample-seed']) || BigInt(opts['sample-seed']) >= 2n ** 64n) throw new Error(`--sample-seed must be an integer in 0..2^64 (got ${opts['sample-seed']})`);
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setBigUint64(0, BigInt(opts['sample-seed']), true);
  const params = {
    temperatureQ16: q16(opts.temperature, 'temperature', 65535),
    topK,
    topPQ16: q16(opts['top-p'], 'top-p', 1),
    seed,
  };
  const log = opts.json ? () => {} : (line) => console.log(line);
  const requester = await signer(opts.seed);

  const api = await connect(opts.url);
  const best = await api.rpc.chain.getHeader();
  log(`connected to ${opts.url} (${await api.rpc.system.chain()}, best block #${best.number.toNumber()})`);
  const model = await findModel(api, opts.model);
  const kind = model.record.kind;
  if (!kind.isText) throw new Error(`model ${model.name} is not a language model (use submit-job.js)`);
  const text = kind.asText;

  // The prompt's tokens, from the model's own tokenizer (the worker checks its hash).
  const prompt = opts.chat ? { chat: opts.chat } : { text: opts.prompt };
  const tokenized = await workerCall(opts.worker, 'tokenize', [model.id, prompt]);
  const tokens = tokenized.tokens;
  log(`model ${model.name} ${model.id}: vocabulary ${text.vocab.toNumber()}, context ${text.maxContext.toNumber()}`);
  log(`prompt: ${tokens.length} tokens ${JSON.stringify(tokens)}`);

  // The fee bound: the price per position of the dearest server, for every position.
  const positions = BigInt(tokens.length + maxNew);
  let maxFee;
  if (opts['max-fee']) {
    maxFee = parseVrty(opts['max-fee']);
  } else {
    const servers = await api.query.operators.servers(model.id);
    if (servers.length === 0) throw new Error(`nobody serves ${model.name}`);
    maxFee = servers.reduce((m, s) => (s.price.toBigInt() > m ? s.price.toBigInt() : m), 0n) * positions;
  }
  log(`submitting as ${requester.address} (${opts.seed}): ${maxNew} new tokens at most, max fee ${vrty(maxFee)}`);

  // Submit and wait until the block that includes the submission is finalized.
  const included = await new Promise((ok, ko) => {
    api.tx.jobs.submitGeneration(model.id, tokens, maxNew, params, maxFee)
      .signAndSend(requester, ({ status, events, dispatchError }) => {
        if (dispatchError) return ko(new Error(`submit_generation failed: ${dispatchErrorText(api, dispatchError)}`));
        if (status.isFinalized) {
          const submitted = events.find(({ event }) => api.events.jobs.Submitted.is(event));
          if (!submitted) return ko(new Error('submit_generation included without a jobs.Submitted event'));
          ok({ hash: status.asFinalized, job: submitted.event.data.job.toNumber() });
        } else if (status.isDropped || status.isInvalid || status.isUsurped) {
          ko(new Error(`submit_generation transaction ${status.type.toLowerCase()}`));
        }
      })
      .catch((e) => ko(new Error(`submit_generation rejected: ${e.message}`)));
  });
  const from = (await api.rpc.chain.getHeader(included.hash)).number.toNumber();
  const job = included.job;
  log(`job ${job} submitted in block #${from}`);

  // Follow the job's events, block by block, until it closes.
  const E = api.events;
  const closed = await new Promise((ok, ko) => {
    followFinalized(api, from, async (n, events) => {
      let done = false;
      for (const { event } of events) {
        const d = event.data;
        if (!d.job || d.job.toNumber() !== job) continue;
        const at = `#${n} ${event.section}.${event.method}`;
        if (E.jobs.Assigned.is(event)) log(`${at}: operator ${d.operator}, price ${vrty(d.price)} per position, deadline #${d.deadline}`);
        else if (E.jobs.Committed.is(event)) log(`${at}: by ${d.operator}, job root ${d.traceRoot.toHex()}, challenge window until #${d.windowEnd}`);
        else if (E.disputes.Challenged.is(event)) log(`${at}: by ${d.challenger}, roots due #${d.rootsDue}`);
        else if (E.disputes.PositionNamed.is(event)) log(`${at}: ${d.challenger} names position ${d.position}, due #${d.due}`);
        else if (E.disputes.GenerationFraudProven.is(event)) log(`${at}: ${d.winner} wins against ${d.operator}; slashed ${vrty(d.slashed)}, reward ${vrty(d.reward)}`);
        else if (E.jobs.Finalized.is(event)) log(`${at}: final, ${d.operator} paid ${vrty(d.fee)}`);
        else if (E.jobs.Expired.is(event) || E.jobs.Fraudulent.is(event)) log(`${at}: closed, ${vrty(d.refund)} refunded to ${d.requester}`);
        else log(at);
        if (E.jobs.Finalized.is(event) || E.jobs.Expired.is(event) || E.jobs.Fraudulent.is(event)) done = true;
      }
      if (done) ok(n);
      return done;
    }, ko).catch(ko);
  });

  // The receipt, as stored at the block where the job closed.
  const at = await api.at(await api.rpc.chain.getBlockHash(closed));
  const r = (await at.query.jobs.receipts(job)).unwrap();
  const output = tokensOf(r.output.toU8a(true));
  const receipt = {
    job,
    requester: r.requester.toString(),
    model: r.model.toHex(),
    operator: r.operator.toString(),
    prompt: tokens,
    tokens: output,
    jobRoot: r.traceRoot.isSome ? r.traceRoot.unwrap().toHex() : null,
    fee: r.fee.toString(),
    closedAt: r.closedAt.toNumber(),
    outcome: r.outcome.toJSON(),
  };
  let generated = null;
  if (r.outcome.isFinal) {
    generated = (await workerCall(opts.worker, 'detokenize', [model.id, output])).text;
    receipt.textHash = blake2AsHex(stringToU8a(generated), 256);
    log(`text: ${JSON.stringify(generated)}`);
  }
  if (opts.json) console.log(JSON.stringify({ text: generated, receipt }));
  else log(`receipt: ${JSON.stringify(receipt)}`);
  await api.disconnect();
  if (!r.outcome.isFinal) fail(`job ${job} closed as ${r.outcome.type} without a result (the max fee was refunded)`, 2);
  return 0;
});
