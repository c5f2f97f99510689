//! Result-set and COPY metadata views: RowDescription, DataRow, ParameterDescription, Copy*Response.

use super::body::{BodyReader, OidList};
use crate::error::ProtocolError;

/// Bytes of a RowDescription field after its name.
const FIELD_FIXED_LEN: usize = 18;

/// One column of a RowDescription; also the input of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// Column name in the server encoding.
    pub name: &'a [u8],
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number in the source table, or 0.
    pub column_id: i16,
    /// OID of the data type.
    pub type_oid: u32,
    /// `pg_type.typlen` (negative for variable width).
    pub type_size: i16,
    /// `pg_attribute.atttypmod`.
    pub type_modifier: i32,
    /// 0 = text, 1 = binary.
    pub format: i16,
}

/// A validated RowDescription body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDescription<'a> {
    field_count: u16,
    fields: &'a [u8],
}

impl<'a> RowDescription<'a> {
    /// Checks every field of a RowDescription body; trailing bytes are an error.
    pub fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut reader = BodyReader::new(body);
        let field_count = reader.u16("RowDescription field count")?;
        let fields = reader.rest();
        for _ in 0..field_count {
            reader.cstr("RowDescription field name")?;
            reader.bytes(FIELD_FIXED_LEN, "RowDescription field")?;
        }
        reader.finish("RowDescription length")?;
        Ok(Self {
            field_count,
            fields,
        })
    }

    /// Number of columns.
    pub const fn field_count(&self) -> u16 {
        self.field_count
    }

    /// The columns in order.
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter {
            reader: BodyReader::new(self.fields),
            remaining: self.field_count,
        }
    }
}

/// Iterator over the columns of a validated [`RowDescription`].
#[derive(Clone)]
pub struct FieldIter<'a> {
    reader: BodyReader<'a>,
    remaining: u16,
}

impl<'a> FieldIter<'a> {
    fn read_field(&mut self) -> Result<FieldDescription<'a>, ProtocolError> {
        let reader = &mut self.reader;
        Ok(FieldDescription {
            name: reader.cstr("field name")?,
            table_oid: reader.u32("table oid")?,
            column_id: reader.i16("column id")?,
            type_oid: reader.u32("type oid")?,
            type_size: reader.i16("type size")?,
            type_modifier: reader.i32("type modifier")?,
            format: reader.i16("format")?,
        })
    }
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = FieldDescription<'a>;

    fn next(&mut self) -> Option<FieldDescription<'a>> {
        self.remaining = self.remaining.checked_sub(1)?;
        self.read_field().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

/// A validated DataRow body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRow<'a> {
    column_count: u16,
    columns: &'a [u8],
}

impl<'a> DataRow<'a> {
    /// Checks every column length of a DataRow body; trailing bytes are an error.
    pub fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut reader = BodyReader::new(body);
        let column_count = reader.u16("DataRow column count")?;
        let columns = reader.rest();
        for _ in 0..column_count {
            read_value(&mut reader)?;
        }
        reader.finish("DataRow length")?;
        Ok(Self {
            column_count,
            columns,
        })
    }

    /// Number of columns.
    pub const fn column_count(&self) -> u16 {
        self.column_count
    }

    /// Column values in order; `None` is SQL NULL.
    pub fn values(&self) -> ValueIter<'a> {
        ValueIter {
            reader: BodyReader::new(self.columns),
            remaining: self.column_count,
        }
    }
}

/// Reads an `Int32 length` + bytes value; -1 is NULL.
pub(crate) fn read_value<'a>(
    reader: &mut BodyReader<'a>,
) -> Result<Option<&'a [u8]>, ProtocolError> {
    let len = reader.i32("value length")?;
    match usize::try_from(len) {
        Ok(len) => reader.bytes(len, "value").map(Some),
        Err(_) if len == -1 => Ok(None),
        Err(_) => Err(ProtocolError::invalid("value length")),
    }
}

/// Iterator over the values of a validated [`DataRow`].
#[derive(Clone)]
pub struct ValueIter<'a> {
    reader: BodyReader<'a>,
    remaining: u16,
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Option<&'a [u8]>> {
        self.remaining = self.remaining.checked_sub(1)?;
        read_value(&mut self.reader).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

/// A validated ParameterDescription body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterDescription<'a> {
    types: &'a [u8],
}

impl<'a> ParameterDescription<'a> {
    /// Checks that the count matches the OIDs present.
    pub fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut reader = BodyReader::new(body);
        let count = reader.u16("ParameterDescription count")?;
        let types = reader.bytes(usize::from(count) * 4, "ParameterDescription types")?;
        reader.finish("ParameterDescription length")?;
        Ok(Self { types })
    }

    /// Parameter type OIDs in order.
    pub fn types(&self) -> OidList<'a> {
        OidList::from_validated(self.types)
    }
}

/// A validated CopyInResponse / CopyOutResponse / CopyBothResponse body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyResponse<'a> {
    /// Overall format: 0 = text, 1 = binary.
    pub format: u8,
    column_formats: &'a [u8],
}

impl<'a> CopyResponse<'a> {
    /// Checks the overall format byte and the per-column format list.
    pub fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut reader = BodyReader::new(body);
        let format = reader.u8("COPY format")?;
        let count = reader.u16("COPY column count")?;
        let column_formats = reader.bytes(usize::from(count) * 2, "COPY column formats")?;
        reader.finish("COPY response length")?;
        Ok(Self {
            format,
            column_formats,
        })
    }

    /// Number of columns.
    pub fn column_count(&self) -> usize {
        self.column_formats.len() / 2
    }

    /// Per-column formats (0 = text, 1 = binary).
    pub fn column_formats(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.column_formats
            .chunks_exact(2)
            .map(|pair| <[u8; 2]>::try_from(pair).map_or(0, i16::from_be_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_description_and_data_row() {
        let body = b"\0\x01id\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0";
        let rows = RowDescription::new(body).unwrap();
        let fields: Vec<_> = rows.fields().collect();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].name, b"id");
        assert_eq!(fields[0].type_oid, 23);
        assert_eq!(fields[0].type_modifier, -1);
        assert!(RowDescription::new(&body[..body.len() - 1]).is_err());

        let row = DataRow::new(b"\0\x02\0\0\0\x011\xff\xff\xff\xff").unwrap();
        assert_eq!(row.values().collect::<Vec<_>>(), [Some(&b"1"[..]), None]);
        assert!(DataRow::new(b"\0\x01\xff\xff\xff\xfe").is_err());
        assert!(DataRow::new(b"\0\x01\0\0\0\x02x").is_err());
    }

    #[test]
    fn copy_and_parameter_description() {
        let copy = CopyResponse::new(b"\0\0\x02\0\0\0\x01").unwrap();
        assert_eq!(copy.column_formats().collect::<Vec<_>>(), [0, 1]);
        assert!(CopyResponse::new(b"\0\0\x02\0\0").is_err());
        let params = ParameterDescription::new(b"\0\x01\0\0\0\x19").unwrap();
        assert_eq!(params.types().collect::<Vec<_>>(), [25]);
    }
}
