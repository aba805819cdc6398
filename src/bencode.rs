//! Bencode (BEP 3): the value model, a canonical encoder and a strict decoder.
//!
//! Hand-written rather than taken from a crate because info-hashes are computed over the *exact*
//! bytes of the `info` dictionary: the decoder reports where each dictionary value sits in the
//! input ([`Decoded::raw_value`]), and rejects non-canonical input (unsorted or duplicate keys,
//! leading zeros, `-0`) so that a decoded torrent re-encodes to the bytes it came from.

use std::collections::BTreeMap;
use std::ops::Range;

/// A bencoded value. Dictionary keys are byte strings kept in sorted order, which is exactly the
/// order bencode requires, so encoding a `Value` is always canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why bytes are not valid (canonical) bencode; `at` is the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input at byte {at}")]
    Eof { at: usize },
    #[error("unexpected byte 0x{byte:02x} at byte {at}")]
    Unexpected { byte: u8, at: usize },
    #[error("malformed integer at byte {at}")]
    BadInt { at: usize },
    #[error("dictionary keys out of order or repeated at byte {at}")]
    KeyOrder { at: usize },
    #[error("nesting deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep { at: usize },
    #[error("more than {MAX_VALUES} values (at byte {at})")]
    TooManyValues { at: usize },
    #[error("{extra} trailing bytes after the value")]
    Trailing { extra: usize },
}

/// Nesting limit: a torrent needs a handful of levels; this bounds recursion on hostile input.
pub const MAX_DEPTH: usize = 64;
/// Most values (integers, strings, lists, dictionaries) in one input. A torrent of 10,000 files
/// has about 110,000; the cap bounds the decoder's memory (a value takes 32 bytes, so about
/// 32 MB) on input such as millions of empty lists, whose two bytes each would otherwise
/// become 32.
pub const MAX_VALUES: usize = 1_000_000;

impl Value {
    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Value::Bytes(b.into())
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks up `key` when this is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict().and_then(|d| d.get(key.as_bytes()))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// A decoded top-level value, with the byte ranges of the top-level dictionary's values.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub value: Value,
    input: &'a [u8],
    top_level_spans: BTreeMap<Vec<u8>, Range<usize>>,
}

impl<'a> Decoded<'a> {
    /// The exact input bytes of the top-level dictionary's value under `key`.
    pub fn raw_value(&self, key: &str) -> Option<&'a [u8]> {
        self.top_level_spans
            .get(key.as_bytes())
            .map(|r| &self.input[r.clone()])
    }
}

/// Decodes exactly one canonical value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let mut parser = Parser {
        input,
        pos: 0,
        values: 0,
        top_level_spans: BTreeMap::new(),
    };
    let value = parser.value(0)?;
    if parser.pos != input.len() {
        return Err(DecodeError::Trailing {
            extra: input.len() - parser.pos,
        });
    }
    Ok(Decoded {
        value,
        input,
        top_level_spans: parser.top_level_spans,
    })
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    /// Values decoded so far, against [`MAX_VALUES`].
    values: usize,
    top_level_spans: BTreeMap<Vec<u8>, Range<usize>>,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Eof { at: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep { at: self.pos });
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(DecodeError::TooManyValues { at: self.pos });
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.integer(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => self.byte_string().map(Value::Bytes),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut entries = BTreeMap::new();
                let mut last_key: Option<Vec<u8>> = None;
                while self.peek()? != b'e' {
                    let key_at = self.pos;
                    let key = self.byte_string()?;
                    if last_key.as_ref().is_some_and(|last| *last >= key) {
                        return Err(DecodeError::KeyOrder { at: key_at });
                    }
                    let start = self.pos;
                    let value = self.value(depth + 1)?;
                    if depth == 0 {
                        self.top_level_spans.insert(key.clone(), start..self.pos);
                    }
                    last_key = Some(key.clone());
                    entries.insert(key, value);
                }
                self.pos += 1;
                Ok(Value::Dict(entries))
            }
            byte => Err(DecodeError::Unexpected { byte, at: self.pos }),
        }
    }

    fn byte_string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let at = self.pos;
        let len = self.integer(b':')?;
        let len = usize::try_from(len).map_err(|_| DecodeError::BadInt { at })?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.input.len())
            .ok_or(DecodeError::Eof {
                at: self.input.len(),
            })?;
        let bytes = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(bytes)
    }

    /// Reads a canonical decimal integer up to `terminator`: no leading zeros, no `-0`.
    fn integer(&mut self, terminator: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let len = rest
            .iter()
            .position(|&b| b == terminator)
            .ok_or(DecodeError::Eof {
                at: self.input.len(),
            })?;
        let digits = &rest[..len];
        let bad = DecodeError::BadInt { at: start };
        let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
        let canonical = !unsigned.is_empty()
            && unsigned.iter().all(u8::is_ascii_digit)
            && (unsigned == b"0" || unsigned[0] != b'0')
            && !(digits.starts_with(b"-") && unsigned == b"0")
            && (terminator == b'e' || !digits.starts_with(b"-"));
        if !canonical {
            return Err(bad);
        }
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(bad)?;
        self.pos = start + len + 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_bep3_examples() {
        assert_eq!(Value::bytes("spam").encode(), b"4:spam");
        assert_eq!(Value::Int(3).encode(), b"i3e");
        assert_eq!(Value::Int(-3).encode(), b"i-3e");
        let list = Value::List(vec![Value::bytes("spam"), Value::bytes("eggs")]);
        assert_eq!(list.encode(), b"l4:spam4:eggse");
        let dict = Value::Dict(BTreeMap::from([
            (b"spam".to_vec(), Value::bytes("eggs")),
            (b"cow".to_vec(), Value::bytes("moo")),
        ]));
        assert_eq!(dict.encode(), b"d3:cow3:moo4:spam4:eggse");
    }

    #[test]
    fn the_number_of_values_is_bounded() {
        let mut many = b"l".to_vec();
        many.extend(b"le".repeat(MAX_VALUES));
        many.push(b'e');
        assert!(matches!(
            decode(&many),
            Err(DecodeError::TooManyValues { .. })
        ));
        let mut fine = b"l".to_vec();
        fine.extend(b"le".repeat(MAX_VALUES - 1));
        fine.push(b'e');
        assert!(decode(&fine).is_ok());
    }

    #[test]
    fn rejects_non_canonical_input() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"ie",
            b"i1",
            b"03:abc",
            b"-1:a",
            b"d4:spam1:a3:cow1:be",
            b"d3:cow1:a3:cow1:be",
            b"5:abc",
            b"i1ei2e",
            b"x",
            b"",
        ] {
            assert!(
                decode(bad).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn raw_value_is_the_exact_input_span() {
        let input = b"d4:infod6:lengthi5ee3:zzzi1ee";
        let decoded = decode(input).unwrap();
        assert_eq!(decoded.raw_value("info").unwrap(), b"d6:lengthi5ee");
        assert_eq!(decoded.raw_value("zzz").unwrap(), b"i1e");
        assert!(decoded.raw_value("missing").is_none());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let input = [vec![b'l'; 100_000], vec![b'e'; 100_000]].concat();
        assert!(matches!(decode(&input), Err(DecodeError::TooDeep { .. })));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..8
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(value in arb_value()) {
            let bytes = value.encode();
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.value, value);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_round_trip_when_valid(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(decoded) = decode(&bytes) {
                prop_assert_eq!(decoded.value.encode(), bytes);
            }
        }
    }
}
