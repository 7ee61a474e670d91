//! The parts of `verity-node` that are unit-tested as a library: verifiable receipts
//! (`verity-node receipt fetch | verify`). The node itself is tested end to end (`e2e/`).

#![warn(missing_docs)]

pub mod receipt;
