//! Transparent huge pages for the worker's heap.
//!
//! Decoding streams the packed weights (~114 MB for SmolLM2) and the KV cache once per token;
//! with 4 KiB pages that is ~30,000 pages a token, each a TLB miss and, in a virtual machine, a
//! two-level page walk. glibc backs its heaps with transparent huge pages when the tunable
//! `glibc.malloc.hugetlb=1` is set (where the kernel's THP mode is `madvise` or `always`; a
//! no-op where it is `never`). Measured on SmolLM2 (docs/PERFORMANCE.md, session 27): decode at
//! context 1,024 from 40-52 to 55-59 tokens/s, with the run-to-run spread gone.
//!
//! glibc reads its tunables once, at process start, so [`reexec_with_huge_pages`] re-executes
//! the program (same pid, arguments, descriptors) with the tunable added, and with
//! [`REEXECUTED`] set so that it never does so twice (glibc rewrites `GLIBC_TUNABLES` as it
//! parses it, so the variable alone is no safe guard). A `GLIBC_TUNABLES` that already names
//! `glibc.malloc.hugetlb` (for example `=0`, to turn this off) is left alone.

/// The tunable added to `GLIBC_TUNABLES`.
pub const TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// Set in the re-executed program's environment.
pub const REEXECUTED: &str = "VERITY_THP_REEXECUTED";

/// Re-executes this program with [`TUNABLE`] in `GLIBC_TUNABLES`, unless it is already there
/// (or another `glibc.malloc.hugetlb` value is) or this is the re-executed program. Returns
/// only if nothing was done or `exec` failed (then the program goes on with 4 KiB pages). Call
/// it first in `main`.
pub fn reexec_with_huge_pages() {
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	{
		use std::os::unix::process::CommandExt;
		let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
		if current.contains("glibc.malloc.hugetlb") || std::env::var_os(REEXECUTED).is_some() {
			return;
		}
		let Ok(exe) = std::env::current_exe() else { return };
		let value =
			if current.is_empty() { TUNABLE.to_string() } else { format!("{current}:{TUNABLE}") };
		let mut args = std::env::args_os();
		let mut command = std::process::Command::new(exe);
		if let Some(arg0) = args.next() {
			command.arg0(arg0);
		}
		// `exec` returns only on failure.
		let _ = command.args(args).env("GLIBC_TUNABLES", value).env(REEXECUTED, "1").exec();
	}
}
