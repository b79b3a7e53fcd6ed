//! Property values: every type Neo4j stores.

/// A float compared by its bits, so NaN equals itself and the encoding of
/// -0.0 and 0.0 stays distinct: a backup must give back exactly what it took.
#[derive(Debug, Clone, Copy)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

/// The zone of a DateTime: a fixed offset or a named zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tz {
    /// Seconds east of UTC.
    Offset(i32),
    /// An IANA zone id, e.g. `Europe/Stockholm`.
    Zone(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(Float),
    String(String),
    Bytes(Vec<u8>),
    /// Neo4j stores homogeneous lists; an empty list is allowed.
    List(Vec<Value>),
    /// Days since 1970-01-01.
    Date(i64),
    /// Nanoseconds since midnight.
    LocalTime(i64),
    /// Nanoseconds since midnight, and the offset in seconds east of UTC.
    Time {
        nanos: i64,
        offset_s: i32,
    },
    /// Seconds and nanoseconds since 1970-01-01T00:00, no zone.
    LocalDateTime {
        secs: i64,
        nanos: u32,
    },
    /// Seconds and nanoseconds since the Unix epoch in UTC, and the zone.
    DateTime {
        secs: i64,
        nanos: u32,
        tz: Tz,
    },
    Duration {
        months: i64,
        days: i64,
        secs: i64,
        nanos: i32,
    },
    /// Cartesian (srid 7203) or WGS-84 (srid 4326).
    Point2D {
        srid: u32,
        x: Float,
        y: Float,
    },
    /// Cartesian 3D (srid 9157) or WGS-84 3D (srid 4979).
    Point3D {
        srid: u32,
        x: Float,
        y: Float,
        z: Float,
    },
}
