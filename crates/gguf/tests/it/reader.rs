//! The container: every metadata type, alignment, tensor bounds, and clear errors.

use crate::writer::{RawTensor, gguf_bytes, s, write_gguf};
use sqlrft_gguf::{Error, GgmlType, GgufFile, Value};

#[test]
fn reads_every_metadata_type_and_tensor_infos() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.gguf");
    let metadata = vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-5)),
        ("u16", Value::U16(60000)),
        ("i16", Value::I16(-30000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f32", Value::F32(1.5)),
        ("f64", Value::F64(-2.25)),
        ("bool", Value::Bool(true)),
        ("str", s("héllo")),
        ("arr", Value::Array(vec![s("a"), s(""), s("ü")])),
        (
            "nested",
            Value::Array(vec![Value::Array(vec![Value::I32(1), Value::I32(-2)])]),
        ),
        ("general.alignment", Value::U32(64)),
    ];
    let tensors = vec![
        RawTensor::f32("a", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
        RawTensor::f32("b", &[1], &[7.]),
    ];
    std::fs::write(&path, gguf_bytes(&metadata, &tensors, 64)).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version, 3);
    for (k, v) in &metadata {
        assert_eq!(file.get(k), Some(v), "{k}");
    }
    assert_eq!(file.get("i8").unwrap().as_u64(), None);
    assert_eq!(file.get("u16").unwrap().as_f64(), Some(60000.0));
    let a = file.tensor("a").unwrap();
    assert_eq!(
        (a.dims.clone(), a.shape(), a.ggml_type),
        (vec![3, 2], vec![2, 3], GgmlType::F32)
    );
    assert_eq!(file.dequantize(a).unwrap(), [1., 2., 3., 4., 5., 6.]);
    assert_eq!(file.tensors[1].offset, 64, "second tensor aligned to 64");
    assert_eq!(file.dequantize(file.tensor("b").unwrap()).unwrap(), [7.]);
}

#[test]
fn decodes_a_q8_0_tensor_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q8.gguf");
    let mut data = Vec::new();
    for (d, base) in [(0.5f32, 0i8), (2.0, -16)] {
        data.extend(half::f16::from_f32(d).to_le_bytes());
        data.extend((0..32).map(|i| (base + i as i8) as u8));
    }
    let t = RawTensor {
        name: "w".into(),
        dims: vec![32, 2],
        ty: GgmlType::Q8_0,
        data,
    };
    write_gguf(&path, &[], &[t]);
    let file = GgufFile::open(&path).unwrap();
    let v = file.dequantize(&file.tensors[0]).unwrap();
    assert_eq!((v[0], v[31], v[32], v[63]), (0.0, 15.5, -32.0, 30.0));
}

fn open_err(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = GgufFile::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("bad.gguf"),
        "the error names the file: {text}"
    );
    text
}

#[test]
fn bad_files_get_errors_that_name_them() {
    assert!(open_err(b"PK\x03\x04 not a gguf").contains("magic"));
    let mut v1 = b"GGUF".to_vec();
    v1.extend(1u32.to_le_bytes());
    v1.extend([0; 16]);
    assert!(open_err(&v1).contains("version 1"));
    let good = gguf_bytes(
        &[("k", s("v"))],
        &[RawTensor::f32("t", &[4, 8], &[0.5; 32])],
        32,
    );
    assert!(open_err(&good[..good.len() - 4]).contains("truncated"));
    assert!(open_err(&good[..20]).contains("ends early"));
    // A tensor whose row is not a whole number of Q4_0 blocks.
    let odd = RawTensor {
        name: "odd".into(),
        dims: vec![16],
        ty: GgmlType::Q4_0,
        data: vec![0; 9],
    };
    assert!(open_err(&gguf_bytes(&[], &[odd], 32)).contains("block of 32"));
    let missing = std::path::Path::new("/nonexistent/m.gguf");
    assert!(matches!(GgufFile::open(missing), Err(Error::Read { .. })));
}
