//! A plain fp32 libtorch forward of an imported language model: the float model the exact one
//! is measured against (accuracy) and a speed baseline. The weights are the model file's own,
//! dequantized exactly (`d q + m` from the fp16 scales, then rounded once to f32); RMSNorm
//! weights, the rotary frequencies and the score scale are the header's fixed-point values
//! read as floats (Q16, Q32: within 2^-17 of the GGUF's floats). RoPE is GGML's "normal"
//! mode (adjacent pairs), as in the exact model. No KV cache: each call runs a whole window.

use tch::{Device, Kind, Tensor};
use verity_primitives::lm::{
	file::LmFile,
	header::WeightChunk,
	quant::{decode_block, BlockFormat},
};

struct FLayer {
	attn_norm: Tensor,
	wq: Tensor,
	wk: Tensor,
	wv: Tensor,
	wo: Tensor,
	ffn_norm: Tensor,
	gate: Tensor,
	up: Tensor,
	down: Tensor,
}

/// The fp32 model.
pub struct FloatLm {
	emb: Tensor,
	layers: Vec<FLayer>,
	out_norm: Tensor,
	n_heads: i64,
	n_kv: i64,
	hd: i64,
	eps: f64,
	scale: f64,
	inv_freq: Vec<f64>,
	device: Device,
	/// Simulated activation quantization before the matrix products (see
	/// [`FloatLm::with_activation_levels`]).
	act: Option<ActQuant>,
}

/// Which matrix products' inputs [`FloatLm`] rounds to `levels` steps per block of 32 (the
/// exact model's rule uses 127), to measure what the activations' precision costs.
#[derive(Clone, Copy, Debug)]
pub struct ActQuant {
	/// The largest |q| of a block (127: 8-bit activations).
	pub levels: f64,
	/// Q, K, V (input: the attention norm's output).
	pub qkv: bool,
	/// The output projection (input: the attention heads' outputs).
	pub wo: bool,
	/// Gate and up (input: the FFN norm's output).
	pub gate_up: bool,
	/// Down (input: the SwiGLU hidden values).
	pub down: bool,
	/// The LM head (input: the final norm's output).
	pub head: bool,
}

fn dequantize(format: BlockFormat, bytes: &[u8], k: usize) -> Option<Vec<f32>> {
	let mut out = Vec::with_capacity(bytes.len() / format.block_bytes() * 32);
	for block in bytes.chunks_exact(format.block_bytes()) {
		let b = decode_block(format, block)?;
		out.extend(b.q.iter().map(|&q| ((b.d * i64::from(q) + b.m) as f64 / 16_777_216.0) as f32));
	}
	(out.len() % k == 0).then_some(out)
}

impl FloatLm {
	/// Build the float model from a model file.
	pub fn new(file: &LmFile, device: Device) -> Option<FloatLm> {
		let h = &file.header;
		let chunk = |c: WeightChunk| -> Option<&[u8]> {
			file.chunks.get(usize::try_from(h.chunk_index(c)?).ok()?).map(|v| v.as_slice())
		};
		let matrix = |chunks: Vec<WeightChunk>, k: usize| -> Option<Tensor> {
			let mut all = Vec::new();
			for c in chunks {
				let (format, _, _) = h.chunk_matrix(c)?;
				all.extend(dequantize(format, chunk(c)?, k)?);
			}
			let rows = (all.len() / k) as i64;
			Some(Tensor::from_slice(&all).reshape([rows, k as i64]).to_device(device))
		};
		let gamma = |c: WeightChunk| -> Option<Tensor> {
			let v: Vec<f32> = chunk(c)?
				.chunks_exact(4)
				.map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 65536.0)
				.collect();
			Some(Tensor::from_slice(&v).to_device(device))
		};
		let (d, f, ad) = (h.dim as usize, h.ffn_dim as usize, h.attn_dim() as usize);
		let mut layers = Vec::new();
		for l in 0..h.n_layers {
			layers.push(FLayer {
				attn_norm: gamma(WeightChunk::AttnNorm(l))?,
				wq: matrix((0..h.n_heads).map(|i| WeightChunk::Wq(l, i)).collect(), d)?,
				wk: matrix((0..h.n_kv_heads).map(|i| WeightChunk::Wk(l, i)).collect(), d)?,
				wv: matrix((0..h.n_kv_heads).map(|i| WeightChunk::Wv(l, i)).collect(), d)?,
				wo: matrix((0..h.dim_chunks()).map(|c| WeightChunk::Wo(l, c)).collect(), ad)?,
				ffn_norm: gamma(WeightChunk::FfnNorm(l))?,
				gate: matrix((0..h.ffn_chunks()).map(|c| WeightChunk::Gate(l, c)).collect(), d)?,
				up: matrix((0..h.ffn_chunks()).map(|c| WeightChunk::Up(l, c)).collect(), d)?,
				down: matrix((0..h.dim_chunks()).map(|c| WeightChunk::Down(l, c)).collect(), f)?,
			});
		}
		Some(FloatLm {
			emb: matrix((0..h.vocab_chunks()).map(WeightChunk::Embedding).collect(), d)?,
			layers,
			out_norm: gamma(WeightChunk::OutputNorm)?,
			n_heads: i64::from(h.n_heads),
			n_kv: i64::from(h.n_kv_heads),
			hd: i64::from(h.head_dim),
			eps: f64::from(h.norm_eps) / 4_294_967_296.0,
			scale: f64::from(h.attn_scale_q16) / 65536.0,
			inv_freq: h.rope_inv_freq.iter().map(|&f| f as f64 / 4_294_967_296.0).collect(),
			device,
			act: None,
		})
	}

	/// The same model with the inputs of the chosen matrix products rounded as the exact rule
	/// does (section 12.3 of docs/MODEL_FORMAT.md: per block of 32, `q = round(levels x /
	/// amax)`, then `q amax / levels`), in floating point: what the activations' precision
	/// alone costs, without the other fixed-point rules.
	pub fn with_activation_levels(mut self, act: ActQuant) -> FloatLm {
		self.act = Some(act);
		self
	}

	/// `x` `[T, K]` (K a multiple of 32) rounded per block of 32 if `on`.
	fn quant(&self, x: &Tensor, on: impl Fn(&ActQuant) -> bool) -> Tensor {
		match self.act {
			Some(a) if on(&a) => {
				let size = x.size();
				let blocks = x.reshape([size[0], size[1] / 32, 32]);
				let amax = blocks.abs().amax(-1, true);
				let safe = amax.clamp_min(1e-30);
				let q = (&blocks * a.levels / &safe).round();
				(q * safe / a.levels).reshape(size.as_slice())
			},
			_ => x.shallow_clone(),
		}
	}

	fn rms(&self, x: &Tensor, g: &Tensor) -> Tensor {
		let ms = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
		x * (ms + self.eps).rsqrt() * g
	}

	/// Rotate adjacent pairs of `x` `[T, heads, hd]` by `position * inv_freq`.
	fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
		let (t, n) = (x.size()[0], x.size()[1]);
		let pairs = x.reshape([t, n, self.hd / 2, 2]);
		let x0 = pairs.select(3, 0);
		let x1 = pairs.select(3, 1);
		let r0 = &x0 * cos - &x1 * sin;
		let r1 = &x0 * sin + &x1 * cos;
		Tensor::stack(&[r0, r1], 3).reshape([t, n, self.hd])
	}

	/// The logits `[T, V]` after each token of `tokens` (causal attention over the window).
	pub fn logits(&self, tokens: &[u32]) -> Tensor {
		tch::no_grad(|| {
			let t = tokens.len() as i64;
			let ids: Vec<i64> = tokens.iter().map(|&v| i64::from(v)).collect();
			let ids = Tensor::from_slice(&ids).to_device(self.device);
			let mut x = self.emb.index_select(0, &ids);
			let pos = Tensor::arange(t, (Kind::Double, self.device)).unsqueeze(1);
			let freq = Tensor::from_slice(&self.inv_freq).to_device(self.device).unsqueeze(0);
			let angle = pos * freq; // [T, hd/2]
			let (cos, sin) = (
				angle.cos().to_kind(Kind::Float).unsqueeze(1),
				angle.sin().to_kind(Kind::Float).unsqueeze(1),
			);
			let mask = Tensor::ones([t, t], (Kind::Bool, self.device)).triu(1);
			let group = self.n_heads / self.n_kv;
			for l in &self.layers {
				let xn = self.quant(&self.rms(&x, &l.attn_norm), |a| a.qkv);
				let q = self.rope(
					&xn.matmul(&l.wq.tr()).reshape([t, self.n_heads, self.hd]),
					&cos,
					&sin,
				);
				let k =
					self.rope(&xn.matmul(&l.wk.tr()).reshape([t, self.n_kv, self.hd]), &cos, &sin);
				let v = xn.matmul(&l.wv.tr()).reshape([t, self.n_kv, self.hd]);
				let k = k.repeat_interleave_self_int(group, 1, None).transpose(0, 1); // [H, T, hd]
				let v = v.repeat_interleave_self_int(group, 1, None).transpose(0, 1);
				let q = q.transpose(0, 1);
				let scores = (q.matmul(&k.transpose(1, 2)) * self.scale)
					.masked_fill(&mask, f64::NEG_INFINITY);
				let att = scores.softmax(-1, Kind::Float).matmul(&v); // [H, T, hd]
				let att = att.transpose(0, 1).reshape([t, self.n_heads * self.hd]);
				x += self.quant(&att, |a| a.wo).matmul(&l.wo.tr());
				let xn = self.quant(&self.rms(&x, &l.ffn_norm), |a| a.gate_up);
				let hidden = xn.matmul(&l.gate.tr()).silu() * xn.matmul(&l.up.tr());
				x += self.quant(&hidden, |a| a.down).matmul(&l.down.tr());
			}
			self.quant(&self.rms(&x, &self.out_norm), |a| a.head).matmul(&self.emb.tr())
		})
	}

	/// Greedy generation of up to `n` tokens (stopping at an end token), recomputing the
	/// window each token.
	pub fn greedy(&self, prompt: &[u32], n: usize, eos: &[u32]) -> Vec<u32> {
		let mut tokens = prompt.to_vec();
		let mut out = Vec::new();
		for _ in 0..n {
			let logits = self.logits(&tokens);
			let next =
				logits.get(tokens.len() as i64 - 1).argmax(-1, false).int64_value(&[]) as u32;
			out.push(next);
			tokens.push(next);
			if eos.contains(&next) {
				break;
			}
		}
		out
	}
}
