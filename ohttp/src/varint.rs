//! QUIC variable-length integers (RFC 9000 section 16), as Binary HTTP and
//! chunked OHTTP frame their fields: 1, 2, 4 or 8 bytes, the top two bits of
//! the first byte saying which.

use crate::Error;

/// The largest value a varint holds.
pub const MAX: u64 = (1 << 62) - 1;

/// Appends `value` in its shortest encoding. Values above [`MAX`] cannot
/// be encoded; callers only pass lengths of buffers in memory.
pub fn put(out: &mut Vec<u8>, value: u64) {
    debug_assert!(value <= MAX, "varints hold at most 62 bits");
    if value < 1 << 6 {
        out.push(value as u8);
    } else if value < 1 << 14 {
        out.extend_from_slice(&(0x4000 | value as u16).to_be_bytes());
    } else if value < 1 << 30 {
        out.extend_from_slice(&(0x8000_0000 | value as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&(0xc000_0000_0000_0000 | value).to_be_bytes());
    }
}

/// Reads a varint from the front of `input`: its value and the bytes it
/// took, `Ok(None)` if `input` ends inside it.
pub fn get(input: &[u8]) -> Result<Option<(u64, usize)>, Error> {
    let Some(first) = input.first() else {
        return Ok(None);
    };
    let length = 1usize << (first >> 6);
    if input.len() < length {
        return Ok(None);
    }
    let mut value = u64::from(first & 0x3f);
    for byte in &input[1..length] {
        value = (value << 8) | u64::from(*byte);
    }
    Ok(Some((value, length)))
}

/// A cursor over a complete message: every read fails with
/// [`Error::Truncated`] past the end.
pub struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `input` from its start.
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { input, at: 0 }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.at == self.input.len()
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        &self.input[self.at..]
    }

    /// One varint.
    pub fn varint(&mut self) -> Result<u64, Error> {
        let (value, used) = get(self.rest())?.ok_or(Error::Truncated)?;
        self.at += used;
        Ok(value)
    }

    /// `length` bytes.
    pub fn bytes(&mut self, length: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(length).ok_or(Error::Truncated)?;
        let slice = self.input.get(self.at..end).ok_or(Error::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    /// A varint length, then that many bytes, at most `limit`.
    pub fn prefixed(&mut self, limit: usize) -> Result<&'a [u8], Error> {
        let length = self.varint()?;
        if length > limit as u64 {
            return Err(Error::TooLarge);
        }
        self.bytes(length as usize)
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, Error> {
        let bytes = self.bytes(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_their_shortest_form_and_read_back() {
        // RFC 9000 appendix A.1's examples.
        for (value, encoded) in [
            (37u64, &[0x25][..]),
            (15_293, &[0x7b, 0xbd][..]),
            (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d][..]),
            (
                151_288_809_941_952_652,
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..],
            ),
        ] {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out, encoded);
            assert_eq!(get(encoded).unwrap(), Some((value, encoded.len())));
        }
        // A longer form than needed still reads (RFC 9000 allows it).
        assert_eq!(get(&[0x40, 0x25]).unwrap(), Some((37, 2)));
        assert_eq!(get(&[0x7b]).unwrap(), None);
        assert!(matches!(
            Reader::new(&[0x41]).varint(),
            Err(Error::Truncated)
        ));
    }
}
