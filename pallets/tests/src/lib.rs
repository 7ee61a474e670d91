//! Tests of the Verity pallets against a mock runtime: every call's happy path and errors
//! (with state unchanged on error), whole job lifecycles, a property test over random call
//! sequences, the agent's off-chain worker against a mocked inference worker and pool, and
//! (with `--features runtime-benchmarks`) every benchmark.

pub mod mock;

#[cfg(test)]
mod agent;
#[cfg(test)]
mod attacks;
#[cfg(all(test, feature = "runtime-benchmarks"))]
mod benchmarks;
#[cfg(test)]
mod disputes;
#[cfg(test)]
mod generation;
#[cfg(test)]
mod jobs;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod models;
#[cfg(test)]
mod operators;
#[cfg(test)]
mod properties;
