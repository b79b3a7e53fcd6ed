//! The record stream (docs/format.md, "Record stream"), read only as far
//! as the judge needs: every record and value must parse, end to end, and
//! the records are counted by kind. Damaged input gives an error with its
//! offset, never a panic.

/// Records of each kind in a stream, as a manifest counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Counts {
    pub nodes: u64,
    pub rels: u64,
    /// Node and relationship deletions together.
    pub deletions: u64,
    pub schema: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record stream at byte {offset}: {message}")]
pub struct StreamError {
    pub offset: usize,
    pub message: String,
}

/// Lists nest at most this deep in the judge's reading (Neo4j's are flat).
const MAX_DEPTH: usize = 8;

/// Parses every record of `stream` and counts them.
pub fn count(stream: &[u8]) -> Result<Counts, StreamError> {
    let mut r = Reader { buf: stream, at: 0 };
    let mut counts = Counts::default();
    while r.at < stream.len() {
        match r.u8()? {
            b'N' => {
                r.str()?;
                for _ in 0..r.u32()? {
                    r.str()?;
                }
                r.props()?;
                counts.nodes += 1;
            }
            b'R' => {
                for _ in 0..4 {
                    r.str()?; // id, type, start, end
                }
                r.props()?;
                counts.rels += 1;
            }
            b'X' | b'Y' => {
                r.str()?;
                counts.deletions += 1;
            }
            b'S' => {
                r.str()?;
                counts.schema += 1;
            }
            t => return Err(r.error(format!("unknown record tag 0x{t:02x}"))),
        }
    }
    Ok(counts)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, message: String) -> StreamError {
        StreamError {
            offset: self.at,
            message,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.error(format!("{n} bytes wanted, the stream ends first")));
        };
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, StreamError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StreamError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str(&mut self) -> Result<&'a str, StreamError> {
        let n = self.u32()? as usize;
        let at = self.at;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|e| StreamError {
            offset: at,
            message: format!("a string is not UTF-8: {e}"),
        })
    }

    fn props(&mut self) -> Result<(), StreamError> {
        for _ in 0..self.u32()? {
            self.str()?;
            self.value(0)?;
        }
        Ok(())
    }

    /// One tagged value (the table in docs/format.md).
    fn value(&mut self, depth: usize) -> Result<(), StreamError> {
        let tag = self.u8()?;
        let fixed = match tag {
            0x01 => match self.u8()? {
                0 | 1 => 0,
                b => return Err(self.error(format!("a bool byte is {b}"))),
            },
            0x02 | 0x03 | 0x07 | 0x08 => 8, // int, float, date, local time
            0x09 => 8 + 4,                  // time: nanos, offset
            0x0A => 8 + 4,                  // local date-time: secs, nanos
            0x0B => 8 + 4 + 4,              // date-time: secs, nanos, offset
            0x0C => {
                self.take(8 + 4)?;
                self.str()?; // zone id
                0
            }
            0x0D => 8 * 3 + 4, // duration: months, days, secs, nanos
            0x0E => 4 + 8 * 2, // point 2D: srid, x, y
            0x0F => 4 + 8 * 3, // point 3D: srid, x, y, z
            0x04 => {
                self.str()?;
                0
            }
            0x05 => self.u32()? as usize, // bytes
            0x06 => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(format!("lists nested deeper than {MAX_DEPTH}")));
                }
                for _ in 0..self.u32()? {
                    self.value(depth + 1)?;
                }
                0
            }
            t => return Err(self.error(format!("unknown value tag 0x{t:02x}"))),
        };
        self.take(fixed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A node with one property of every fixed-size kind, a relationship, a
    /// deletion and a schema line, laid out as docs/format.md says.
    fn stream() -> Vec<u8> {
        let mut s = vec![b'N'];
        str(&mut s, "n1");
        s.extend_from_slice(&1u32.to_le_bytes());
        str(&mut s, "Person");
        s.extend_from_slice(&3u32.to_le_bytes());
        str(&mut s, "a");
        s.push(0x0D);
        s.extend_from_slice(&[0; 28]);
        str(&mut s, "b");
        s.push(0x0C);
        s.extend_from_slice(&[0; 12]);
        str(&mut s, "Europe/Stockholm");
        str(&mut s, "c");
        s.push(0x06);
        s.extend_from_slice(&2u32.to_le_bytes());
        s.push(0x01);
        s.push(1);
        s.push(0x01);
        s.push(0);
        s.push(b'R');
        for part in ["r1", "KNOWS", "n1", "n1"] {
            str(&mut s, part);
        }
        s.extend_from_slice(&0u32.to_le_bytes());
        s.push(b'X');
        str(&mut s, "n0");
        s.push(b'S');
        str(&mut s, "CREATE INDEX i FOR (n:Person) ON (n.name)");
        s
    }

    #[test]
    fn every_record_kind_is_counted() {
        let counts = count(&stream()).unwrap();
        assert_eq!(
            counts,
            Counts {
                nodes: 1,
                rels: 1,
                deletions: 1,
                schema: 1
            }
        );
        assert_eq!(count(&[]).unwrap(), Counts::default());
    }

    #[test]
    fn a_cut_stream_fails_at_every_length_with_its_offset() {
        let s = stream();
        for len in 1..s.len() {
            // A cut at a record boundary is a shorter valid stream.
            if let Err(e) = count(&s[..len]) {
                assert!(e.offset <= len, "{e}");
            }
        }
        assert!(count(&s[..s.len() - 1]).is_err());
    }

    #[test]
    fn an_unknown_tag_or_bad_bool_is_named() {
        let err = count(b"Z").unwrap_err();
        assert!(err.message.contains("0x5a"), "{err}");
        let mut s = vec![b'N'];
        str(&mut s, "n");
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&1u32.to_le_bytes());
        str(&mut s, "p");
        s.extend_from_slice(&[0x01, 7]);
        let err = count(&s).unwrap_err();
        assert!(err.message.contains("bool byte is 7"), "{err}");
    }
}
