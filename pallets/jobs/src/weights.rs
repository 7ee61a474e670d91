//! Weights for `pallet_verity_jobs` (stand-ins, replaced by `scripts/benchmark.sh`).

#![cfg_attr(rustfmt, rustfmt_skip)]
#![allow(unused_parens)]
#![allow(unused_imports)]
#![allow(missing_docs)]

use frame_support::{traits::Get, weights::{Weight, constants::RocksDbWeight}};
use core::marker::PhantomData;

/// Weight functions needed for `pallet_verity_jobs`.
pub trait WeightInfo {
	fn submit(i: u32, s: u32, ) -> Weight;
	fn commit(o: u32, h: u32, ) -> Weight;
	fn on_initialize(f: u32, m: u32, ) -> Weight;
}

/// Weights for `pallet_verity_jobs`.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
	fn submit(i: u32, s: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(i.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(s.into()))
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(4_u64))
	}
	fn commit(o: u32, h: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(o.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(h.into()))
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(4_u64))
	}
	fn on_initialize(f: u32, m: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(f.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(m.into()))
			.saturating_add(T::DbWeight::get().reads(4_u64))
			.saturating_add(T::DbWeight::get().writes(4_u64))
	}
}

// For backwards compatibility and tests.
impl WeightInfo for () {
	fn submit(i: u32, s: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(i.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(s.into()))
			.saturating_add(RocksDbWeight::get().reads(4_u64))
			.saturating_add(RocksDbWeight::get().writes(4_u64))
	}
	fn commit(o: u32, h: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(o.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(h.into()))
			.saturating_add(RocksDbWeight::get().reads(4_u64))
			.saturating_add(RocksDbWeight::get().writes(4_u64))
	}
	fn on_initialize(f: u32, m: u32, ) -> Weight {
		Weight::from_parts(60_000_000, 8_000)
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(f.into()))
			.saturating_add(Weight::from_parts(100_000, 64).saturating_mul(m.into()))
			.saturating_add(RocksDbWeight::get().reads(4_u64))
			.saturating_add(RocksDbWeight::get().writes(4_u64))
	}
}
