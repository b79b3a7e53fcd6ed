//! Cypher that moves property values in and out of Neo4j without losing a
//! bit. Neo4j's `epochSeconds` rounds toward zero (an instant 1 ns before
//! the epoch has 0) and overflows for local date-times far from it, so
//! seconds are counted with `duration.inSeconds`, and local date-times go
//! through days and seconds of the day. The Bolt 4 dialect our driver speaks cannot carry every temporal
//! value exactly, so temporal, duration and point values cross the wire as
//! small maps of integers and strings (`{t: 'DT', s, n, z}`), taken apart and
//! put together again by Neo4j itself. Plain scalars and lists of them cross
//! as they are; a property value is never a map, so a map always means one
//! of these encodings.

/// An expression that encodes the single (non-list) value `v`.
fn encode_scalar(v: &str) -> String {
    format!(
        "CASE \
         WHEN valueType({v}) STARTS WITH 'DATE' THEN {{t: 'D', d: duration.inDays(date('1970-01-01'), {v}).days}} \
         WHEN valueType({v}) STARTS WITH 'ZONED DATETIME' THEN {{t: 'DT', s: duration.inSeconds(datetime('1970-01-01T00:00Z'), {v}).seconds, n: {v}.nanosecond, z: {v}.timezone, o: {v}.offsetSeconds}} \
         WHEN valueType({v}) STARTS WITH 'LOCAL DATETIME' THEN {{t: 'LDT', s: duration.inDays(date('1970-01-01'), date({v})).days * 86400 + {v}.hour * 3600 + {v}.minute * 60 + {v}.second, n: {v}.nanosecond}} \
         WHEN valueType({v}) STARTS WITH 'ZONED TIME' THEN {{t: 'T', n: {v}.hour * 3600000000000 + {v}.minute * 60000000000 + {v}.second * 1000000000 + {v}.nanosecond, o: {v}.offsetSeconds}} \
         WHEN valueType({v}) STARTS WITH 'LOCAL TIME' THEN {{t: 'LT', n: {v}.hour * 3600000000000 + {v}.minute * 60000000000 + {v}.second * 1000000000 + {v}.nanosecond}} \
         WHEN valueType({v}) STARTS WITH 'DURATION' THEN {{t: 'DU', m: {v}.months, d: {v}.days, s: {v}.seconds, n: {v}.nanosecondsOfSecond}} \
         WHEN valueType({v}) STARTS WITH 'POINT' THEN {{t: 'P', c: {v}.srid, x: {v}.x, y: {v}.y, z: CASE WHEN {v}.srid IN [4979, 9157] THEN {v}.z END}} \
         ELSE {v} END"
    )
}

/// An expression that encodes the property value `v` (maybe a list).
pub fn encode(v: &str) -> String {
    format!(
        "CASE WHEN valueType({v}) =~ 'LIST<(DATE|ZONED|LOCAL|DURATION|POINT).*' \
         THEN [x IN {v} | {}] ELSE {} END",
        encode_scalar("x"),
        encode_scalar(v)
    )
}

/// An expression that decodes one encoded map `p` back into its value.
fn decode_scalar(p: &str) -> String {
    format!(
        "CASE {p}.t \
         WHEN 'D' THEN date('1970-01-01') + duration({{days: {p}.d}}) \
         WHEN 'DT' THEN datetime({{epochSeconds: {p}.s, nanosecond: {p}.n, timezone: {p}.z}}) \
         WHEN 'LDT' THEN localdatetime({{date: date('1970-01-01') + duration({{days: ({p}.s - (({p}.s % 86400) + 86400) % 86400) / 86400}}), \
                                         time: localtime({{hour: 0}}) + duration({{seconds: (({p}.s % 86400) + 86400) % 86400, nanoseconds: {p}.n}})}}) \
         WHEN 'T' THEN time({{hour: 0, timezone: {p}.z}}) + duration({{nanoseconds: {p}.n}}) \
         WHEN 'LT' THEN localtime({{hour: 0}}) + duration({{nanoseconds: {p}.n}}) \
         WHEN 'DU' THEN duration({{months: {p}.m, days: {p}.d, seconds: {p}.s, nanoseconds: {p}.n}}) \
         WHEN 'P' THEN CASE WHEN {p}.z IS NULL THEN point({{srid: {p}.c, x: {p}.x, y: {p}.y}}) \
                            ELSE point({{srid: {p}.c, x: {p}.x, y: {p}.y, z: {p}.z}}) END \
         END"
    )
}

/// An expression that decodes `p`: an encoded map, or `{t: 'L', l: [maps]}`.
pub fn decode(p: &str) -> String {
    format!(
        "CASE WHEN {p}.t = 'L' THEN [x IN {p}.l | {}] ELSE {} END",
        decode_scalar("x"),
        decode_scalar(p)
    )
}

/// `[[key, encoded value], …]` of an entity's properties, without graph-agent's own.
///
/// Most values are strings, numbers and booleans (or lists of them), which
/// cross as they are: their type is read once and they skip [`encode`].
pub fn encoded_props(entity: &str) -> String {
    let v = format!("{entity}[k]");
    format!(
        "[k IN keys({entity}) WHERE k <> '{id}' | [k, [t IN [valueType({v})] |          CASE WHEN left(t, 1) IN ['S', 'I', 'F', 'B']                 OR left(t, 6) IN ['LIST<S', 'LIST<I', 'LIST<F', 'LIST<B'] THEN {v}          ELSE {} END][0]]]",
        encode(&v),
        id = super::ID_PROPERTY
    )
}
