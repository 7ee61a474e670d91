#!/usr/bin/env node
// Make an account an operator: bond stake (`operators.bond`, or `operators.bond_extra` when it
// is already bonded) and serve a model at a price per job (`operators.serve`; serving a model
// again changes the price). Its node's agent then executes the jobs assigned to it, provided the
// account's `vrty` key is in that node's keystore (docs/OPERATOR.md).
//
// Run (against `make dev`; `npm ci` in examples/ once, or `bash scripts/setup.sh`):
//
//   node examples/operator-setup.js --seed //Dave --bond 1000 --model digits-cnn --price 0.5
//   node examples/operator-setup.js --seed //Dave --model digits-mlp --price 0.2   # serve one more
//   node examples/operator-setup.js --seed //Dave --unjail                         # after a jail term
//
// Options: --url (default ws://127.0.0.1:9944), --seed (the operator's secret URI, required),
// --bond VRTY (stake to add; at least MinBond = 1000 VRTY for a new operator), --model (a
// registered model's name or id) with --price VRTY, --unjail. Errors (e.g.
// `operators.BelowMinBond`): one line on stderr, exit 1.
import {
  DEFAULT_URL, parseArgs, run, connect, signer, findModel, parseVrty, vrty, dispatchErrorText,
} from './lib/common.js';

const USAGE = `
usage: node examples/operator-setup.js --seed SURI [--bond VRTY] [--model NAME|ID --price VRTY] [--unjail] [--url ws://127.0.0.1:9944]
Bonds stake, serves a model at a price, or unjails an operator.`;

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, seed: '', bond: '', model: '', price: '', unjail: false }, USAGE);
  if (!opts.seed) throw new Error('--seed is required (see --help)');
  if (!!opts.model !== !!opts.price) throw new Error('--model and --price go together');
  if (!opts.bond && !opts.model && !opts.unjail) throw new Error('nothing to do: give --bond, --model/--price or --unjail');
  const who = await signer(opts.seed);
  const api = await connect(opts.url);

  // Each call in its own transaction, in order, each waited for in a block.
  const send = (tx, what) => new Promise((ok, ko) => {
    tx.signAndSend(who, { nonce: -1 }, ({ status, events, dispatchError }) => {
      if (dispatchError) return ko(new Error(`${what} failed: ${dispatchErrorText(api, dispatchError)}`));
      if (status.isInBlock) ok(events);
    }).catch((e) => ko(new Error(`${what} rejected: ${e.message}`)));
  });

  if (opts.bond) {
    const amount = parseVrty(opts.bond);
    const bonded = (await api.query.operators.operators(who.address)).isSome;
    const tx = bonded ? api.tx.operators.bondExtra(amount) : api.tx.operators.bond(amount);
    await send(tx, bonded ? 'bond_extra' : 'bond');
    console.log(`${who.address} bonded ${vrty(amount)}${bonded ? ' more' : ''}`);
  }
  if (opts.unjail) {
    await send(api.tx.operators.unjail(), 'unjail');
    console.log(`${who.address} unjailed`);
  }
  if (opts.model) {
    const model = await findModel(api, opts.model);
    const price = parseVrty(opts.price);
    await send(api.tx.operators.serve(model.id, price), 'serve');
    console.log(`${who.address} serves ${model.name} ${model.id} at ${vrty(price)} per job`);
  }
  const op = (await api.query.operators.operators(who.address)).unwrap();
  console.log(`stake: active ${vrty(op.active)}, locked ${vrty(op.locked)}, serving ${op.models.length} models`);
  await api.disconnect();
  return 0;
});
