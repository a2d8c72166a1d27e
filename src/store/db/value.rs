//! Parameters and column values, for both backends.

use std::borrow::Cow;

use postgres::types::{FromSql, IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{DbError, DbResult};

/// The PostgreSQL type of a NULL parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NullType {
    Int,
    Real,
    Text,
    Blob,
}

/// One bound parameter.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    Null(NullType),
    Int(i64),
    Real(f64),
    Text(&'a str),
    /// A user name or session id (see [`crate::names`]): SQLite stores the exact
    /// bytes it came from, as TEXT compared byte for byte; PostgreSQL, whose TEXT must
    /// be UTF-8, stores the escaped form, which is just as injective.
    Name {
        bytes: Cow<'a, [u8]>,
        text: &'a str,
    },
    Blob(&'a [u8]),
}

impl Value<'_> {
    pub(crate) fn pg_type(&self) -> Type {
        match self {
            Value::Null(NullType::Int) | Value::Int(_) => Type::INT8,
            Value::Null(NullType::Real) | Value::Real(_) => Type::FLOAT8,
            Value::Null(NullType::Text) | Value::Text(_) | Value::Name { .. } => Type::TEXT,
            Value::Null(NullType::Blob) | Value::Blob(_) => Type::BYTEA,
        }
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null(_) => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Name { bytes, .. } => ValueRef::Text(bytes),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null(_) => Ok(IsNull::Yes),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Real(v) => v.to_sql(ty, out),
            Value::Text(s) | Value::Name { text: s, .. } => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    /// The statement is prepared with [`Value::pg_type`], so the types always agree.
    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Something that binds as a parameter (object safe, for `params![]`).
pub(crate) trait ToValue {
    fn to_value(&self) -> Value<'_>;
}

/// The type a `None` of this binds as.
pub(crate) trait NullKind {
    const KIND: NullType;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
        impl NullKind for $t {
            const KIND: NullType = NullType::Int;
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8, usize, u64);

impl ToValue for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}
impl NullKind for bool {
    const KIND: NullType = NullType::Int;
}

impl ToValue for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}
impl NullKind for f64 {
    const KIND: NullType = NullType::Real;
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl NullKind for str {
    const KIND: NullType = NullType::Text;
}

impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl NullKind for String {
    const KIND: NullType = NullType::Text;
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl NullKind for [u8] {
    const KIND: NullType = NullType::Blob;
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl NullKind for Vec<u8> {
    const KIND: NullType = NullType::Blob;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl<T: NullKind + ?Sized> NullKind for &T {
    const KIND: NullType = T::KIND;
}

impl<T: ToValue + NullKind> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null(T::KIND),
        }
    }
}

impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        self.clone()
    }
}

/// A column value read into Rust.
pub(crate) trait FromDb: Sized {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self>;
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self>;
}

fn pg<'a, T: FromSql<'a>>(r: &'a postgres::Row, i: usize) -> DbResult<T> {
    r.try_get(i).map_err(|e| DbError::Column {
        index: i,
        message: e.to_string(),
    })
}

/// Any PostgreSQL integer, numeric or boolean (SUM gives NUMERIC, comparisons BOOLEAN),
/// as i64; NUMERIC beyond i64 saturates and its fraction is dropped.
struct PgInt(i64);

impl<'a> FromSql<'a> for PgInt {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgInt(match *ty {
            Type::INT8 => i64::from_sql(ty, raw)?,
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(ty, raw)? as i64,
            Type::FLOAT4 => f32::from_sql(ty, raw)? as i64,
            Type::NUMERIC => numeric_to_i64(raw)?,
            _ => return Err(format!("cannot read {ty} as an integer").into()),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::OID
                | Type::BOOL
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::NUMERIC
        )
    }
}

/// NUMERIC's binary form: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric_to_i64(raw: &[u8]) -> Result<i64, Box<dyn std::error::Error + Sync + Send>> {
    let word = |k: usize| -> Result<i16, String> {
        raw.get(2 * k..2 * k + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "short NUMERIC".to_string())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i64;
    let sign = word(2)? as u16;
    if sign == 0xC000 {
        return Err("NUMERIC NaN".into());
    }
    let mut v: i128 = 0;
    // Digits 0..=weight are the integer part.
    for k in 0..=weight.max(-1) {
        let d = if (k as usize) < ndigits {
            word(4 + k as usize)? as i128
        } else {
            0
        };
        v = v.saturating_mul(10_000).saturating_add(d);
    }
    let v = if sign == 0x4000 { -v } else { v };
    Ok(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

impl FromDb for i64 {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        match pg::<Option<PgInt>>(r, i)? {
            Some(v) => Ok(v.0),
            None => Err(DbError::Column {
                index: i,
                message: "NULL where an integer was expected".into(),
            }),
        }
    }
}

impl FromDb for Option<i64> {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(pg::<Option<PgInt>>(r, i)?.map(|v| v.0))
    }
}

fn narrow<T: TryFrom<i64>>(v: i64, i: usize) -> DbResult<T> {
    T::try_from(v).map_err(|_| DbError::Column {
        index: i,
        message: format!("{v} is out of range"),
    })
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromDb for $t {
            fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
                Ok(r.get(i)?)
            }
            fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
                narrow(i64::from_postgres(r, i)?, i)
            }
        }
        impl FromDb for Option<$t> {
            fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
                Ok(r.get(i)?)
            }
            fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
                Option::<i64>::from_postgres(r, i)?.map(|v| narrow(v, i)).transpose()
            }
        }
    )*};
}
narrow_int!(i32, u32, u16, u8, usize);

impl FromDb for bool {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(i64::from_postgres(r, i)? != 0)
    }
}

impl FromDb for f64 {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        let ty = r.columns()[i].type_();
        match *ty {
            Type::FLOAT8 => pg::<f64>(r, i),
            Type::FLOAT4 => Ok(pg::<f32>(r, i)?.into()),
            _ => Ok(i64::from_postgres(r, i)? as f64),
        }
    }
}

impl FromDb for Option<f64> {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        if is_null(r, i) {
            return Ok(None);
        }
        f64::from_postgres(r, i).map(Some)
    }
}

/// Whether the column is NULL, whatever its type.
pub(super) fn is_null(r: &postgres::Row, i: usize) -> bool {
    struct Raw;
    impl<'a> FromSql<'a> for Raw {
        fn from_sql(
            _: &Type,
            _: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Raw)
        }
        fn accepts(_: &Type) -> bool {
            true
        }
    }
    matches!(r.try_get::<_, Option<Raw>>(i), Ok(None))
}

impl FromDb for String {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg(r, i)
    }
}

impl FromDb for Option<String> {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg(r, i)
    }
}

impl FromDb for Vec<u8> {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg(r, i)
    }
}

impl FromDb for Option<Vec<u8>> {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(r.get(i)?)
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        pg(r, i)
    }
}

/// A counter: never negative, never unreadable. SQLite may hold a REAL (an
/// overflowing sum of a store written before the sums saturated) or an outside
/// edit's negative value; both are clamped. NULL reads as 0.
pub(crate) struct Count(pub(crate) u64);

impl FromDb for Count {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(Count(match r.get_ref(i)? {
            ValueRef::Integer(v) => u64::try_from(v).unwrap_or(0),
            // `as` saturates float to int (NaN to 0).
            ValueRef::Real(v) => u64::try_from(v as i64).unwrap_or(0),
            ValueRef::Null => 0,
            other => {
                return Err(DbError::Column {
                    index: i,
                    message: format!("a counter cannot be {}", other.data_type()),
                })
            }
        }))
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(Count(
            Option::<i64>::from_postgres(r, i)?.map_or(0, |v| u64::try_from(v).unwrap_or(0)),
        ))
    }
}

/// A name column written through [`Value::Name`] (SQLite: or by hand, as BLOB); NULL
/// reads as "".
pub(crate) struct NameCol(pub(crate) String);

impl FromDb for NameCol {
    fn from_sqlite(r: &rusqlite::Row<'_>, i: usize) -> DbResult<Self> {
        Ok(NameCol(match r.get_ref(i)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => crate::names::decode(b),
            ValueRef::Null => String::new(),
            other => {
                return Err(DbError::Column {
                    index: i,
                    message: format!("a name cannot be {}", other.data_type()),
                })
            }
        }))
    }
    fn from_postgres(r: &postgres::Row, i: usize) -> DbResult<Self> {
        Ok(NameCol(pg::<Option<String>>(r, i)?.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::numeric_to_i64;

    fn numeric(weight: i16, sign: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [digits.len() as i16, weight, sign as i16, 0] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_integer_part() {
        for (weight, sign, digits, want) in [
            (0, 0, vec![42], 42),
            (1, 0, vec![1, 2345], 12345),
            (1, 0x4000, vec![1, 0], -10000),
            // 12.5: weight 0, digits [12, 5000]
            (0, 0, vec![12, 5000], 12),
            // 0.5: weight -1
            (-1, 0, vec![5000], 0),
            // 10^8 as [1] with weight 2 (trailing zero digits omitted)
            (2, 0, vec![1], 100_000_000),
            // beyond i64 saturates
            (6, 0, vec![1], i64::MAX),
        ] {
            assert_eq!(
                numeric_to_i64(&numeric(weight, sign, &digits)).unwrap(),
                want
            );
        }
        assert!(numeric_to_i64(&numeric(0, 0xC000, &[])).is_err());
    }
}
