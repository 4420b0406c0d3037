//! ggml's element encodings and their decoding to f32, written from the block layouts of
//! ggml's `ggml-common.h`: a block holds a fixed number of elements, scales first (or last, for
//! Q6_K), then packed quants. Each decoder is tested against hand-built blocks.

use half::{bf16, f16};

/// Elements in one super-block of the K-quants.
const QK_K: usize = 256;

/// A tensor element encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the names llama.cpp and every GGUF tool print
pub enum GgmlType {
    /// IEEE single.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 32 elements: f16 scale, 4-bit quants offset by 8.
    Q4_0,
    /// 32 elements: f16 scale and minimum, 4-bit quants.
    Q4_1,
    /// 32 elements: f16 scale, 5-bit quants offset by 16.
    Q5_0,
    /// 32 elements: f16 scale and minimum, 5-bit quants.
    Q5_1,
    /// 32 elements: f16 scale, 8-bit quants.
    Q8_0,
    /// 256 elements: 16 sub-blocks with 4-bit scales and minimums, 2-bit quants.
    Q2_K,
    /// 256 elements: 16 sub-blocks with 6-bit scales, 3-bit quants.
    Q3_K,
    /// 256 elements: 8 sub-blocks with 6-bit scales and minimums, 4-bit quants.
    Q4_K,
    /// 256 elements: 8 sub-blocks with 6-bit scales and minimums, 5-bit quants.
    Q5_K,
    /// 256 elements: 16 sub-blocks with 8-bit scales, 6-bit quants.
    Q6_K,
}

impl GgmlType {
    const ALL: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// ggml's numeric id, as stored in a GGUF tensor info.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The type with ggml id `id`, when this crate decodes it.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// "F32, F16, …" for error messages.
    pub(crate) fn supported_list() -> String {
        let names: Vec<String> = Self::ALL.iter().map(|t| format!("{t:?}")).collect();
        format!(
            "tensor types {} are supported; re-quantize the model to one of them",
            names.join(", ")
        )
    }

    /// Elements per block.
    pub fn block_elements(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                QK_K
            }
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 2 + 16,
            GgmlType::Q4_1 => 2 + 2 + 16,
            GgmlType::Q5_0 => 2 + 4 + 16,
            GgmlType::Q5_1 => 2 + 2 + 4 + 16,
            GgmlType::Q8_0 => 2 + 32,
            GgmlType::Q2_K => QK_K / 16 + QK_K / 4 + 2 + 2,
            GgmlType::Q3_K => QK_K / 8 + QK_K / 4 + 12 + 2,
            GgmlType::Q4_K => 2 + 2 + 12 + QK_K / 2,
            GgmlType::Q5_K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
            GgmlType::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
        }
    }

    /// Decodes `bytes` (whole blocks) into `out` (`bytes.len() / block_bytes * block_elements`
    /// values).
    ///
    /// # Panics
    /// When the lengths disagree; [`crate::GgufFile::tensor_bytes`] checks them first.
    pub fn dequantize(self, bytes: &[u8], out: &mut [f32]) {
        let (be, bb) = (self.block_elements(), self.block_bytes());
        assert!(
            bytes.len().is_multiple_of(bb) && bytes.len() / bb * be == out.len(),
            "{self:?}: {} bytes cannot decode to {} values",
            bytes.len(),
            out.len()
        );
        let decode: fn(&[u8], &mut [f32]) = match self {
            GgmlType::F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => |b, y| y[0] = f16_at(b, 0),
            GgmlType::BF16 => |b, y| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q4_0 => q4_0,
            GgmlType::Q4_1 => q4_1,
            GgmlType::Q5_0 => q5_0,
            GgmlType::Q5_1 => q5_1,
            GgmlType::Q8_0 => q8_0,
            GgmlType::Q2_K => q2_k,
            GgmlType::Q3_K => q3_k,
            GgmlType::Q4_K => q4_k,
            GgmlType::Q5_K => q5_k,
            GgmlType::Q6_K => q6_k,
        };
        for (block, y) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(be)) {
            decode(block, y);
        }
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Low nibbles are elements 0..16, high nibbles 16..32.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// Bit `j` of the 32-bit `qh` is the fifth bit of element `j`.
fn fifth_bits(qh: &[u8]) -> u32 {
    u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]])
}

fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = fifth_bits(&b[2..6]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let lo = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = (lo as i32 - 16) as f32 * d;
        y[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = fifth_bits(&b[4..8]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let lo = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = lo as f32 * d + m;
        y[j + 16] = hi as f32 * d + m;
    }
}

fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = q as i8 as f32 * d;
    }
}

/// 16 sub-blocks of 16; `scales[i]`: low nibble scale, high nibble minimum. The 2-bit quants
/// of each 128 elements come from 32 bytes, four shifts deep.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0xF) as f32, dmin * (sc >> 4) as f32);
                let base = half * 128 + shift / 2 * 32 + part * 16;
                for l in 0..16 {
                    y[base + l] = dl * ((q[part * 16 + l] >> shift) & 3) as f32 - ml;
                }
            }
        }
    }
}

/// 6-bit scales (offset 32) packed into 12 bytes: the low 4 bits of scale `i` are the low
/// nibbles of bytes 0..8 for `i < 8`, else their high nibbles; the top 2 bits are bits
/// `2 * (i / 4)` and up of byte `8 + i % 4`.
fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 {
            packed[i] & 0xF
        } else {
            packed[i - 8] >> 4
        };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low | high << 4) as i8 - 32;
    }
    out
}

/// 16 sub-blocks of 16: 2 low bits from `qs` (as Q2_K), the third bit from `hmask` (set means
/// no −4), times a 6-bit signed scale.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let scales = q3_k_scales(&b[96..108]);
    let d = f16_at(b, 108);
    let mut is = 0;
    let mut bit = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                let base = half * 128 + shift / 2 * 32 + part * 16;
                for l in 0..16 {
                    let k = part * 16 + l;
                    let low = ((q[k] >> shift) & 3) as i32;
                    let minus = if hmask[k] & (1 << bit) != 0 { 0 } else { 4 };
                    y[base + l] = dl * (low - minus) as f32;
                }
            }
            bit += 1;
        }
    }
}

/// Scale and minimum of sub-block `j` (0..8) of the K-quants' 12 packed bytes: 6 bits each;
/// sub-blocks 0..4 sit in the low 6 bits of bytes 0..4 (scales) and 4..8 (minimums), 4..8 take
/// their low 4 bits from bytes 8..12 and their top 2 bits from the top of bytes 0..8.
fn k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// 8 sub-blocks of 32: each 64 elements take 32 bytes, low nibbles then high nibbles.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        for (nibble, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = k_scale_min(chunk * 2 + nibble, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let base = chunk * 64 + nibble * 32;
            for l in 0..32 {
                y[base + l] = dl * ((q[l] >> shift) & 0xF) as f32 - ml;
            }
        }
    }
}

/// As Q4_K, with a fifth bit for sub-block `j` in bit `j` of `qh[l]`.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        for (nibble, shift) in [(0, 0), (1, 4)] {
            let j = chunk * 2 + nibble;
            let (sc, m) = k_scale_min(j, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let base = chunk * 64 + nibble * 32;
            for l in 0..32 {
                let high = ((qh[l] >> j) & 1) << 4;
                y[base + l] = dl * (((q[l] >> shift) & 0xF) | high) as f32 - ml;
            }
        }
    }
}

/// 16 sub-blocks of 16 with signed 8-bit scales; each 128 elements take 64 bytes of low
/// nibbles (`ql`) and 32 bytes of high 2-bit pairs (`qh`), offset by 32.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for half in 0..2 {
        let (ql, qh) = (
            &ql[half * 64..half * 64 + 64],
            &qh[half * 32..half * 32 + 32],
        );
        let sc = &scales[half * 8..half * 8 + 8];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0xF) | (qh[l] & 3) << 4,
                (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4,
                (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4,
                (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4,
            ];
            for (k, q) in q.into_iter().enumerate() {
                y[half * 128 + k * 32 + l] =
                    d * (sc[is + 2 * k] as i8) as f32 * (q as i32 - 32) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each block is packed here element by element from the layout (where element `e`'s bits
    //! live), independently of the decoders' loops, from chosen quants and scales; the expected
    //! value is the format's formula on those chosen numbers.
    use super::*;

    fn h(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    fn decode(ty: GgmlType, block: &[u8]) -> Vec<f32> {
        assert_eq!(block.len(), ty.block_bytes(), "{ty:?} block size");
        let mut out = vec![f32::NAN; ty.block_elements()];
        ty.dequantize(block, &mut out);
        out
    }

    fn assert_values(ty: GgmlType, got: &[f32], want: impl Fn(usize) -> f32) {
        for (e, g) in got.iter().enumerate() {
            assert_eq!(*g, want(e), "{ty:?} element {e}");
        }
    }

    /// Quants 0..16 cycling with a stride, so neighbours differ.
    fn q4(e: usize) -> u8 {
        ((e * 7 + 3) % 16) as u8
    }

    /// Packs 32 four-bit quants: element e < 16 in the low nibble of byte e, else the high nibble
    /// of byte e - 16.
    fn pack_nibbles_32(q: impl Fn(usize) -> u8) -> [u8; 16] {
        let mut b = [0u8; 16];
        for e in 0..32 {
            b[e % 16] |= (q(e) & 0xF) << (4 * (e / 16));
        }
        b
    }

    #[test]
    fn float_types_decode_bit_for_bit() {
        let mut bytes = Vec::new();
        for v in [1.5f32, -0.0, 3.25e-3, f32::MAX] {
            bytes.extend(v.to_le_bytes());
        }
        let mut out = [0.0; 4];
        GgmlType::F32.dequantize(&bytes, &mut out);
        assert_eq!(out, [1.5, -0.0, 3.25e-3, f32::MAX]);
        let mut out = [0.0; 3];
        GgmlType::F16.dequantize(&[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38], &mut out);
        assert_eq!(out, [1.0, -2.0, 0.5]);
        // bf16 is the top half of an f32: 0x3FC0 → 1.5, 0xC040 → -3.0.
        GgmlType::BF16.dequantize(&[0xC0, 0x3F, 0x40, 0xC0, 0x80, 0x3F], &mut out);
        assert_eq!(out, [1.5, -3.0, 1.0]);
    }

    #[test]
    fn q4_0_is_scale_times_quant_minus_8() {
        let mut block = h(0.5).to_vec();
        block.extend(pack_nibbles_32(q4));
        let got = decode(GgmlType::Q4_0, &block);
        assert_eq!(got[0], -2.5); // quant 3
        assert_values(GgmlType::Q4_0, &got, |e| (q4(e) as f32 - 8.0) * 0.5);
    }

    #[test]
    fn q4_1_is_scale_times_quant_plus_min() {
        let mut block = h(0.25).to_vec();
        block.extend(h(-2.0));
        block.extend(pack_nibbles_32(q4));
        let got = decode(GgmlType::Q4_1, &block);
        assert_eq!(got[1], 0.5); // quant 10
        assert_values(GgmlType::Q4_1, &got, |e| q4(e) as f32 * 0.25 - 2.0);
    }

    fn q5(e: usize) -> u8 {
        ((e * 11 + 5) % 32) as u8
    }

    /// Bit e of the little-endian u32 is element e's fifth bit.
    fn fifth_bit_word(q: impl Fn(usize) -> u8) -> [u8; 4] {
        let mut w = 0u32;
        for e in 0..32 {
            w |= ((q(e) >> 4) as u32 & 1) << e;
        }
        w.to_le_bytes()
    }

    #[test]
    fn q5_0_takes_the_fifth_bit_from_qh() {
        let mut block = h(2.0).to_vec();
        block.extend(fifth_bit_word(q5));
        block.extend(pack_nibbles_32(q5));
        let got = decode(GgmlType::Q5_0, &block);
        assert_eq!(got[2], 2.0 * (27.0 - 16.0));
        assert_values(GgmlType::Q5_0, &got, |e| (q5(e) as f32 - 16.0) * 2.0);
    }

    #[test]
    fn q5_1_takes_the_fifth_bit_from_qh() {
        let mut block = h(0.125).to_vec();
        block.extend(h(1.0));
        block.extend(fifth_bit_word(q5));
        block.extend(pack_nibbles_32(q5));
        let got = decode(GgmlType::Q5_1, &block);
        assert_values(GgmlType::Q5_1, &got, |e| q5(e) as f32 * 0.125 + 1.0);
    }

    #[test]
    fn q8_0_is_scale_times_signed_byte() {
        let q = |e: usize| (e as i32 * 9 - 128) as i8;
        let mut block = h(0.5).to_vec();
        block.extend((0..32).map(|e| q(e) as u8));
        let got = decode(GgmlType::Q8_0, &block);
        assert_eq!(got[0], -64.0);
        assert_values(GgmlType::Q8_0, &got, |e| q(e) as f32 * 0.5);
    }

    /// Packs 8 six-bit (scale, min) pairs into the K-quants' 12 bytes: pair j < 4 in the low
    /// 6 bits of bytes j and j + 4; pair j ≥ 4 with its low 4 bits in byte j + 4 (scale low
    /// nibble, min high nibble) and its top 2 bits in the top of bytes j - 4 (scale) and j (min).
    fn pack_k_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
        let mut b = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                b[j] |= sc[j];
                b[j + 4] |= m[j];
            } else {
                b[j + 4] |= (sc[j] & 0xF) | (m[j] & 0xF) << 4;
                b[j - 4] |= (sc[j] >> 4) << 6;
                b[j] |= (m[j] >> 4) << 6;
            }
        }
        b
    }

    const K_SC: [u8; 8] = [1, 63, 17, 32, 5, 48, 33, 62];
    const K_MIN: [u8; 8] = [0, 2, 63, 40, 19, 7, 60, 33];

    /// Element e of a Q4_K/Q5_K block: 64-element chunk c = e / 64 uses bytes 32c..32c+32, the
    /// low nibbles for its first 32 elements and the high nibbles for the next 32.
    fn pack_k_nibbles(q: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        for e in 0..256 {
            let (chunk, r) = (e / 64, e % 64);
            b[chunk * 32 + r % 32] |= (q(e) & 0xF) << (4 * (r / 32));
        }
        b
    }

    #[test]
    fn q4_k_uses_six_bit_scales_and_minimums_per_32() {
        let mut block = h(0.5).to_vec();
        block.extend(h(0.25));
        block.extend(pack_k_scales(K_SC, K_MIN));
        block.extend(pack_k_nibbles(q4));
        let got = decode(GgmlType::Q4_K, &block);
        assert_eq!(got[32], 0.5 * 63.0 * q4(32) as f32 - 0.25 * 2.0);
        assert_values(GgmlType::Q4_K, &got, |e| {
            0.5 * K_SC[e / 32] as f32 * q4(e) as f32 - 0.25 * K_MIN[e / 32] as f32
        });
    }

    #[test]
    fn q5_k_adds_a_fifth_bit_per_sub_block() {
        let mut block = h(0.5).to_vec();
        block.extend(h(0.25));
        block.extend(pack_k_scales(K_SC, K_MIN));
        // qh[l] bit j is the fifth bit of element 32 j + l.
        let mut qh = [0u8; 32];
        for e in 0..256 {
            qh[e % 32] |= ((q5(e) >> 4) & 1) << (e / 32);
        }
        block.extend(qh);
        block.extend(pack_k_nibbles(q5));
        let got = decode(GgmlType::Q5_K, &block);
        assert_values(GgmlType::Q5_K, &got, |e| {
            0.5 * K_SC[e / 32] as f32 * q5(e) as f32 - 0.25 * K_MIN[e / 32] as f32
        });
    }

    #[test]
    fn q6_k_uses_signed_scales_per_16_and_six_bit_quants() {
        let q = |e: usize| ((e * 13 + 7) % 64) as u8;
        let scales: [i8; 16] = [
            1, -2, 3, -4, 127, -128, 7, 0, 9, -10, 11, 12, -13, 14, 15, -16,
        ];
        let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
        // Element e: half n = e / 128, quarter k = (e % 128) / 32, l = e % 32; low 4 bits in
        // ql[64n + l + 32 (k % 2)] (nibble k / 2), top 2 bits in qh[32n + l] at bit 2k.
        for e in 0..256 {
            let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
            ql[64 * n + l + 32 * (k % 2)] |= (q(e) & 0xF) << (4 * (k / 2));
            qh[32 * n + l] |= (q(e) >> 4) << (2 * k);
        }
        let mut block = ql.to_vec();
        block.extend(qh);
        block.extend(scales.map(|s| s as u8));
        block.extend(h(0.5));
        let got = decode(GgmlType::Q6_K, &block);
        assert_eq!(got[0], 0.5 * (7.0 - 32.0));
        assert_values(GgmlType::Q6_K, &got, |e| {
            0.5 * scales[e / 16] as f32 * (q(e) as f32 - 32.0)
        });
    }

    /// Element e of Q2_K/Q3_K: half n = e / 128, group g = (e % 128) / 32 (bit shift 2g),
    /// l = e % 32: byte 32n + l of qs.
    fn pack_2bit(q: impl Fn(usize) -> u8) -> [u8; 64] {
        let mut b = [0u8; 64];
        for e in 0..256 {
            let (n, g, l) = (e / 128, (e % 128) / 32, e % 32);
            b[32 * n + l] |= (q(e) & 3) << (2 * g);
        }
        b
    }

    #[test]
    fn q2_k_uses_four_bit_scales_and_minimums_per_16() {
        let q = |e: usize| ((e * 5 + 1) % 4) as u8;
        let sc: [u8; 16] = std::array::from_fn(|i| ((i * 7 + 2) % 16) as u8);
        let m: [u8; 16] = std::array::from_fn(|i| ((i * 3 + 15) % 16) as u8);
        let mut block: Vec<u8> = (0..16).map(|i| sc[i] | m[i] << 4).collect();
        block.extend(pack_2bit(q));
        block.extend(h(0.5));
        block.extend(h(0.125));
        let got = decode(GgmlType::Q2_K, &block);
        assert_eq!(got[0], 0.5 * 2.0 * 1.0 - 0.125 * 15.0);
        assert_values(GgmlType::Q2_K, &got, |e| {
            0.5 * sc[e / 16] as f32 * q(e) as f32 - 0.125 * m[e / 16] as f32
        });
    }

    #[test]
    fn q3_k_uses_signed_six_bit_scales_and_a_high_bit_mask() {
        // Signed 3-bit quants -4..=3: low 2 bits in qs, the third bit set in hmask when the
        // quant is ≥ 0 (a clear bit subtracts 4).
        let q = |e: usize| ((e * 3 + 2) % 8) as i32 - 4;
        let scales: [i32; 16] = std::array::from_fn(|i| (i as i32 * 9 + 5) % 64 - 32);
        let mut hmask = [0u8; 32];
        for e in 0..256 {
            if q(e) >= 0 {
                hmask[e % 32] |= 1 << (e / 32);
            }
        }
        // Scale i (as 6 unsigned bits s + 32): low 4 bits in byte i (i < 8, low nibble) or
        // byte i - 8 (high nibble); top 2 bits in byte 8 + i % 4 at bit 2 (i / 4).
        let mut packed = [0u8; 12];
        for (i, s) in scales.iter().enumerate() {
            let u = (s + 32) as u8;
            packed[i % 8] |= (u & 0xF) << (4 * (i / 8));
            packed[8 + i % 4] |= (u >> 4) << (2 * (i / 4));
        }
        let mut block = hmask.to_vec();
        block.extend(pack_2bit(|e| (q(e) & 3) as u8));
        block.extend(packed);
        block.extend(h(0.25));
        let got = decode(GgmlType::Q3_K, &block);
        assert_eq!(got[0], 0.25 * -27.0 * -2.0);
        assert_values(GgmlType::Q3_K, &got, |e| {
            0.25 * scales[e / 16] as f32 * q(e) as f32
        });
    }

    #[test]
    fn type_ids_round_trip_and_unknown_ids_are_refused() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::from_id(16), None); // IQ2_XXS
    }
}
