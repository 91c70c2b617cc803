//! Where encoders write: either a buffer, or a counter that only adds up sizes. Every encoder
//! is written once against [`Sink`], so the computed length always equals what is written.

use bytes::{BufMut, BytesMut};

use super::properties::WriteProperties;
use super::varint;
use crate::error::EncodeError;

/// A destination for encoded fields.
pub(crate) trait Sink {
    /// Writes properties whose size, `len`, is already known (a counter just adds it).
    fn put_properties<P: WriteProperties + ?Sized>(
        &mut self,
        p: &P,
        len: usize,
    ) -> Result<(), EncodeError>;

    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A big-endian two byte integer.
    fn put_u16(&mut self, v: u16);
    /// A big-endian four byte integer.
    fn put_u32(&mut self, v: u32);
    /// Raw bytes.
    fn put_slice(&mut self, v: &[u8]);
    /// A variable byte integer that has been checked to be at most [`varint::MAX`].
    fn put_varint_unchecked(&mut self, v: u32);

    /// A variable byte integer; lengths over the maximum make the packet too large.
    fn put_varint(&mut self, v: usize) -> Result<(), EncodeError> {
        match u32::try_from(v) {
            Ok(v) if v <= varint::MAX => {
                self.put_varint_unchecked(v);
                Ok(())
            }
            _ => Err(EncodeError::PacketTooLarge),
        }
    }

    /// A UTF-8 string with its two byte length.
    fn put_str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.put_binary(s.as_bytes())
    }

    /// Binary data with its two byte length.
    fn put_binary(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(b.len()).map_err(|_| EncodeError::StringTooLong)?;
        self.put_u16(len);
        self.put_slice(b);
        Ok(())
    }
}

/// Counts bytes instead of writing them.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    #[inline]
    fn put_properties<P: WriteProperties + ?Sized>(
        &mut self,
        _: &P,
        len: usize,
    ) -> Result<(), EncodeError> {
        self.0 += len;
        Ok(())
    }
    #[inline]
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }
    #[inline]
    fn put_u16(&mut self, _: u16) {
        self.0 += 2;
    }
    #[inline]
    fn put_u32(&mut self, _: u32) {
        self.0 += 4;
    }
    #[inline]
    fn put_slice(&mut self, v: &[u8]) {
        self.0 += v.len();
    }
    #[inline]
    fn put_varint_unchecked(&mut self, v: u32) {
        self.0 += varint::len(v as usize);
    }
}

impl Sink for BytesMut {
    #[inline]
    fn put_properties<P: WriteProperties + ?Sized>(
        &mut self,
        p: &P,
        _len: usize,
    ) -> Result<(), EncodeError> {
        p.write_properties(self)
    }
    #[inline]
    fn put_u8(&mut self, v: u8) {
        BufMut::put_u8(self, v);
    }
    #[inline]
    fn put_u16(&mut self, v: u16) {
        BufMut::put_u16(self, v);
    }
    #[inline]
    fn put_u32(&mut self, v: u32) {
        BufMut::put_u32(self, v);
    }
    #[inline]
    fn put_slice(&mut self, v: &[u8]) {
        BufMut::put_slice(self, v);
    }
    #[inline]
    fn put_varint_unchecked(&mut self, v: u32) {
        varint::put(self, v);
    }
}
