//! The canonical byte encoding of records: little-endian integers, u32
//! length prefixes, one tag byte per value and record. Decoding never panics:
//! damaged input gives a [`DecodeError`] with its offset.

use super::{Float, Node, Props, Record, Rel, Tz, Value};

mod tag {
    pub const BOOL: u8 = 0x01;
    pub const INT: u8 = 0x02;
    pub const FLOAT: u8 = 0x03;
    pub const STRING: u8 = 0x04;
    pub const BYTES: u8 = 0x05;
    pub const LIST: u8 = 0x06;
    pub const DATE: u8 = 0x07;
    pub const LOCAL_TIME: u8 = 0x08;
    pub const TIME: u8 = 0x09;
    pub const LOCAL_DATE_TIME: u8 = 0x0A;
    pub const DATE_TIME_OFFSET: u8 = 0x0B;
    pub const DATE_TIME_ZONE: u8 = 0x0C;
    pub const DURATION: u8 = 0x0D;
    pub const POINT_2D: u8 = 0x0E;
    pub const POINT_3D: u8 = 0x0F;

    pub const NODE: u8 = b'N';
    pub const REL: u8 = b'R';
    pub const DELETE_NODE: u8 = b'X';
    pub const DELETE_REL: u8 = b'Y';
    pub const SCHEMA: u8 = b'S';
}

/// Lists nest at most this deep (Neo4j's are flat; this bounds damaged input).
const MAX_DEPTH: usize = 8;

/// Appends records to a buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn record(&mut self, r: &Record) {
        match r {
            Record::Node(n) => {
                self.buf.push(tag::NODE);
                self.str(&n.id);
                self.len(n.labels.len());
                for l in &n.labels {
                    self.str(l);
                }
                self.props(&n.props);
            }
            Record::Rel(r) => {
                self.buf.push(tag::REL);
                self.str(&r.id);
                self.str(&r.rel_type);
                self.str(&r.start);
                self.str(&r.end);
                self.props(&r.props);
            }
            Record::DeleteNode(id) => {
                self.buf.push(tag::DELETE_NODE);
                self.str(id);
            }
            Record::DeleteRel(id) => {
                self.buf.push(tag::DELETE_REL);
                self.str(id);
            }
            Record::Schema(s) => {
                self.buf.push(tag::SCHEMA);
                self.str(s);
            }
        }
    }

    fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a length fits in u32");
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn f64(&mut self, v: Float) {
        self.buf.extend_from_slice(&v.0.to_bits().to_le_bytes());
    }

    fn props(&mut self, props: &Props) {
        self.len(props.len());
        for (k, v) in props {
            self.str(k);
            self.value(v);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => {
                self.buf.push(tag::BOOL);
                self.buf.push(u8::from(*b));
            }
            Value::Int(i) => {
                self.buf.push(tag::INT);
                self.i64(*i);
            }
            Value::Float(f) => {
                self.buf.push(tag::FLOAT);
                self.f64(*f);
            }
            Value::String(s) => {
                self.buf.push(tag::STRING);
                self.str(s);
            }
            Value::Bytes(b) => {
                self.buf.push(tag::BYTES);
                self.len(b.len());
                self.buf.extend_from_slice(b);
            }
            Value::List(items) => {
                self.buf.push(tag::LIST);
                self.len(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Date(d) => {
                self.buf.push(tag::DATE);
                self.i64(*d);
            }
            Value::LocalTime(n) => {
                self.buf.push(tag::LOCAL_TIME);
                self.i64(*n);
            }
            Value::Time { nanos, offset_s } => {
                self.buf.push(tag::TIME);
                self.i64(*nanos);
                self.buf.extend_from_slice(&offset_s.to_le_bytes());
            }
            Value::LocalDateTime { secs, nanos } => {
                self.buf.push(tag::LOCAL_DATE_TIME);
                self.i64(*secs);
                self.buf.extend_from_slice(&nanos.to_le_bytes());
            }
            Value::DateTime { secs, nanos, tz } => {
                match tz {
                    Tz::Offset(_) => self.buf.push(tag::DATE_TIME_OFFSET),
                    Tz::Zone(_) => self.buf.push(tag::DATE_TIME_ZONE),
                }
                self.i64(*secs);
                self.buf.extend_from_slice(&nanos.to_le_bytes());
                match tz {
                    Tz::Offset(o) => self.buf.extend_from_slice(&o.to_le_bytes()),
                    Tz::Zone(z) => self.str(z),
                }
            }
            Value::Duration {
                months,
                days,
                secs,
                nanos,
            } => {
                self.buf.push(tag::DURATION);
                self.i64(*months);
                self.i64(*days);
                self.i64(*secs);
                self.buf.extend_from_slice(&nanos.to_le_bytes());
            }
            Value::Point2D { srid, x, y } => {
                self.buf.push(tag::POINT_2D);
                self.buf.extend_from_slice(&srid.to_le_bytes());
                self.f64(*x);
                self.f64(*y);
            }
            Value::Point3D { srid, x, y, z } => {
                self.buf.push(tag::POINT_3D);
                self.buf.extend_from_slice(&srid.to_le_bytes());
                self.f64(*x);
                self.f64(*y);
                self.f64(*z);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad record encoding at byte {offset}: {message}")]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

/// Reads records back from a buffer.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next record, or `None` at the end of the buffer.
    pub fn next_record(&mut self) -> Result<Option<Record>, DecodeError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let at = self.pos;
        let record = match self.u8()? {
            tag::NODE => {
                let id = self.string()?;
                let n = self.len()?;
                let mut labels = std::collections::BTreeSet::new();
                for _ in 0..n {
                    labels.insert(self.string()?);
                }
                Record::Node(Node {
                    id,
                    labels,
                    props: self.props()?,
                })
            }
            tag::REL => Record::Rel(Rel {
                id: self.string()?,
                rel_type: self.string()?,
                start: self.string()?,
                end: self.string()?,
                props: self.props()?,
            }),
            tag::DELETE_NODE => Record::DeleteNode(self.string()?),
            tag::DELETE_REL => Record::DeleteRel(self.string()?),
            tag::SCHEMA => Record::Schema(self.string()?),
            other => return Err(self.error_at(at, format!("unknown record tag {other:#04x}"))),
        };
        Ok(Some(record))
    }

    /// Every record left in the buffer.
    pub fn records(mut self) -> Result<Vec<Record>, DecodeError> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    fn error_at(&self, offset: usize, message: String) -> DecodeError {
        DecodeError { offset, message }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.error_at(
                    self.pos,
                    format!("needs {n} bytes, {} left", self.buf.len() - self.pos),
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<Float, DecodeError> {
        Ok(Float(f64::from_bits(u64::from_le_bytes(self.array()?))))
    }

    /// A length, checked against the bytes left so damaged input cannot
    /// make us allocate gigabytes.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(self.error_at(at, format!("length {n} runs past the end")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| self.error_at(at, e.to_string()))
    }

    fn props(&mut self) -> Result<Props, DecodeError> {
        let n = self.len()?;
        let mut props = Props::new();
        for _ in 0..n {
            let key = self.string()?;
            let value = self.value(0)?;
            props.insert(key, value);
        }
        Ok(props)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        Ok(match self.u8()? {
            tag::BOOL => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.error_at(at + 1, format!("bad bool {b}"))),
            },
            tag::INT => Value::Int(self.i64()?),
            tag::FLOAT => Value::Float(self.f64()?),
            tag::STRING => Value::String(self.string()?),
            tag::BYTES => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            tag::LIST => {
                if depth >= MAX_DEPTH {
                    return Err(self.error_at(at, "lists nested too deep".into()));
                }
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            tag::DATE => Value::Date(self.i64()?),
            tag::LOCAL_TIME => Value::LocalTime(self.i64()?),
            tag::TIME => Value::Time {
                nanos: self.i64()?,
                offset_s: self.i32()?,
            },
            tag::LOCAL_DATE_TIME => Value::LocalDateTime {
                secs: self.i64()?,
                nanos: self.u32()?,
            },
            tag::DATE_TIME_OFFSET => Value::DateTime {
                secs: self.i64()?,
                nanos: self.u32()?,
                tz: Tz::Offset(self.i32()?),
            },
            tag::DATE_TIME_ZONE => Value::DateTime {
                secs: self.i64()?,
                nanos: self.u32()?,
                tz: Tz::Zone(self.string()?),
            },
            tag::DURATION => Value::Duration {
                months: self.i64()?,
                days: self.i64()?,
                secs: self.i64()?,
                nanos: self.i32()?,
            },
            tag::POINT_2D => Value::Point2D {
                srid: self.u32()?,
                x: self.f64()?,
                y: self.f64()?,
            },
            tag::POINT_3D => Value::Point3D {
                srid: self.u32()?,
                x: self.f64()?,
                y: self.f64()?,
                z: self.f64()?,
            },
            other => return Err(self.error_at(at, format!("unknown value tag {other:#04x}"))),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn float() -> impl Strategy<Value = Float> {
        prop_oneof![
            any::<f64>().prop_map(Float),
            Just(Float(f64::NAN)),
            Just(Float(f64::INFINITY)),
            Just(Float(f64::NEG_INFINITY)),
            Just(Float(-0.0)),
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            float().prop_map(Value::Float),
            any::<String>().prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
            any::<i64>().prop_map(Value::Date),
            (0i64..86_400_000_000_000).prop_map(Value::LocalTime),
            (0i64..86_400_000_000_000, -64_800i32..64_800)
                .prop_map(|(nanos, offset_s)| Value::Time { nanos, offset_s }),
            (any::<i64>(), 0u32..1_000_000_000)
                .prop_map(|(secs, nanos)| Value::LocalDateTime { secs, nanos }),
            (any::<i64>(), 0u32..1_000_000_000, -64_800i32..64_800).prop_map(|(secs, nanos, o)| {
                Value::DateTime {
                    secs,
                    nanos,
                    tz: Tz::Offset(o),
                }
            }),
            (
                any::<i64>(),
                0u32..1_000_000_000,
                "[A-Z][a-z]+/[A-Z][a-z_]+"
            )
                .prop_map(|(secs, nanos, z)| Value::DateTime {
                    secs,
                    nanos,
                    tz: Tz::Zone(z)
                }),
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i32>()).prop_map(
                |(months, days, secs, nanos)| Value::Duration {
                    months,
                    days,
                    secs,
                    nanos
                }
            ),
            (prop_oneof![Just(7203u32), Just(4326u32)], float(), float())
                .prop_map(|(srid, x, y)| Value::Point2D { srid, x, y }),
            (
                prop_oneof![Just(9157u32), Just(4979u32)],
                float(),
                float(),
                float()
            )
                .prop_map(|(srid, x, y, z)| Value::Point3D { srid, x, y, z }),
        ]
    }

    pub fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => scalar(),
            1 => proptest::collection::vec(scalar(), 0..5).prop_map(Value::List),
        ]
    }

    fn props() -> impl Strategy<Value = Props> {
        proptest::collection::btree_map(any::<String>(), value(), 0..6)
    }

    pub fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<String>(),
                proptest::collection::btree_set(any::<String>(), 0..4),
                props()
            )
                .prop_map(|(id, labels, props)| Record::Node(Node {
                    id,
                    labels,
                    props
                })),
            (
                any::<String>(),
                any::<String>(),
                any::<String>(),
                any::<String>(),
                props()
            )
                .prop_map(|(id, rel_type, start, end, props)| Record::Rel(Rel {
                    id,
                    rel_type,
                    start,
                    end,
                    props
                })),
            any::<String>().prop_map(Record::DeleteNode),
            any::<String>().prop_map(Record::DeleteRel),
            any::<String>().prop_map(Record::Schema),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip_exactly(records in proptest::collection::vec(record(), 0..20)) {
            let mut enc = Encoder::default();
            for r in &records {
                enc.record(r);
            }
            let back = Decoder::new(enc.bytes()).records().unwrap();
            prop_assert_eq!(back, records);
        }

        #[test]
        fn damaged_bytes_never_panic(records in proptest::collection::vec(record(), 1..5), at in any::<usize>(), byte in any::<u8>()) {
            let mut enc = Encoder::default();
            for r in &records {
                enc.record(r);
            }
            let mut bytes = enc.into_bytes();
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = Decoder::new(&bytes).records();
            bytes.truncate(i);
            let _ = Decoder::new(&bytes).records();
        }
    }

    #[test]
    fn nan_and_negative_zero_survive() {
        let r = Record::Node(Node {
            id: "n".into(),
            labels: ["Ünïcödé".to_string()].into(),
            props: [
                ("nan".to_string(), Value::Float(Float(f64::NAN))),
                ("neg0".to_string(), Value::Float(Float(-0.0))),
                ("empty".to_string(), Value::List(vec![])),
            ]
            .into(),
        });
        let mut enc = Encoder::default();
        enc.record(&r);
        assert_eq!(Decoder::new(enc.bytes()).records().unwrap(), vec![r]);
    }
}
