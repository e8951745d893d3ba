//! PostgreSQL binary COPY encoding (the `COPY ... FROM STDIN (FORMAT binary)`
//! wire format): a fixed header, then per row a field count and each field
//! as a length-prefixed big-endian value, then a trailer.

use chrono::{DateTime, Utc};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Builds one binary COPY stream in memory.
pub struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 32);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf }
    }

    /// Starts a row of `fields` columns.
    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub fn float8(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
        self
    }

    /// A text value. Strings longer than i32::MAX bytes cannot occur here:
    /// every text field is validated to a few hundred bytes first.
    pub fn text(&mut self, v: &str) -> &mut Self {
        let len = i32::try_from(v.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf
            .extend_from_slice(&v.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
        self
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub fn timestamptz(&mut self, v: DateTime<Utc>) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        let micros = v.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
        self.buf.extend_from_slice(&micros.to_be_bytes());
        self
    }

    /// Appends the trailer and returns the bytes to send.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_row_and_trailer() {
        let mut c = BinaryCopy::with_capacity(0);
        c.row(2).int8(7).null();
        let bytes = c.finish();
        assert_eq!(&bytes[..11], SIGNATURE);
        // header 19 bytes, field count 2, int8 len 8 + value, null -1, trailer -1
        assert_eq!(bytes.len(), 19 + 2 + 4 + 8 + 4 + 2);
        assert_eq!(&bytes[19..21], &2i16.to_be_bytes());
        assert_eq!(&bytes[25..33], &7i64.to_be_bytes());
        assert_eq!(&bytes[bytes.len() - 2..], &(-1i16).to_be_bytes());
    }

    #[test]
    fn timestamps_count_from_2000() {
        let t = DateTime::parse_from_rfc3339("2000-01-01T00:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut c = BinaryCopy::with_capacity(0);
        c.row(1).timestamptz(t);
        let bytes = c.finish();
        assert_eq!(&bytes[25..33], &1_000_000i64.to_be_bytes());
    }
}
