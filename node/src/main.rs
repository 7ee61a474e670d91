//! `verity-node`: the Verity blockchain node (Aura + GRANDPA, ParityDB, off-chain workers).

#![warn(missing_docs)]

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
