//! Every benchmark of the four pallets runs against the mock runtime at the lowest and the
//! highest value of each component, with its verify block.

use crate::mock::*;
use frame_benchmarking::{BenchmarkParameter, Benchmarking};

fn run_all<P: Benchmarking>() {
	for meta in P::benchmarks(false) {
		let name = String::from_utf8(meta.name.clone()).unwrap();
		let mut settings: Vec<Vec<(BenchmarkParameter, u32)>> =
			vec![meta.components.iter().map(|(p, lo, _)| (*p, *lo)).collect()];
		settings.push(meta.components.iter().map(|(p, _, hi)| (*p, *hi)).collect());
		for c in settings {
			new_test_ext().execute_with(|| {
				P::run_benchmark(&meta.name, &c, &[], true, 1)
					.unwrap_or_else(|e| panic!("benchmark {name} {c:?}: {e:?}"));
			});
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
