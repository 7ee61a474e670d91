#!/usr/bin/env node
// An operator's status: balance, stake (active, locked as collateral, unbonding, jail), the
// models it serves and at what price, its open jobs, and what it earned and lost in a range of
// finalized blocks (from the events: jobs.Finalized fees, jobs.DeadlineMissed penalties,
// disputes.FraudProven slashes, and the transaction fees it paid).
//
// Run (against `make dev`; `npm ci` in examples/ once, or `bash scripts/setup.sh`):
//
//   node examples/operator-status.js                      # Alice, the last 100 finalized blocks
//   node examples/operator-status.js --operator 5FHneW46... --from 0
//   node examples/operator-status.js --follow             # then print each new earning as it happens
//
// Options: --url (default ws://127.0.0.1:9944), --operator (an SS58 address or a secret URI,
// default //Alice), --from (first block to scan; default 100 blocks before the finalized head),
// --follow (keep watching finalized blocks; Ctrl-C stops). Errors: one line on stderr, exit 1.
import {
  DEFAULT_URL, parseArgs, run, connect, account, vrty, models, blockEvents, followFinalized, fail,
} from './lib/common.js';

const USAGE = `
usage: node examples/operator-status.js [--url ws://127.0.0.1:9944] [--operator //Alice|ADDRESS] [--from BLOCK] [--follow]
Prints an operator's stake, served models and prices, open jobs, and its earnings in finalized blocks.`;

/** What the events of one block mean for `who`: lines to print and amounts (planck). */
function earnings(api, who, n, events) {
  const out = { lines: [], jobs: 0, earned: 0n, missed: 0, penalties: 0n, frauds: 0, slashed: 0n, fees: 0n };
  const E = api.events;
  for (const { event } of events) {
    const d = event.data;
    if (E.transactionPayment.TransactionFeePaid.is(event) && d.who.toString() === who) {
      out.fees += d.actualFee.toBigInt();
    } else if (E.jobs.Finalized.is(event) && d.operator.toString() === who) {
      out.jobs++;
      out.earned += d.fee.toBigInt();
      out.lines.push(`#${n} job ${d.job} final: +${vrty(d.fee)}`);
    } else if (E.jobs.DeadlineMissed.is(event) && d.operator.toString() === who) {
      out.missed++;
      out.penalties += d.penalty.toBigInt();
      out.lines.push(`#${n} job ${d.job} deadline missed: -${vrty(d.penalty)} (penalty)`);
    } else if (E.disputes.FraudProven.is(event) && d.operator.toString() === who) {
      out.frauds++;
      out.slashed += d.slashed.toBigInt();
      out.lines.push(`#${n} job ${d.job} fraud proven by ${d.prover} (step ${d.step}): -${vrty(d.slashed)} (collateral slashed, jailed)`);
    }
  }
  return out;
}

run(async () => {
  const opts = parseArgs({ url: DEFAULT_URL, operator: '//Alice', from: '', follow: false }, USAGE);
  const who = await account(opts.operator);
  const api = await connect(opts.url);
  const head = await api.rpc.chain.getFinalizedHead();
  const headNumber = (await api.rpc.chain.getHeader(head)).number.toNumber();
  const from = opts.from === '' ? Math.max(0, headNumber - 100) : Number(opts.from);
  if (!Number.isInteger(from) || from < 0 || from > headNumber) throw new Error(`bad --from ${opts.from} (finalized head #${headNumber})`);
  const at = await api.at(head);

  console.log(`operator ${who} at finalized block #${headNumber}`);
  const { data: balance } = await at.query.system.account(who);
  console.log(`balance: free ${vrty(balance.free)}, on hold ${vrty(balance.reserved)}`);
  const op = await at.query.operators.operators(who);
  if (op.isNone) {
    console.log('not an operator (operators.bond to become one)');
  } else {
    const o = op.unwrap();
    const free = o.active.toBigInt() - o.locked.toBigInt();
    const jail = o.jailedUntil.isSome ? `jailed until #${o.jailedUntil.unwrap()} (then operators.unjail and serve again)` : 'not jailed';
    console.log(`stake: active ${vrty(o.active)}, locked ${vrty(o.locked)} as collateral of ${o.openJobs} open jobs, free ${vrty(free)}; ${jail}`);
    for (const c of o.unbonding) console.log(`unbonding: ${vrty(c.amount)} withdrawable from #${c.until}`);
    const named = Object.fromEntries((await models(api)).map((m) => [m.id, m.name]));
    for (const model of o.models) {
      const servers = await at.query.operators.servers(model);
      const mine = servers.find((s) => s.operator.toString() === who);
      console.log(`serves: ${named[model.toHex()] ?? '(unnamed)'} ${model.toHex()} at ${mine ? vrty(mine.price) : '?'} per job (${servers.length} operators serve it)`);
    }
    if (o.models.length === 0) console.log('serves: nothing (operators.serve MODEL PRICE)');
  }
  for (const [key, job] of await at.query.jobs.jobs.entries()) {
    const j = job.unwrap();
    if (j.operator.toString() !== who) continue;
    const state = j.status.isAssigned
      ? `assigned, deadline #${j.status.asAssigned.deadline}`
      : `committed, challenge window until #${j.status.asCommitted.windowEnd}`;
    console.log(`open job ${key.args[0]}: ${state}, price ${vrty(j.price)}, collateral ${vrty(j.collateral)}`);
  }

  // Earnings over the range, from the events of every block (ten blocks at a time).
  const total = { jobs: 0, earned: 0n, missed: 0, penalties: 0n, frauds: 0, slashed: 0n, fees: 0n };
  const add = (e) => {
    for (const line of e.lines) console.log(line);
    for (const k of Object.keys(total)) total[k] += e[k];
  };
  for (let n = from; n <= headNumber; n += 10) {
    const batch = [];
    for (let m = n; m <= Math.min(n + 9, headNumber); m++) batch.push(blockEvents(api, m).then((b) => earnings(api, who, m, b.events)));
    for (const e of await Promise.all(batch)) add(e);
  }
  const net = total.earned - total.penalties - total.slashed - total.fees;
  console.log(`blocks #${from}..#${headNumber}: ${total.jobs} jobs final, earned ${vrty(total.earned)}; ` +
    `${total.missed} deadlines missed, penalties ${vrty(total.penalties)}; ${total.frauds} frauds proven, slashed ${vrty(total.slashed)}; ` +
    `transaction fees ${vrty(total.fees)}; net ${vrty(net)}`);

  if (!opts.follow) {
    await api.disconnect();
    return 0;
  }
  console.log('following finalized blocks (Ctrl-C stops)');
  await followFinalized(api, headNumber + 1, (n, events) => {
    for (const line of earnings(api, who, n, events).lines) console.log(line);
    return false;
  }, (e) => fail(e.message));
  return new Promise(() => {});
});
