//! The judge's reader is exact: random values of every property type are
//! written to a real Neo4j as Cypher literals, read back by
//! `graphdrill::graph::read`, and compared with what each literal means.
//! The oracle shares nothing with either reader (the judge's or any
//! agent's): it knows the value it generated and parses the judge's text
//! by ISO 8601 and Java's number syntax, the forms Neo4j documents.
//! (A module of `tests/env.rs`, to share its environment.)

use crate::common::{admin_graph, serial, shared_env};
use graphdrill::graph::read::{BYTE_ARRAY, read};
use graphdrill::graph::{Text, Value};
use neo4rs::query;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A value as generated: what the oracle knows it means.
#[derive(Debug, Clone)]
enum V {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Date(Date),
    LocalTime(Time),
    Time(Time, i32),
    LocalDateTime(Date, Time),
    DateTime(Date, Time, i32),
    /// A zone with one fixed offset for all time (seconds east of UTC).
    Zoned(Date, Time, &'static str, i32),
    Duration {
        months: i64,
        days: i64,
        secs: i64,
        nanos: i64,
    },
    Point {
        crs: &'static str,
        x: f64,
        y: f64,
        z: Option<f64>,
    },
    /// Homogeneous, as Neo4j requires; may be empty.
    List(Vec<V>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Date(i64, u32, u32);

#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(u32, u32, u32, u32);

const ZONES: [(&str, i32); 4] = [
    ("UTC", 0),
    ("Etc/GMT-14", 14 * 3600),
    ("Etc/GMT+12", -12 * 3600),
    ("Etc/GMT-5", 5 * 3600),
];

fn date(years: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = Date> {
    let year = prop_oneof![
        years.clone(),
        Just(*years.start()),
        Just(*years.end()),
        Just(0i64.clamp(*years.start(), *years.end())),
    ];
    (year, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| Date(y, m, d))
}

fn time() -> impl Strategy<Value = Time> {
    let nanos = prop_oneof![Just(0u32), Just(1), Just(999_999_999), 0u32..1_000_000_000];
    (0u32..24, 0u32..60, 0u32..60, nanos).prop_map(|(h, m, s, n)| Time(h, m, s, n))
}

fn offset() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        (-18 * 60..=18 * 60).prop_map(|m: i32| m * 60),
        -18 * 3600..=18 * 3600i32
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 4.0),
        Just(f64::MAX),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

/// One strategy per kind of scalar (points: per coordinate system), so a
/// list can be made of one kind, as Neo4j requires.
fn kinds() -> Vec<BoxedStrategy<V>> {
    let point = |crs: &'static str, x: BoxedStrategy<f64>, y: BoxedStrategy<f64>, z: bool| {
        (x, y, finite())
            .prop_map(move |(x, y, h)| V::Point {
                crs,
                x,
                y,
                z: z.then_some(h),
            })
            .boxed()
    };
    vec![
        any::<bool>().prop_map(V::Bool).boxed(),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), any::<i64>()]
            .prop_map(V::Int)
            .boxed(),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            finite()
        ]
        .prop_map(V::Float)
        .boxed(),
        prop_oneof![Just(String::new()), any::<String>()]
            .prop_map(V::Str)
            .boxed(),
        date(-999_999_999..=999_999_999).prop_map(V::Date).boxed(),
        time().prop_map(V::LocalTime).boxed(),
        (time(), offset()).prop_map(|(t, o)| V::Time(t, o)).boxed(),
        (date(-999_999_999..=999_999_999), time())
            .prop_map(|(d, t)| V::LocalDateTime(d, t))
            .boxed(),
        (date(-9999..=99_999), time(), offset())
            .prop_map(|(d, t, o)| V::DateTime(d, t, o))
            .boxed(),
        (date(1..=9999), time(), 0..ZONES.len())
            .prop_map(|(d, t, z)| V::Zoned(d, t, ZONES[z].0, ZONES[z].1))
            .boxed(),
        (
            -1_000_000i64..=1_000_000,
            -1_000_000i64..=1_000_000,
            prop_oneof![Just(0i64), Just(-1), -1_000_000_000i64..=1_000_000_000],
            prop_oneof![
                Just(0i64),
                Just(-1),
                Just(-999_999_999),
                -999_999_999i64..=999_999_999
            ],
        )
            .prop_map(|(months, days, secs, nanos)| V::Duration {
                months,
                days,
                secs,
                nanos,
            })
            .boxed(),
        point("cartesian", finite().boxed(), finite().boxed(), false),
        point("cartesian-3d", finite().boxed(), finite().boxed(), true),
        point(
            "wgs-84",
            (-180.0..=180.0f64).boxed(),
            (-90.0..=90.0f64).boxed(),
            false,
        ),
        point(
            "wgs-84-3d",
            (-180.0..=180.0f64).boxed(),
            (-90.0..=90.0f64).boxed(),
            true,
        ),
    ]
}

/// A property value: a scalar, bytes, or a homogeneous list of one kind.
fn value() -> impl Strategy<Value = V> {
    let n = kinds().len();
    prop_oneof![
        4 => prop::sample::select((0..n).collect::<Vec<_>>()).prop_flat_map(|k| kinds().swap_remove(k)),
        1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(V::Bytes),
        2 => prop::sample::select((0..n).collect::<Vec<_>>())
            .prop_flat_map(|k| prop::collection::vec(kinds().swap_remove(k), 0..5).prop_map(V::List)),
    ]
}

fn float_literal(f: f64) -> String {
    match f {
        f if f.is_nan() => "(0.0 / 0.0)".into(),
        f64::INFINITY => "(1.0 / 0.0)".into(),
        f64::NEG_INFINITY => "(-1.0 / 0.0)".into(),
        // Rust's shortest round-trip form; Cypher reads `1e300`, `-0.0`, `5e-324`.
        f => format!("{f:?}"),
    }
}

fn date_map(d: Date) -> String {
    format!("year: {}, month: {}, day: {}", d.0, d.1, d.2)
}

fn time_map(t: Time) -> String {
    format!(
        "hour: {}, minute: {}, second: {}, nanosecond: {}",
        t.0, t.1, t.2, t.3
    )
}

fn offset_text(o: i32) -> String {
    let sign = if o < 0 { '-' } else { '+' };
    let a = o.unsigned_abs();
    format!("{sign}{:02}:{:02}:{:02}", a / 3600, a / 60 % 60, a % 60)
}

/// The Cypher literal of `v` (`None` for bytes, which have none).
fn literal(v: &V) -> Option<String> {
    Some(match v {
        V::Bool(b) => b.to_string(),
        V::Int(i) => i.to_string(),
        V::Float(f) => float_literal(*f),
        V::Str(s) => {
            let mut out = String::from("'");
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
        V::Bytes(_) => return None,
        V::Date(d) => format!("date({{{}}})", date_map(*d)),
        V::LocalTime(t) => format!("localtime({{{}}})", time_map(*t)),
        V::Time(t, o) => format!(
            "time({{{}, timezone: '{}'}})",
            time_map(*t),
            offset_text(*o)
        ),
        V::LocalDateTime(d, t) => {
            format!("localdatetime({{{}, {}}})", date_map(*d), time_map(*t))
        }
        V::DateTime(d, t, o) => format!(
            "datetime({{{}, {}, timezone: '{}'}})",
            date_map(*d),
            time_map(*t),
            offset_text(*o)
        ),
        V::Zoned(d, t, z, _) => format!(
            "datetime({{{}, {}, timezone: '{z}'}})",
            date_map(*d),
            time_map(*t)
        ),
        V::Duration {
            months,
            days,
            secs,
            nanos,
        } => format!(
            "duration({{months: {months}, days: {days}, seconds: {secs}, nanoseconds: {nanos}}})"
        ),
        V::Point { crs, x, y, z } => {
            let (a, b) = if crs.starts_with("wgs") {
                ("longitude", "latitude")
            } else {
                ("x", "y")
            };
            let z = z.map_or(String::new(), |z| {
                let k = if crs.starts_with("wgs") {
                    "height"
                } else {
                    "z"
                };
                format!(", {k}: {}", float_literal(z))
            });
            format!(
                "point({{{a}: {}, {b}: {}{z}}})",
                float_literal(*x),
                float_literal(*y)
            )
        }
        V::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| literal(i).unwrap())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Neo4j's documented type name of `v` (`valueType`).
fn type_name(v: &V) -> String {
    let scalar = match v {
        V::Bool(_) => "BOOLEAN",
        V::Int(_) => "INTEGER",
        V::Float(_) => "FLOAT",
        V::Str(_) => "STRING",
        V::Bytes(_) => return BYTE_ARRAY.into(),
        V::Date(_) => "DATE",
        V::LocalTime(_) => "LOCAL TIME",
        V::Time(..) => "ZONED TIME",
        V::LocalDateTime(..) => "LOCAL DATETIME",
        V::DateTime(..) | V::Zoned(..) => "ZONED DATETIME",
        V::Duration { .. } => "DURATION",
        V::Point { .. } => "POINT",
        V::List(items) => {
            return match items.first() {
                None => "LIST<NOTHING> NOT NULL".into(),
                Some(first) => format!("LIST<{}> NOT NULL", type_name(first)),
            };
        }
    };
    format!("{scalar} NOT NULL")
}

/// A number as Java prints a double: `NaN`, `Infinity`, `1.0E300`, `-0.0`.
fn java_double(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        t => t.parse().map_err(|e| format!("`{t}` is no number: {e}")),
    }
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// `[+-]YYYY…-MM-DD` (ISO 8601, years past 9999 with a sign) and the rest.
fn parse_date(t: &str) -> Result<(Date, &str), String> {
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let mut parts = body.splitn(3, '-');
    let bad = || format!("`{t}` is no ISO date");
    let y: i64 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let m: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let rest = parts.next().ok_or_else(bad)?;
    let d: u32 = rest.get(..2).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    Ok((Date(sign * y, m, d), &rest[2..]))
}

/// `HH:MM[:SS[.fraction]]` and the rest.
fn parse_time(t: &str) -> Result<(Time, &str), String> {
    let bad = || format!("`{t}` is no ISO time");
    let num =
        |s: Option<&str>| -> Result<u32, String> { s.ok_or_else(bad)?.parse().map_err(|_| bad()) };
    let h = num(t.get(..2))?;
    let m = num(t.get(3..5))?;
    let mut rest = &t[5..];
    let (mut s, mut n) = (0, 0);
    if let Some(r) = rest.strip_prefix(':') {
        s = num(r.get(..2))?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let digits = r.chars().take_while(char::is_ascii_digit).count();
            n = num(Some(&r[..digits]))? * 10u32.pow(9 - digits as u32);
            rest = &r[digits..];
        }
    }
    Ok((Time(h, m, s, n), rest))
}

/// `Z` or `±HH:MM[:SS]` and the rest.
fn parse_offset(t: &str) -> Result<(i32, &str), String> {
    if let Some(rest) = t.strip_prefix('Z') {
        return Ok((0, rest));
    }
    let bad = || format!("`{t}` is no offset");
    let sign = match t.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let num =
        |s: Option<&str>| -> Result<i32, String> { s.ok_or_else(bad)?.parse().map_err(|_| bad()) };
    let mut secs = num(t.get(1..3))? * 3600 + num(t.get(4..6))? * 60;
    let mut rest = &t[6..];
    if let Some(r) = rest.strip_prefix(':') {
        secs += num(r.get(..2))?;
        rest = &r[2..];
    }
    Ok((sign * secs, rest))
}

/// An ISO 8601 duration (`P-1Y2M3DT-4H5M-6.5S`, each part signed) as
/// months, days and nanoseconds: its meaning, however it is written.
fn parse_duration(t: &str) -> Result<(i64, i64, i128), String> {
    let bad = || format!("`{t}` is no ISO duration");
    let body = t.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i128);
    let mut each = |part: &str, in_time: bool| -> Result<(), String> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                num.push(c);
                continue;
            }
            match (in_time, c) {
                (false, 'Y') => months += 12 * num.parse::<i64>().map_err(|_| bad())?,
                (false, 'M') => months += num.parse::<i64>().map_err(|_| bad())?,
                (false, 'W') => days += 7 * num.parse::<i64>().map_err(|_| bad())?,
                (false, 'D') => days += num.parse::<i64>().map_err(|_| bad())?,
                (true, 'H') => {
                    nanos += 3_600_000_000_000 * num.parse::<i128>().map_err(|_| bad())?
                }
                (true, 'M') => nanos += 60_000_000_000 * num.parse::<i128>().map_err(|_| bad())?,
                (true, 'S') => {
                    let neg = num.starts_with('-');
                    let (whole, frac) = num.split_once('.').unwrap_or((&num, ""));
                    let whole: i128 = whole.parse().map_err(|_| bad())?;
                    let frac: i128 = if frac.is_empty() {
                        0
                    } else {
                        format!("{frac:0<9}").parse().map_err(|_| bad())?
                    };
                    nanos += whole * 1_000_000_000 + if neg { -frac } else { frac };
                }
                _ => return Err(bad()),
            }
            num.clear();
        }
        if num.is_empty() { Ok(()) } else { Err(bad()) }
    };
    each(date, false)?;
    each(time, true)?;
    Ok((months, days, nanos))
}

/// `point({x: 1.0, y: 2.0[, z: 3.0], crs: 'cartesian'})`.
fn parse_point(t: &str) -> Result<(String, Vec<f64>), String> {
    let bad = || format!("`{t}` is no point");
    let body = t
        .strip_prefix("point({")
        .and_then(|b| b.strip_suffix("})"))
        .ok_or_else(bad)?;
    let (mut crs, mut coords) = (String::new(), Vec::new());
    for part in body.split(", ") {
        let (k, v) = part.split_once(": ").ok_or_else(bad)?;
        match k {
            "crs" => crs = v.trim_matches('\'').to_string(),
            _ => coords.push(java_double(v)?),
        }
    }
    Ok((crs, coords))
}

/// Whether the judge's text `t` of a scalar means `v`.
fn means(v: &V, t: &str) -> Result<(), String> {
    let differ = || Err(format!("`{t}` does not mean {v:?}"));
    let ok = match v {
        V::Bool(b) => t == b.to_string(),
        V::Int(i) => t.parse::<i64>() == Ok(*i),
        V::Float(f) => same_float(java_double(t)?, *f),
        V::Str(s) => t == s,
        V::Bytes(_) | V::List(_) => unreachable!("not scalars"),
        V::Date(d) => parse_date(t)? == (*d, ""),
        V::LocalTime(tm) => parse_time(t)? == (*tm, ""),
        V::Time(tm, o) => {
            let (got, rest) = parse_time(t)?;
            got == *tm && parse_offset(rest)? == (*o, "")
        }
        V::LocalDateTime(d, tm) => {
            let (gd, rest) = parse_date(t)?;
            let rest = rest.strip_prefix('T').ok_or("no T")?;
            gd == *d && parse_time(rest)? == (*tm, "")
        }
        V::DateTime(d, tm, o) | V::Zoned(d, tm, _, o) => {
            let (gd, rest) = parse_date(t)?;
            let (gt, rest) = parse_time(rest.strip_prefix('T').ok_or("no T")?)?;
            let (go, rest) = parse_offset(rest)?;
            let zone = match v {
                V::Zoned(_, _, z, _) => format!("[{z}]"),
                _ => String::new(),
            };
            (gd, gt, go) == (*d, *tm, *o) && rest == zone
        }
        V::Duration {
            months,
            days,
            secs,
            nanos,
        } => {
            parse_duration(t)?
                == (
                    *months,
                    *days,
                    i128::from(*secs) * 1_000_000_000 + i128::from(*nanos),
                )
        }
        V::Point { crs, x, y, z } => {
            let (gc, coords) = parse_point(t)?;
            let want: Vec<f64> = [Some(*x), Some(*y), *z].into_iter().flatten().collect();
            gc == *crs
                && coords.len() == want.len()
                && coords.iter().zip(&want).all(|(a, b)| same_float(*a, *b))
        }
    };
    if ok { Ok(()) } else { differ() }
}

/// Whether the judge's reading `got` is exactly the generated `v`.
fn check(v: &V, got: &Value) -> Result<(), String> {
    if got.ty != type_name(v) {
        return Err(format!(
            "type `{}`, expected `{}` for {v:?}",
            got.ty,
            type_name(v)
        ));
    }
    match (v, &got.text) {
        (V::Bytes(b), Text::List(items)) => {
            // Neo4j's bytes are Java's, signed.
            let want: Vec<String> = b.iter().map(|x| (*x as i8).to_string()).collect();
            if *items == want {
                Ok(())
            } else {
                Err(format!("{items:?} for {b:?}"))
            }
        }
        (V::List(vs), Text::List(items)) if vs.len() == items.len() => {
            vs.iter().zip(items).try_for_each(|(v, t)| means(v, t))
        }
        (V::List(_) | V::Bytes(_), other) => Err(format!("{other:?} for {v:?}")),
        (_, Text::One(t)) => means(v, t),
        (_, other) => Err(format!("{other:?} for {v:?}")),
    }
}

#[test]
fn the_judge_reads_every_property_type_exactly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = shared_env();
    // No fault test runs meanwhile, and no other test uses this database.
    let _guard = rt.block_on(serial());
    let db = rt.block_on(admin_graph(env, "neo4j-recovery"));
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let props = prop::collection::vec(value(), 1..8);
    runner
        .run(&props, |values| {
            rt.block_on(async {
                db.run(query("MATCH (n) DETACH DELETE n")).await.unwrap();
                let mut q = String::from("CREATE (n:Case {drill_id: 'case'");
                let mut params = Vec::new();
                for (i, v) in values.iter().enumerate() {
                    match literal(v) {
                        Some(l) => q.push_str(&format!(", p{i}: {l}")),
                        None => {
                            q.push_str(&format!(", p{i}: $p{i}"));
                            params.push((format!("p{i}"), v.clone()));
                        }
                    }
                }
                q.push_str("})");
                let mut cypher = query(&q);
                for (name, v) in params {
                    let V::Bytes(b) = v else { unreachable!() };
                    cypher = cypher.param(
                        &name,
                        neo4rs::BoltType::Bytes(neo4rs::BoltBytes::new(b.into())),
                    );
                }
                db.run(cypher)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
                let g = read(&db).await.unwrap();
                let node = &g.nodes["case"];
                for (i, v) in values.iter().enumerate() {
                    let got = node
                        .props
                        .get(&format!("p{i}"))
                        .ok_or_else(|| TestCaseError::fail(format!("p{i} missing: {q}")))?;
                    check(v, got).map_err(|e| TestCaseError::fail(format!("p{i}: {e}\n{q}")))?;
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn the_oracle_parses_what_neo4j_documents() {
    assert_eq!(parse_duration("PT-0.5S"), Ok((0, 0, -500_000_000)));
    assert_eq!(
        parse_duration("P1M-2DT2.999999996S"),
        Ok((1, -2, 2_999_999_996))
    );
    assert_eq!(
        parse_duration("PT-24H-59M-59.000000001S"),
        Ok((0, 0, -(24 * 3600 + 59 * 60 + 59) * 1_000_000_000 - 1))
    );
    assert_eq!(parse_date("+10000-01-01"), Ok((Date(10000, 1, 1), "")));
    assert_eq!(parse_date("-0044-03-15"), Ok((Date(-44, 3, 15), "")));
    assert_eq!(parse_time("23:59"), Ok((Time(23, 59, 0, 0), "")));
    assert_eq!(
        parse_time("00:00:00.5Z"),
        Ok((Time(0, 0, 0, 500_000_000), "Z"))
    );
    assert_eq!(
        parse_offset("-04:56:02[America/New_York]"),
        Ok((-17762, "[America/New_York]"))
    );
    assert!(same_float(java_double("4.9E-324").unwrap(), 5e-324));
    assert!(!same_float(java_double("0.0").unwrap(), -0.0));
    assert!(means(&V::Float(f64::NAN), "NaN").is_ok());
    assert!(
        means(
            &V::Duration {
                months: 0,
                days: 0,
                secs: -1,
                nanos: 500_000_000
            },
            "PT-0.5S"
        )
        .is_ok()
    );
    assert!(
        means(
            &V::Duration {
                months: 0,
                days: 0,
                secs: 0,
                nanos: 500_000_000
            },
            "PT-0.5S"
        )
        .is_err()
    );
}
