//! Weights of code outside the Verity pallets, generated on this machine by
//! `scripts/benchmark.sh` (the Verity pallets keep theirs in `pallets/*/src/weights.rs`).

pub mod frame_system_extensions;
