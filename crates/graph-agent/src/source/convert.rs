//! Between neo4rs's `BoltType` (as the Cypher in [`super::cypher`] encodes
//! values) and the graph model's [`Value`].

use neo4rs::{BoltBoolean, BoltFloat, BoltInteger, BoltList, BoltMap, BoltString, BoltType};

use crate::defect::{self, Defect};
use crate::graph::{Float, Props, Tz, Value};

/// An integer as read from Bolt.
fn int_of(i: &BoltInteger) -> i64 {
    if defect::active(Defect::TinyNegativeInts) && (-16..0).contains(&i.value) {
        return i.value + 256;
    }
    i.value
}

/// Reads an exported property list. Neo4j stores no null, so a null means
/// the property or its entity went away while a cut scanned (reads see
/// other transactions' commits): it is left out, and the change log, which
/// names that entity, settles its final state.
pub fn props_from_bolt(pairs: Vec<(String, BoltType)>) -> Result<Props, String> {
    pairs
        .into_iter()
        .filter(|(_, v)| !matches!(v, BoltType::Null(_)))
        .map(|(k, v)| {
            from_bolt(&v)
                .map(|v| (k.clone(), v))
                .map_err(|m| format!("property `{k}`: {m}"))
        })
        .collect()
}

/// Reads an exported value; an error for anything a property cannot hold.
pub fn from_bolt(v: &BoltType) -> Result<Value, String> {
    Ok(match v {
        BoltType::Boolean(b) => Value::Bool(b.value),
        BoltType::Integer(i) => Value::Int(int_of(i)),
        BoltType::Float(f) => Value::Float(Float(f.value)),
        BoltType::String(s) => Value::String(s.value.clone()),
        BoltType::Bytes(b) => Value::Bytes(b.value.to_vec()),
        BoltType::List(l) => Value::List(l.value.iter().map(from_bolt).collect::<Result<_, _>>()?),
        BoltType::Map(m) => from_encoded(m)?,
        other => return Err(format!("unexpected value from export: {other:?}")),
    })
}

fn from_encoded(m: &BoltMap) -> Result<Value, String> {
    let get = |k: &str| m.value.get(&BoltString::from(k));
    let int = |k: &str| match get(k) {
        Some(BoltType::Integer(i)) => Ok(int_of(i)),
        other => Err(format!("encoded value: `{k}` is {other:?}")),
    };
    let float = |k: &str| match get(k) {
        Some(BoltType::Float(f)) => Ok(Float(f.value)),
        other => Err(format!("encoded value: `{k}` is {other:?}")),
    };
    let tag = match get("t") {
        Some(BoltType::String(s)) => s.value.as_str(),
        other => return Err(format!("encoded value without a tag: {other:?}")),
    };
    let small = |k: &str, v: i64| -> Result<i32, String> {
        i32::try_from(v).map_err(|_| format!("encoded value: `{k}` = {v} out of range"))
    };
    Ok(match tag {
        "D" => Value::Date(int("d")?),
        "LT" => Value::LocalTime(int("n")?),
        "T" => Value::Time {
            nanos: int("n")?,
            offset_s: small("o", int("o")?)?,
        },
        "LDT" => Value::LocalDateTime {
            secs: int("s")?,
            nanos: int("n")? as u32,
        },
        "DT" => {
            let zone = match get("z") {
                Some(BoltType::String(s)) => s.value.clone(),
                other => return Err(format!("encoded datetime: zone is {other:?}")),
            };
            let is_offset = zone == "Z" || zone.starts_with('+') || zone.starts_with('-');
            Value::DateTime {
                secs: int("s")?,
                nanos: int("n")? as u32,
                tz: if is_offset {
                    Tz::Offset(small("o", int("o")?)?)
                } else {
                    Tz::Zone(zone)
                },
            }
        }
        "DU" => Value::Duration {
            months: int("m")?,
            days: int("d")?,
            secs: int("s")?,
            nanos: small("n", int("n")?)?,
        },
        "P" => {
            let srid = u32::try_from(int("c")?).map_err(|e| e.to_string())?;
            match get("z") {
                Some(BoltType::Float(z)) => Value::Point3D {
                    srid,
                    x: float("x")?,
                    y: float("y")?,
                    z: Float(z.value),
                },
                _ => Value::Point2D {
                    srid,
                    x: float("x")?,
                    y: float("y")?,
                },
            }
        }
        other => return Err(format!("unknown encoded type `{other}`")),
    })
}

/// Whether `v` must cross the wire encoded (see [`super::cypher`]).
pub fn needs_encoding(v: &Value) -> bool {
    match v {
        Value::List(items) => items.first().is_some_and(needs_encoding),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::String(_) | Value::Bytes(_) => {
            false
        }
        _ => true,
    }
}

/// A value as a restore parameter: plain values as they are, the others
/// encoded for [`super::cypher::decode`].
pub fn to_bolt(v: &Value) -> BoltType {
    let map = |pairs: Vec<(&str, BoltType)>| {
        let mut m = BoltMap::new();
        for (k, v) in pairs {
            m.put(BoltString::from(k), v);
        }
        BoltType::Map(m)
    };
    let int = |i: i64| BoltType::Integer(BoltInteger::new(i));
    let float = |f: Float| BoltType::Float(BoltFloat::new(f.0));
    let string = |s: &str| BoltType::String(BoltString::from(s));
    match v {
        Value::Bool(b) => BoltType::Boolean(BoltBoolean::new(*b)),
        Value::Int(i) => int(*i),
        Value::Float(f) => float(*f),
        Value::String(s) => string(s),
        Value::Bytes(b) => BoltType::Bytes(neo4rs::BoltBytes::new(b.clone().into())),
        Value::List(items) if items.first().is_some_and(needs_encoding) => map(vec![
            ("t", string("L")),
            (
                "l",
                BoltType::List(BoltList::from(
                    items.iter().map(to_bolt).collect::<Vec<_>>(),
                )),
            ),
        ]),
        Value::List(items) => BoltType::List(BoltList::from(
            items.iter().map(to_bolt).collect::<Vec<_>>(),
        )),
        Value::Date(d) => map(vec![("t", string("D")), ("d", int(*d))]),
        Value::LocalTime(n) => map(vec![("t", string("LT")), ("n", int(*n))]),
        Value::Time { nanos, offset_s } => map(vec![
            ("t", string("T")),
            ("n", int(*nanos)),
            ("z", string(&offset_string(*offset_s))),
        ]),
        Value::LocalDateTime { secs, nanos } => map(vec![
            ("t", string("LDT")),
            ("s", int(*secs)),
            ("n", int(i64::from(*nanos))),
        ]),
        Value::DateTime { secs, nanos, tz } => map(vec![
            ("t", string("DT")),
            ("s", int(*secs)),
            ("n", int(i64::from(*nanos))),
            (
                "z",
                string(&match tz {
                    Tz::Offset(o) => offset_string(*o),
                    Tz::Zone(z) => z.clone(),
                }),
            ),
        ]),
        Value::Duration {
            months,
            days,
            secs,
            nanos,
        } => map(vec![
            ("t", string("DU")),
            ("m", int(*months)),
            ("d", int(*days)),
            ("s", int(*secs)),
            ("n", int(i64::from(*nanos))),
        ]),
        Value::Point2D { srid, x, y } => map(vec![
            ("t", string("P")),
            ("c", int(i64::from(*srid))),
            ("x", float(*x)),
            ("y", float(*y)),
        ]),
        Value::Point3D { srid, x, y, z } => map(vec![
            ("t", string("P")),
            ("c", int(i64::from(*srid))),
            ("x", float(*x)),
            ("y", float(*y)),
            ("z", float(*z)),
        ]),
    }
}

/// `+01:00`, `-05:30`, `+00:00:30`: a zone offset as Neo4j accepts it.
fn offset_string(offset_s: i32) -> String {
    let sign = if offset_s < 0 { '-' } else { '+' };
    let a = offset_s.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_written_as_neo4j_reads_them() {
        assert_eq!(offset_string(3600), "+01:00");
        assert_eq!(offset_string(-19_800), "-05:30");
        assert_eq!(offset_string(30), "+00:00:30");
        assert_eq!(offset_string(0), "+00:00");
    }

    #[test]
    fn a_property_that_vanished_during_the_scan_is_left_out() {
        let pairs = vec![
            ("w".to_string(), BoltType::Null(neo4rs::BoltNull)),
            ("side".to_string(), BoltType::from("a")),
        ];
        let props = props_from_bolt(pairs).unwrap();
        assert_eq!(props.len(), 1);
        assert_eq!(props["side"], Value::String("a".into()));
    }

    #[test]
    fn a_value_no_property_can_hold_is_an_error_naming_the_property() {
        let duration = BoltType::Duration(neo4rs::BoltDuration::new(
            1.into(),
            0.into(),
            0.into(),
            0.into(),
        ));
        let err = props_from_bolt(vec![("d".to_string(), duration)]).unwrap_err();
        assert!(err.starts_with("property `d`:"), "{err}");
    }

    #[test]
    fn plain_values_cross_unencoded_and_come_back() {
        for v in [
            Value::Int(-3),
            Value::Float(Float(f64::NAN)),
            Value::String("ü".into()),
            Value::Bytes(vec![0, 255]),
            Value::List(vec![Value::Int(1)]),
            Value::List(vec![]),
        ] {
            assert!(!needs_encoding(&v));
            assert_eq!(from_bolt(&to_bolt(&v)).unwrap(), v);
        }
    }
}
