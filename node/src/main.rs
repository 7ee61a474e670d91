//! `verity-node`: the Verity blockchain node (Aura + GRANDPA, ParityDB, off-chain workers).

#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error` (176 bytes) are Substrate's: the CLI runner and the
// service builder return them, so the node's functions and closures must too.
#![allow(clippy::result_large_err)]

mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
