//! Weights of `pallet_verity_jobs`, from `scripts/benchmark.sh` runs on two machines (below).
//!
//! Two machines (docs/PERFORMANCE.md, "Weights"): `on_initialize_finalized`,
//! `on_initialize_missed` and `prune_receipts` were measured on 2026-12-03 at their worst case (largest inputs, most servers; 12 steps, 5
//! repeats, genesis preset `development`, wasm execution `Compiled`, CPU `Intel(R) Xeon(R)
//! Processor`, about 2.2 times slower than the EPYC by minimum times, so they over-charge it);
//! `submit` and `commit`, whose code and worst case did not change, keep their 2026-11-25
//! measurement (20 steps, 10 repeats, CPU `AMD EPYC`) with the database accesses counted on
//! 2026-12-03 (`submit` writes the operator's `Assignments` entry: 6 -> 7 reads and writes;
//! `commit` reads the chain's timing: 3 -> 4 reads). Times are picoseconds of reference time;
//! proof sizes are bytes.

#![cfg_attr(rustfmt, rustfmt_skip)]
#![allow(unused_parens, unused_imports, dead_code, missing_docs)]

use core::marker::PhantomData;
use frame_support::{traits::Get, weights::{constants::ParityDbWeight, Weight}};

/// The weight of every call and hook of `pallet_verity_jobs`.
pub trait WeightInfo {
	fn submit(i: u32, s: u32, ) -> Weight;
	fn commit(o: u32, h: u32, ) -> Weight;
	fn submit_generation(p: u32, s: u32, ) -> Weight;
	fn commit_generation(n: u32, ) -> Weight;
	fn on_initialize_finalized(f: u32, ) -> Weight;
	fn on_initialize_missed(m: u32, ) -> Weight;
	fn prune_receipts(p: u32, ) -> Weight;
}

/// Weights of the runtime, with its database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	/// `i` in `[1, 16384]`.
	/// `s` in `[1, 32]`.
	fn submit(i: u32, s: u32, ) -> Weight {
		// Minimum execution time: 99_878 ns; measured proof size 570.
		Weight::from_parts(93_789_942, 19863)
			.saturating_add(Weight::from_parts(764, 0).saturating_mul(i.into()))
			.saturating_add(Weight::from_parts(4_741_645, 0).saturating_mul(s.into()))
			.saturating_add(T::DbWeight::get().reads(7_u64))
			.saturating_add(T::DbWeight::get().reads((1_u64).saturating_mul(s.into())))
			.saturating_add(T::DbWeight::get().writes(7_u64))
			.saturating_add(Weight::from_parts(0, 3398).saturating_mul(s.into()))
	}
	/// `o` in `[1, 4096]`.
	/// `h` in `[2, 65]`.
	fn commit(o: u32, h: u32, ) -> Weight {
		// Minimum execution time: 96_633 ns; measured proof size 546.
		Weight::from_parts(26_035_228, 24253)
			.saturating_add(Weight::from_parts(17_606, 0).saturating_mul(o.into()))
			.saturating_add(Weight::from_parts(2_121_148, 0).saturating_mul(h.into()))
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(3_u64))
	}
	/// `p` in `[1, 8192]`.
	/// `s` in `[1, 32]`.
	fn submit_generation(p: u32, s: u32, ) -> Weight {
		// Minimum execution time: 342_637 ns; measured proof size 648.
		Weight::from_parts(387_353_501, 19863)
			.saturating_add(Weight::from_parts(5_998, 0).saturating_mul(p.into()))
			.saturating_add(Weight::from_parts(11_321_108, 0).saturating_mul(s.into()))
			.saturating_add(T::DbWeight::get().reads(7_u64))
			.saturating_add(T::DbWeight::get().reads((1_u64).saturating_mul(s.into())))
			.saturating_add(T::DbWeight::get().writes(8_u64))
			.saturating_add(Weight::from_parts(0, 3398).saturating_mul(s.into()))
	}
	/// `n` in `[1, 1024]`.
	fn commit_generation(n: u32, ) -> Weight {
		// Minimum execution time: 72_923 ns; measured proof size 732.
		Weight::from_parts(133_378_685, 36320)
			.saturating_add(Weight::from_parts(7_896, 0).saturating_mul(n.into()))
			.saturating_add(T::DbWeight::get().reads(5_u64))
			.saturating_add(T::DbWeight::get().writes(3_u64))
	}
	fn on_initialize_finalized(f: u32, ) -> Weight {
		// Minimum execution time: 17_644 ns; measured proof size 536563.
		Weight::from_parts(20_939_457_511, 109726)
			.saturating_add(Weight::from_parts(144_844_610, 0).saturating_mul(f.into()))
			.saturating_add(T::DbWeight::get().reads(69_u64))
			.saturating_add(T::DbWeight::get().reads((1_u64).saturating_mul(f.into())))
			.saturating_add(T::DbWeight::get().writes(69_u64))
			.saturating_add(T::DbWeight::get().writes((5_u64).saturating_mul(f.into())))
			.saturating_add(Weight::from_parts(0, 23263).saturating_mul(f.into()))
	}
	/// `m` in `[0, 1024]`.
	fn on_initialize_missed(m: u32, ) -> Weight {
		// Minimum execution time: 11_292 ns; measured proof size 538445.
		Weight::from_parts(11_528_000, 109726)
			.saturating_add(Weight::from_parts(228_959_507, 0).saturating_mul(m.into()))
			.saturating_add(T::DbWeight::get().reads(102_u64))
			.saturating_add(T::DbWeight::get().reads((1_u64).saturating_mul(m.into())))
			.saturating_add(T::DbWeight::get().writes(98_u64))
			.saturating_add(T::DbWeight::get().writes((3_u64).saturating_mul(m.into())))
			.saturating_add(Weight::from_parts(0, 23263).saturating_mul(m.into()))
	}
	/// `p` in `[0, 2048]`.
	fn prune_receipts(p: u32, ) -> Weight {
		// Minimum execution time: 35_271 ns; measured proof size 9177.
		Weight::from_parts(35_663_000, 8634)
			.saturating_add(Weight::from_parts(51_060_238, 0).saturating_mul(p.into()))
			.saturating_add(T::DbWeight::get().reads(3_u64))
			.saturating_add(T::DbWeight::get().reads((2_u64).saturating_mul(p.into())))
			.saturating_add(T::DbWeight::get().writes(1_u64))
			.saturating_add(T::DbWeight::get().writes((3_u64).saturating_mul(p.into())))
			.saturating_add(Weight::from_parts(0, 6775).saturating_mul(p.into()))
	}
}

/// The same weights with ParityDB's database weights (for tests and mocks).
impl WeightInfo for () {
	fn submit(i: u32, s: u32, ) -> Weight {
		Weight::from_parts(93_789_942, 19863)
			.saturating_add(Weight::from_parts(764, 0).saturating_mul(i.into()))
			.saturating_add(Weight::from_parts(4_741_645, 0).saturating_mul(s.into()))
			.saturating_add(ParityDbWeight::get().reads(7_u64))
			.saturating_add(ParityDbWeight::get().reads((1_u64).saturating_mul(s.into())))
			.saturating_add(ParityDbWeight::get().writes(7_u64))
			.saturating_add(Weight::from_parts(0, 3398).saturating_mul(s.into()))
	}
	fn commit(o: u32, h: u32, ) -> Weight {
		Weight::from_parts(26_035_228, 24253)
			.saturating_add(Weight::from_parts(17_606, 0).saturating_mul(o.into()))
			.saturating_add(Weight::from_parts(2_121_148, 0).saturating_mul(h.into()))
			.saturating_add(ParityDbWeight::get().reads(4_u64))
			.saturating_add(ParityDbWeight::get().writes(3_u64))
	}
	fn submit_generation(p: u32, s: u32, ) -> Weight {
		Weight::from_parts(387_353_501, 19863)
			.saturating_add(Weight::from_parts(5_998, 0).saturating_mul(p.into()))
			.saturating_add(Weight::from_parts(11_321_108, 0).saturating_mul(s.into()))
			.saturating_add(ParityDbWeight::get().reads(7_u64))
			.saturating_add(ParityDbWeight::get().reads((1_u64).saturating_mul(s.into())))
			.saturating_add(ParityDbWeight::get().writes(8_u64))
			.saturating_add(Weight::from_parts(0, 3398).saturating_mul(s.into()))
	}
	fn commit_generation(n: u32, ) -> Weight {
		Weight::from_parts(133_378_685, 36320)
			.saturating_add(Weight::from_parts(7_896, 0).saturating_mul(n.into()))
			.saturating_add(ParityDbWeight::get().reads(5_u64))
			.saturating_add(ParityDbWeight::get().writes(3_u64))
	}
	fn on_initialize_finalized(f: u32, ) -> Weight {
		Weight::from_parts(20_939_457_511, 109726)
			.saturating_add(Weight::from_parts(144_844_610, 0).saturating_mul(f.into()))
			.saturating_add(ParityDbWeight::get().reads(69_u64))
			.saturating_add(ParityDbWeight::get().reads((1_u64).saturating_mul(f.into())))
			.saturating_add(ParityDbWeight::get().writes(69_u64))
			.saturating_add(ParityDbWeight::get().writes((5_u64).saturating_mul(f.into())))
			.saturating_add(Weight::from_parts(0, 23263).saturating_mul(f.into()))
	}
	fn on_initialize_missed(m: u32, ) -> Weight {
		Weight::from_parts(11_528_000, 109726)
			.saturating_add(Weight::from_parts(228_959_507, 0).saturating_mul(m.into()))
			.saturating_add(ParityDbWeight::get().reads(102_u64))
			.saturating_add(ParityDbWeight::get().reads((1_u64).saturating_mul(m.into())))
			.saturating_add(ParityDbWeight::get().writes(98_u64))
			.saturating_add(ParityDbWeight::get().writes((3_u64).saturating_mul(m.into())))
			.saturating_add(Weight::from_parts(0, 23263).saturating_mul(m.into()))
	}
	fn prune_receipts(p: u32, ) -> Weight {
		Weight::from_parts(35_663_000, 8634)
			.saturating_add(Weight::from_parts(51_060_238, 0).saturating_mul(p.into()))
			.saturating_add(ParityDbWeight::get().reads(3_u64))
			.saturating_add(ParityDbWeight::get().reads((2_u64).saturating_mul(p.into())))
			.saturating_add(ParityDbWeight::get().writes(1_u64))
			.saturating_add(ParityDbWeight::get().writes((3_u64).saturating_mul(p.into())))
			.saturating_add(Weight::from_parts(0, 6775).saturating_mul(p.into()))
	}
}
