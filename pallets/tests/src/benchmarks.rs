//! Every benchmark of the four pallets runs against the mock runtime at the lowest and the
//! highest value of each component, with its verify block.
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
	let metas = P::benchmarks(false);
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
