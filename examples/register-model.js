#!/usr/bin/env node
// Register a Verity model file (a classifier's `.vmodel`, docs/MODEL_FORMAT.md section 4, or a
// language model's `.vlm`, section 12, as `verity-worker import` writes it) on the chain, in two
// transactions: `models.announce(announcement)` with announcement = blake2-256("verity/model" ‖
// publisher ‖ model id), then, once that is in a block, `models.register(header, name, uri)` with
// the file's canonical header (a header copied from the pool cannot be taken: docs/PUBLISHER.md).
// The chain validates the header against its limits, computes the model id (blake2-256 of the
// header) and holds a deposit; this script checks that id against the one it computes itself and
// prints both. If the registration fails, the announcement is withdrawn (its deposit released).
//
// Run (against `make dev`; `npm ci` in examples/ once, or `bash scripts/setup.sh`):
//
//   node examples/register-model.js --file my_model.vmodel --name my-model --uri https://example.org/my_model.vmodel
//
// Options: --url (default ws://127.0.0.1:9944), --seed (the publisher, default //Ferdie),
// --file (required), --name (required, at most 64 bytes), --uri (where the file can be
// fetched, at most 256 bytes; default: the file's path). Errors (e.g. `models.AlreadyRegistered`,
// `models.InvalidModel`): one line on stderr, exit 1.
import { u8aConcat, u8aToHex, stringToU8a, hexToU8a } from '@polkadot/util';
import { blake2AsHex } from '@polkadot/util-crypto';
import { DEFAULT_URL, parseArgs, run, connect, signer, vrty, dispatchErrorText, modelHeader } from './lib/common.js';

const USAGE = `
usage: node examples/register-model.js --file MODEL.vmodel|MODEL.vlm --name NAME [--uri URI] [--url ws://127.0.0.1:9944] [--seed //Ferdie]
Registers the model file's header on the chain and prints its id and deposit.`;

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, seed: '//Ferdie', file: '', name: '', uri: '' }, USAGE);
  if (!opts.file || !opts.name) throw new Error('--file and --name are required (see --help)');
  const { header, kind } = modelHeader(opts.file);
  const id = blake2AsHex(header, 256);
  const publisher = await signer(opts.seed);
  const api = await connect(opts.url);
  console.log(`${kind} model ${id}: header ${header.length} bytes, name ${opts.name}, publisher ${publisher.address}`);
  const inBlock = (tx, what) => new Promise((ok, ko) => {
    tx.signAndSend(publisher, ({ status, events: evs, dispatchError }) => {
      if (dispatchError) return ko(new Error(`${what} failed: ${dispatchErrorText(api, dispatchError)}`));
      if (status.isInBlock) ok(evs);
    }).catch((e) => ko(new Error(`${what} rejected: ${e.message}`)));
  });
  // 1. The announcement (kept from an earlier run if there is one), in an earlier block.
  const announcement = blake2AsHex(u8aConcat(stringToU8a('verity/model'), publisher.publicKey, hexToU8a(id)), 256);
  if ((await api.query.models.announcements(publisher.address, announcement)).isNone) {
    await inBlock(api.tx.models.announce(announcement), 'announce');
    console.log(`announced ${announcement}`);
  }
  // 2. The registration.
  let events;
  try {
    events = await inBlock(api.tx.models.register(u8aToHex(header), opts.name, opts.uri || opts.file), 'register');
  } catch (e) {
    await inBlock(api.tx.models.withdrawAnnouncement(announcement), 'withdraw the announcement').catch(() => {});
    throw e;
  }
  const registered = events.find(({ event }) => api.events.models.Registered.is(event));
  if (!registered) throw new Error('register included without a models.Registered event');
  const onChain = registered.event.data.model.toHex();
  if (onChain !== id) throw new Error(`the chain registered ${onChain}, not ${id}`);
  console.log(`registered ${onChain}: deposit ${vrty(registered.event.data.deposit)} held from ${publisher.address}`);
  await api.disconnect();
  return 0;
});
