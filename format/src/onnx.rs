//! The metadata of an ONNX model (`ModelProto.metadata_props`), read without
//! ONNX Runtime or a protobuf library: the element reads it to validate a model
//! before loading it, and to choose among the models of a directory.
//!
//! ModelProto field 14 is `repeated StringStringEntryProto metadata_props`, whose
//! fields are 1 = key and 2 = value. Everything else (the graph with its weights)
//! is skipped with a seek, so reading the metadata of a large model costs a few
//! small reads. Every length is checked against the bytes that remain, so a
//! crafted or truncated file gives an error, never a panic or a large allocation.
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

/// Why the metadata of a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not a protobuf ModelProto: garbage, truncation, a missing graph.
    #[error("{0}")]
    Corrupt(String),
}

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

/// Longest metadata entry read (a grammar or vocabulary is a few kB).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

fn corrupt(m: impl Into<String>) -> OnnxError {
    OnnxError::Corrupt(m.into())
}

/// A protobuf varint; None at a clean end of input.
fn read_varint<R: Read>(r: &mut R) -> Result<Option<u64>, OnnxError> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        if r.read(&mut byte)? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(corrupt("truncated varint"))
            };
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

/// The length of a length-delimited field, checked against the bytes left.
fn read_len<R: Read + Seek>(r: &mut R, end: u64) -> Result<u64, OnnxError> {
    let len = read_varint(r)?.ok_or_else(|| corrupt("truncated length"))?;
    let pos = r.stream_position()?;
    if pos.checked_add(len).is_none_or(|e| e > end) {
        return Err(corrupt("a field runs past the end of the file"));
    }
    Ok(len)
}

fn skip_field<R: Read + Seek>(r: &mut R, wire: u64, end: u64) -> Result<(), OnnxError> {
    let fixed = |r: &mut R, n: u64| -> Result<(), OnnxError> {
        let pos = r.stream_position()?;
        if pos + n > end {
            return Err(corrupt("a field runs past the end of the file"));
        }
        r.seek(SeekFrom::Current(n as i64))?;
        Ok(())
    };
    match wire {
        WIRE_VARINT => {
            read_varint(r)?.ok_or_else(|| corrupt("truncated varint"))?;
        }
        WIRE_I64 => fixed(r, 8)?,
        WIRE_I32 => fixed(r, 4)?,
        WIRE_LEN => {
            let len = read_len(r, end)?;
            fixed(r, len)?;
        }
        other => return Err(corrupt(format!("unknown protobuf wire type {other}"))),
    }
    Ok(())
}

/// One StringStringEntryProto: (key, value).
fn parse_entry(bytes: &[u8]) -> Result<(String, String), OnnxError> {
    let end = bytes.len() as u64;
    let mut cur = std::io::Cursor::new(bytes);
    let (mut key, mut value) = (String::new(), String::new());
    while let Some(tag) = read_varint(&mut cur)? {
        let (field, wire) = (tag >> 3, tag & 7);
        if wire != WIRE_LEN {
            skip_field(&mut cur, wire, end)?;
            continue;
        }
        let len = read_len(&mut cur, end)? as usize;
        let start = cur.position() as usize;
        let data = &bytes[start..start + len];
        cur.set_position((start + len) as u64);
        let s = String::from_utf8(data.to_vec())
            .map_err(|_| corrupt("a metadata entry is not UTF-8"))?;
        match field {
            1 => key = s,
            2 => value = s,
            _ => {}
        }
    }
    Ok((key, value))
}

/// Reads `metadata_props` from the `len` bytes of an ONNX file in `r`. Fails on
/// input that is not a protobuf ModelProto (no graph, garbage, truncation).
pub fn metadata_props<R: Read + Seek>(
    mut r: R,
    len: u64,
) -> Result<HashMap<String, String>, OnnxError> {
    if len == 0 {
        return Err(corrupt("the file is empty"));
    }
    let mut props = HashMap::new();
    let (mut have_graph, mut ir_version) = (false, None);
    while let Some(tag) = read_varint(&mut r)? {
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(corrupt("protobuf field number 0"));
        }
        match (field, wire) {
            (1, WIRE_VARINT) => ir_version = read_varint(&mut r)?,
            (14, WIRE_LEN) => {
                let n = read_len(&mut r, len)?;
                if n > MAX_ENTRY_BYTES {
                    return Err(corrupt("metadata entry larger than 64 MiB"));
                }
                let mut buf = vec![0u8; n as usize];
                r.read_exact(&mut buf)
                    .map_err(|e| corrupt(format!("truncated metadata: {e}")))?;
                let (k, v) = parse_entry(&buf)?;
                props.insert(k, v);
            }
            (7, WIRE_LEN) => {
                have_graph = true;
                skip_field(&mut r, wire, len)?;
            }
            _ => skip_field(&mut r, wire, len)?,
        }
    }
    if ir_version.is_none() || !have_graph {
        return Err(corrupt("no ONNX ModelProto (ir_version or graph missing)"));
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(num: u64, wire: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | wire, out);
        if wire == WIRE_LEN {
            varint(body.len() as u64, out);
        }
        out.extend_from_slice(body);
    }

    /// ir_version 8, a graph of 300 bytes, one metadata entry.
    fn model() -> Vec<u8> {
        let mut m = Vec::new();
        field(1, WIRE_VARINT, &[8], &mut m);
        field(7, WIRE_LEN, &[0x55; 300], &mut m);
        let mut entry = Vec::new();
        field(1, WIRE_LEN, b"syncdraw.frames", &mut entry);
        field(2, WIRE_LEN, b"10", &mut entry);
        field(14, WIRE_LEN, &entry, &mut m);
        m
    }

    fn read(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
        metadata_props(Cursor::new(bytes), bytes.len() as u64).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_entries_and_skips_the_graph() {
        let p = read(&model()).expect("valid");
        assert_eq!(p.get("syncdraw.frames").map(String::as_str), Some("10"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let m = model();
        for cut in 0..m.len() {
            // A cut right after a whole field may still be a valid (smaller) model.
            if let Err(e) = read(&m[..cut]) {
                assert!(!e.is_empty());
            }
        }
        assert_eq!(read(&[]).unwrap_err(), "the file is empty");
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        for len in [u64::MAX, i64::MAX as u64, 1 << 40, 65 << 20] {
            let mut m = Vec::new();
            field(1, WIRE_VARINT, &[8], &mut m);
            varint(14 << 3 | WIRE_LEN, &mut m);
            varint(len, &mut m);
            assert_eq!(
                read(&m).unwrap_err(),
                "a field runs past the end of the file",
                "{len}"
            );
            // The same length inside a metadata entry.
            let mut entry = Vec::new();
            varint(1 << 3 | WIRE_LEN, &mut entry);
            varint(len, &mut entry);
            let mut m = Vec::new();
            field(1, WIRE_VARINT, &[8], &mut m);
            field(14, WIRE_LEN, &entry, &mut m);
            assert_eq!(
                read(&m).unwrap_err(),
                "a field runs past the end of the file"
            );
        }
    }

    #[test]
    fn garbage_and_missing_graph_are_named() {
        assert_eq!(
            read(&[0xff; 12]).unwrap_err(),
            "varint longer than 10 bytes"
        );
        let mut m = Vec::new();
        field(1, WIRE_VARINT, &[8], &mut m);
        assert!(read(&m).unwrap_err().contains("graph missing"));
        assert!(read(&[0x0f]).unwrap_err().contains("wire type 7"));
        assert!(read(&[0x07]).unwrap_err().contains("field number 0"));
    }
}
