//! The GGUF container: header, metadata key/values, tensor infos and the memory-mapped tensor
//! data (format versions 2 and 3, little-endian).

use crate::error::{Error, Result};
use crate::quant::GgmlType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
/// Where tensor data starts and each tensor's offset is aligned, unless `general.alignment` says.
const DEFAULT_ALIGNMENT: u64 = 32;

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `uint8`
    U8(u8),
    /// `int8`
    I8(i8),
    /// `uint16`
    U16(u16),
    /// `int16`
    I16(i16),
    /// `uint32`
    U32(u32),
    /// `int32`
    I32(i32),
    /// `uint64`
    U64(u64),
    /// `int64`
    I64(i64),
    /// `float32`
    F32(f32),
    /// `float64`
    F64(f64),
    /// `bool`
    Bool(bool),
    /// `string` (UTF-8)
    String(String),
    /// `array` of values of one type
    Array(Vec<Value>),
}

impl Value {
    /// An integer of any width that fits `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A number of any type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array value.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Where one tensor is and what it holds.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` varies fastest (the reverse of PyTorch's shape).
    pub dims: Vec<u64>,
    /// Element encoding.
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The PyTorch / safetensors shape (row-major): the dimensions reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A GGUF file, memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Maps `path` and reads its header, metadata and tensor infos; tensor data stays on disk
    /// until asked for.
    pub fn open(path: &Path) -> Result<Self> {
        let read_err = |source| Error::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        // SAFETY: mapped read-only; the importer never writes the file, and a GGUF that another
        // process rewrites while we read it is outside what any reader can guard against.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(read_err)?;
        Self::parse(path, map)
    }

    fn parse(path: &Path, map: memmap2::Mmap) -> Result<Self> {
        let mut c = Cursor {
            bytes: &map,
            pos: 0,
            path,
        };
        let magic = c.take(4)?;
        if magic != MAGIC {
            return Err(c.malformed(format!(
                "it starts with {magic:02x?}, not the GGUF magic `GGUF`"
            )));
        }
        let version = c.u32()?;
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "the file is big-endian".into(),
                supported: "only little-endian GGUF files are read".into(),
            });
        }
        if version != 2 && version != 3 {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("GGUF version {version}"),
                supported:
                    "versions 2 and 3 are read; re-convert the model with a current llama.cpp"
                        .into(),
            });
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let value = c.value(ty)?;
            metadata.insert(key, value);
        }
        // Each tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes: bound the count before allocating.
        c.bound(n_tensors, 32, "tensor count")?;
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(c.malformed(format!(
                    "tensor `{name}` has {n_dims} dimensions (1 to 4 allowed)"
                )));
            }
            let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
            let ty = c.u32()?;
            let ggml_type = GgmlType::from_id(ty).ok_or_else(|| Error::Unsupported {
                path: path.to_path_buf(),
                what: format!(
                    "tensor `{name}` has ggml type id {ty}, which this importer does not know"
                ),
                supported: GgmlType::supported_list(),
            })?;
            let offset = c.u64()?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(
                        c.malformed(format!("general.alignment {v:?} is not a power of two"))
                    );
                }
            },
        };
        let data_start = (c.pos as u64).next_multiple_of(alignment);
        let file = Self {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_start,
            map,
        };
        for t in &file.tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(file.malformed(format!(
                    "tensor `{}` starts at offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            file.tensor_bytes(t)?;
        }
        Ok(file)
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A tensor info by GGUF name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The encoded bytes of `info`, checked against the file's length and the type's block size.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let ty = info.ggml_type;
        let elements = info.elements();
        let row = info.dims[0];
        if !row.is_multiple_of(ty.block_elements() as u64) {
            return Err(self.malformed(format!(
                "tensor `{}` has rows of {row} elements, not a multiple of {:?}'s block of {}",
                info.name,
                ty,
                ty.block_elements()
            )));
        }
        let len = elements
            .checked_mul(ty.block_bytes() as u64)
            .map(|b| b / ty.block_elements() as u64);
        let start = self.data_start.checked_add(info.offset);
        match (start, len) {
            (Some(start), Some(len)) if start.checked_add(len).is_some_and(|end| end <= self.map.len() as u64) => {
                Ok(&self.map[start as usize..(start + len) as usize])
            }
            _ => Err(self.malformed(format!(
                "tensor `{}` ({:?}, dims {:?}) runs past the end of the file ({} bytes); the file may be truncated",
                info.name,
                ty,
                info.dims,
                self.map.len()
            ))),
        }
    }

    /// Decodes tensor `info` to f32 (its elements in GGUF order, which is PyTorch row-major order).
    pub fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        let bytes = self.tensor_bytes(info)?;
        let mut out = vec![0.0f32; info.elements() as usize];
        info.ggml_type.dequantize(bytes, &mut out);
        Ok(out)
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Malformed {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Reads little-endian values off the front of the file, naming the offset when it runs out.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, reason: String) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
        {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.malformed(format!(
                "the header ends early: {n} bytes wanted at offset {} of {}",
                self.pos,
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Fails when `count` items of at least `min_size` bytes cannot fit in what is left.
    fn bound(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        let left = (self.bytes.len() - self.pos) as u64;
        if count.saturating_mul(min_size) > left {
            return Err(self.malformed(format!(
                "{what} {count} at offset {} cannot fit in the {left} bytes left",
                self.pos
            )));
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        self.bound(len, 1, "string length")?;
        let at = self.pos;
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(format!("the string at offset {at} is not UTF-8")))
    }

    fn value(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(u8::from_le_bytes(self.array()?)),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(self.malformed(format!("bool byte {b} at offset {}", self.pos - 1)));
                }
            },
            8 => Value::String(self.string()?),
            9 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                self.bound(n, 1, "array length")?;
                let items = (0..n)
                    .map(|_| self.value(elem))
                    .collect::<Result<Vec<_>>>()?;
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => {
                return Err(self.malformed(format!(
                    "unknown metadata value type {other} before offset {}",
                    self.pos
                )));
            }
        })
    }
}
