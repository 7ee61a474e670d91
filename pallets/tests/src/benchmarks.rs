//! Every benchmark of the four pallets (the `extra` ones too: the transformer-step timings of
//! the disputes pallet) runs against the mock runtime at the lowest and the highest value of
//! each component, with its verify block.
//!
//! The benchmarks run through `Benchmarking::run_benchmark`, the entry point that
//! `verity-node benchmark pallet` calls, on the same state backend (`BenchmarkingState`, which
//! supports the commits and wipes the benchmarking host functions make), so a benchmark that
//! passes here also runs in the weight generation.

use crate::mock::*;
use frame_benchmarking::{BenchmarkParameter, Benchmarking};
use sc_client_db::BenchmarkingState;
use sp_runtime::traits::BlakeTwo256;
use sp_state_machine::{Ext, OverlayedChanges};

fn run_all<P: Benchmarking>() {
	let state = BenchmarkingState::<BlakeTwo256>::new(genesis_storage(), None, false, true)
		.expect("benchmarking state");
	let metas = P::benchmarks(true);
	assert!(!metas.is_empty(), "no benchmarks found");
	for meta in metas {
		let name = String::from_utf8(meta.name.clone()).unwrap();
		let lowest: Vec<(BenchmarkParameter, u32)> =
			meta.components.iter().map(|(p, lo, _)| (*p, *lo)).collect();
		let highest: Vec<(BenchmarkParameter, u32)> =
			meta.components.iter().map(|(p, _, hi)| (*p, *hi)).collect();
		for c in [lowest, highest] {
			let mut overlay = OverlayedChanges::default();
			let mut ext = Ext::new(&mut overlay, &state, None);
			let results = sp_externalities::set_and_run_with_externalities(&mut ext, || {
				P::run_benchmark(&meta.name, &c, &[], true, 1)
			})
			.unwrap_or_else(|e| panic!("benchmark {name} {c:?}: {e:?}"));
			assert_eq!(results.len(), 1, "benchmark {name} {c:?}: one result per repeat");
		}
	}
}

#[test]
fn models_benchmarks() {
	run_all::<pallet_verity_models::Pallet<Test>>();
}

#[test]
fn operators_benchmarks() {
	run_all::<pallet_verity_operators::Pallet<Test>>();
}

#[test]
fn jobs_benchmarks() {
	run_all::<pallet_verity_jobs::Pallet<Test>>();
}

#[test]
fn disputes_benchmarks() {
	run_all::<pallet_verity_disputes::Pallet<Test>>();
}

/// The MAC counts at which `scripts/bench-interpreter.sh` times `prove_fraud_macs` natively and
/// in the runtime's wasm (both within the mock's and the runtime's `MaxStepMacs`).
const RATE_MACS: [u32; 2] = [36_864, 28 * 36_864];

/// The reference interpreter's rate natively: `prove_fraud_macs` at the two MAC counts of
/// [`RATE_MACS`], `VERITY_BENCH_REPEAT` times each (default 200), on the same benchmarking backend
/// as the CLI. Prints the median and minimum extrinsic times and the slope (ns per MAC) of each.
/// Run by
/// `scripts/bench-interpreter.sh` beside the same benchmark in wasm; not part of the suite.
#[test]
#[ignore = "a measurement, run by scripts/bench-interpreter.sh"]
fn interpreter_rate_native() {
	let repeat: usize =
		std::env::var("VERITY_BENCH_REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
	let state = BenchmarkingState::<BlakeTwo256>::new(genesis_storage(), None, false, true)
		.expect("benchmarking state");
	let mut medians = Vec::new();
	let mut minima = Vec::new();
	for m in RATE_MACS {
		let c = [(BenchmarkParameter::m, m)];
		let mut times: Vec<u128> = (0..repeat)
			.map(|_| {
				let mut overlay = OverlayedChanges::default();
				let mut ext = Ext::new(&mut overlay, &state, None);
				let results = sp_externalities::set_and_run_with_externalities(&mut ext, || {
					<pallet_verity_disputes::Pallet<Test> as Benchmarking>::run_benchmark(
						b"prove_fraud_macs",
						&c,
						&[],
						false,
						1,
					)
				})
				.expect("prove_fraud_macs runs");
				results.first().expect("one result").extrinsic_time
			})
			.collect();
		times.sort_unstable();
		let (median, min) = (times[times.len() / 2], times[0]);
		println!("native prove_fraud_macs m={m}: extrinsic time median {median} ns, min {min} ns ({repeat} runs)");
		medians.push(median);
		minima.push(min);
	}
	for (what, t) in [("median", &medians), ("min", &minima)] {
		let slope = (t[1] as f64 - t[0] as f64) / f64::from(RATE_MACS[1] - RATE_MACS[0]);
		println!("native slope ({what}): {slope:.4} ns/MAC = {:.3} G MAC/s", 1.0 / slope);
	}
}
