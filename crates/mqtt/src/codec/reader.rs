//! A cursor over one packet's body that checks every length against what is left before
//! taking anything.

use bytes::{Buf, Bytes};

use super::varint::{self, VarIntError};
use crate::error::DecodeError;

/// Reads the fields of a packet body. Slices it hands out share the body's storage.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    /// A reader over `buf`.
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything has been read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::UnexpectedEnd)
        } else {
            Ok(())
        }
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    /// A big-endian two byte integer.
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    /// A big-endian four byte integer.
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match varint::decode(&self.buf) {
            Ok((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            Err(VarIntError::Incomplete) => Err(DecodeError::UnexpectedEnd),
            Err(VarIntError::Malformed) => Err(DecodeError::MalformedVariableInteger),
        }
    }

    /// The next `n` bytes, without copying.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything left, without copying.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Binary data: a two byte length and that many bytes, without copying.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 encoded string: a two byte length and that many bytes of well-formed UTF-8
    /// without U+0000.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        self.need(len)?;
        let s = std::str::from_utf8(&self.buf[..len]).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::InvalidUtf8);
        }
        let s = s.to_owned();
        self.buf.advance(len);
        Ok(s)
    }
}
