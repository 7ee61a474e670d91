#!/usr/bin/env node
// Register language models (`.vlm` files, as `verity-worker import` writes them) and have an
// operator serve them at a price per position: what `make dev` runs for its text models once
// the node is up (scripts/dev.sh). Three blocks for any number of models: the publisher's
// announcements together, then its registrations together, then the operator's `serve` calls
// together (each batch waited for in a block). Models already registered are not registered
// again, and a model the operator already serves at that price is left as it is, so running it
// twice changes nothing.
//
// Run (against `make dev`, which has done it already; `npm ci` in examples/ once):
//
//   node examples/serve-text-models.js ~/.cache/verity/dev-text-models/glassllm-en.vlm
//
// Arguments: the `.vlm` files, each optionally `NAME=FILE` (default name: the file's name
// without `.vlm`). Options: --url (default ws://127.0.0.1:9944), --publisher (default //Ferdie),
// --operator (a bonded operator's secret URI, default //Alice), --price VRTY per position
// (default 0.01; a generation costs it for every prompt and generated token). Prints one line
// per model: `NAME ID`. Errors: one line on stderr, exit 1.
import { basename } from 'node:path';
import { u8aConcat, u8aToHex, stringToU8a, hexToU8a } from '@polkadot/util';
import { blake2AsHex } from '@polkadot/util-crypto';
import {
  DEFAULT_URL, parseArgs, run, connect, signer, parseVrty, vrty, dispatchErrorText, modelHeader,
} from './lib/common.js';

const USAGE = `
usage: node examples/serve-text-models.js [--url ws://127.0.0.1:9944] [--publisher //Ferdie] [--operator //Alice] [--price 0.01] [NAME=]MODEL.vlm ...
Registers the language models (unless they are) and has the operator serve them at the price per position.`;

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, publisher: '//Ferdie', operator: '//Alice', price: '0.01', _: [] }, USAGE);
  if (opts._.length === 0) throw new Error('give at least one .vlm file (see --help)');
  const price = parseVrty(opts.price);
  const models = opts._.map((arg) => {
    const eq = arg.indexOf('=');
    const file = eq > 0 ? arg.slice(eq + 1) : arg;
    const name = eq > 0 ? arg.slice(0, eq) : basename(file).replace(/\.vlm$/, '');
    const { header, kind } = modelHeader(file);
    if (kind !== 'text') throw new Error(`${file} is a classifier model, not a language model (use register-model.js)`);
    return { file, name, header, id: blake2AsHex(header, 256) };
  });
  const publisher = await signer(opts.publisher);
  const operator = await signer(opts.operator);
  const api = await connect(opts.url);

  // Send every transaction of a step (consecutive nonces from the pool's next one), then wait
  // until all are in a block; the first failure is reported.
  const step = async (who, txs) => {
    const first = (await api.rpc.system.accountNextIndex(who.address)).toNumber();
    await Promise.all(txs.map(([tx, what], i) => new Promise((ok, ko) => {
      tx.signAndSend(who, { nonce: first + i }, ({ status, dispatchError }) => {
        if (dispatchError) return ko(new Error(`${what} failed: ${dispatchErrorText(api, dispatchError)}`));
        if (status.isInBlock) ok();
      }).catch((e) => ko(new Error(`${what} rejected: ${e.message}`)));
    })));
  };
  const announcement = (m) => blake2AsHex(u8aConcat(stringToU8a('verity/model'), publisher.publicKey, hexToU8a(m.id)), 256);

  const fresh = [];
  for (const m of models) {
    if ((await api.query.models.models(m.id)).isNone) fresh.push(m);
  }
  const unannounced = [];
  for (const m of fresh) {
    if ((await api.query.models.announcements(publisher.address, announcement(m))).isNone) unannounced.push(m);
  }
  await step(publisher, unannounced.map((m) => [api.tx.models.announce(announcement(m)), `announce ${m.name}`]));
  await step(publisher, fresh.map((m) => [api.tx.models.register(u8aToHex(m.header), m.name, m.file), `register ${m.name}`]));

  const op = await api.query.operators.operators(operator.address);
  if (op.isNone) throw new Error(`${operator.address} is not a bonded operator (node examples/operator-setup.js --bond)`);
  const toServe = [];
  for (const m of models) {
    const servers = await api.query.operators.servers(m.id);
    const mine = servers.find((s) => s.operator.toString() === operator.address);
    if (!mine || mine.price.toBigInt() !== price) toServe.push(m);
  }
  await step(operator, toServe.map((m) => [api.tx.operators.serve(m.id, price), `serve ${m.name}`]));
  for (const m of models) {
    console.log(`${m.name} ${m.id}`);
  }
  process.stderr.write(`${models.length} language model(s) registered and served by ${operator.address} at ${vrty(price)} per position\n`);
  await api.disconnect();
  return 0;
});
