//! Post-training quantization (see `quantize` in the README).

/// Arguments of `verity-worker quantize`.
#[derive(clap::Args, Debug, Clone)]
pub struct QuantizeArgs {
	/// The architecture file (JSON).
	#[arg(long)]
	pub arch: std::path::PathBuf,
}

pub fn run(_args: &QuantizeArgs) -> anyhow::Result<()> {
	anyhow::bail!("not implemented yet")
}
