//! # verity-primitives
//!
//! What a Verity model *means*: the model format, the exact integer reference interpreter,
//! the trace commitments and the fraud-proof check. The runtime, the inference worker and any
//! third-party backend use this crate (or re-implement it bit for bit from
//! `docs/MODEL_FORMAT.md`). `no_std` + `alloc`; no floats in execution; no `unsafe`.
//!
//! ## Model = header (on-chain) + weights (off-chain)
//!
//! * The [`ModelHeader`] holds the input [`TensorSpec`] and the ordered [`Op`]s. Everything
//!   that is small and decides validity lives here: op kinds and parameters, input references,
//!   output specs, clamps, int32 biases, per-channel requantization, and for each op the
//!   blake2-256 hash and length of its weight bytes. [`model_id`] = `blake2_256(SCALE(header))`.
//! * The weight bytes of an op are only int8 kernels (FullyConnected `[N][K]`, Conv2d
//!   `[C_out][C_in/groups][kh][kw]`) or the 256-byte table of Lookup. **Any byte string of the
//!   declared length is a valid weight blob**, so validity is decided from the header alone,
//!   on-chain, at registration: a header that [`validate()`]s can always be executed.
//! * Tensors are int8 (stored as bytes), row-major, channel-major images `[C, H, W]`, vectors
//!   `[K]`; **no batch dimension**. Tensor 0 is the model input; op `i` (1-based) produces
//!   tensor `i` and may only read tensors `< i`.
//! * A [`ModelFile`] is `magic ‖ version ‖ header length ‖ header ‖ weights of op 1..n`;
//!   [`ModelFile::verify`] checks the id and every weight hash.
//! * Decoding untrusted bytes ([`decode_header`], [`decode_canonical`], [`ModelFile::decode`])
//!   never panics, bounds size and nesting, rejects trailing bytes and non-canonical encodings.
//!
//! ## Arithmetic (see [`arith`])
//!
//! FullyConnected and Conv2d accumulate `bias + Σ (x − z_x)·w` exactly in i32; validation
//! proves `|bias| + K·255·128 ≤ i32::MAX` (worst case over all inputs and weights). The
//! accumulator is requantized by a per-channel Q31 multiplier and shift with the gemmlowp/TFLite
//! rule ([`arith::multiply_by_quantized_multiplier`]: saturating left shift for positive shifts,
//! `SaturatingRoundingDoublingHighMul` (ties toward +∞), `RoundingDivideByPOT` (ties away from
//! zero)), the output zero point is added, and every op ends with the clamp
//! `[act_min, act_max]` (ReLU and ReLU6 are clamps). Add follows TFLite's int8 add; pools,
//! reshape and concat keep the input zero point; average pools round half away from zero;
//! Lookup maps `x` to `table[x + 128]`.
//!
//! ## Validation and limits (see [`validate()`](validate::validate))
//!
//! [`validate()`] checks shapes, backward references, parameter ranges, weight lengths, the
//! accumulator bound and the caller's [`Limits`] (ops, tensor elements, inputs per op, bytes of
//! one step's fraud proof, multiply-accumulates of one step) and returns a [`ModelInfo`] with
//! per-step sizes and costs, or a [`ValidationError`] naming the op and a typed reason.
//!
//! ## Commitments (see [`commit`])
//!
//! `h_i = blake2_256(b"verity/step/v1" ‖ u32_le(i) ‖ SCALE(shape) ‖ tensor bytes)`, `h_0`
//! over the input. The trace root is a binary blake2-256 Merkle tree over `[h_0..h_n]`
//! (leaf `H(0x00‖h)`, node `H(0x01‖l‖r)`, odd last node promoted), with [`MerkleProof`]s.
//!
//! ## Fraud proofs (see [`fraud`])
//!
//! [`check_fraud_proof`] binds the proof's input tensors to the operator's committed hashes and
//! its weights to the header, re-executes the single step with [`execute_step`] and returns
//! [`Verdict::Fraud`] iff the recomputed hash differs from the committed `h_step`.
//! [`find_fraud`] finds the first wrong step of a commitment and builds its proof.
//!
//! ## Language models (see [`lm`])
//!
//! Decoder-only transformers of the Llama family as exact integer programs: GGUF block
//! weights (Q8_0, Q4_0, Q4_1) used without re-quantization, Q16 activations, integer RMSNorm,
//! RoPE, blocked attention, SiLU-gated FFN and seeded sampling; a header whose id commits to
//! the tokenizer and chat template; a generation trace of `(position, op)` steps with a root
//! per position; and one-step proofs whose inputs (KV entries of earlier positions included)
//! and weight chunks carry inclusion proofs. `docs/MODEL_FORMAT.md` section 12.
//!
//! ## Test support
//!
//! The `testing` feature adds [`testing`]: a deterministic PRNG, a generator of random valid
//! models (every op kind and parameter edge), random tiny transformers ([`testing::lm`]) and the
//! golden models of `testdata/`.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
	not(test),
	deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod arith;
pub mod commit;
pub mod file;
pub mod fraud;
pub mod interp;
pub mod lm;
pub mod model;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use commit::{merkle_proof, step_hash, tensor_hash, trace_root, verify_inclusion, MerkleProof};
pub use file::{decode_canonical, decode_header, DecodeError, FileError, ModelFile};
pub use fraud::{
	build_fraud_proof, check_fraud_proof, find_fraud, first_mismatch, FindFraudError, FraudProof,
	ProofError, Verdict,
};
pub use interp::{execute, execute_step, ExecError, OpError, Trace};
pub use model::{
	model_id, weight_hash, AddParams, Conv2dParams, Hash, ModelHeader, ModelId, Op, OpKind,
	PoolParams, Requant, TensorSpec, EMPTY_WEIGHT_HASH, HEADER_VERSION,
};
pub use validate::{
	step_info, step_macs, step_proof_bytes, validate, validate_step, InvalidReason,
	InvalidReasonCode, Limits, ModelInfo, StepInfo, ValidationError,
};

/// A length or count as `u32`, saturating at `u32::MAX`. Every length the chain sees is
/// bounded far below `u32::MAX`, so saturation only makes an oversized input fail its bound
/// check (or be charged the maximum weight) instead of wrapping.
pub fn len_u32(n: usize) -> u32 {
	u32::try_from(n).unwrap_or(u32::MAX)
}
