//! The parts of `verity-node` that are unit-tested as a library: verifiable receipts
//! (`verity-node receipt fetch | verify`) and the chain specifications they are checked
//! against. The node itself is tested end to end (`e2e/`).

#![warn(missing_docs)]

pub mod chain_spec;
pub mod receipt;
