//! Reading the scripts' replies: a tag, then fields.
//!
//! Scripts reply with Lua tables, which Redis sends as arrays: strings as
//! bulk strings, numbers as integers, `false` as nil. Anything else is a
//! reply this build does not understand, reported as such.

use bytes::Bytes;
use redis::{FromRedisValue, Value};

use crate::error::Failure;

/// A script's reply: its tag (item 0) and the fields after it.
pub(crate) struct Reply {
    items: Vec<Value>,
}

impl Reply {
    /// Checks that a script's reply is a non-empty array with a string tag.
    pub(crate) fn parse(value: Value) -> Result<Self, Failure> {
        let Value::Array(items) = value else {
            return Err(unexpected("a script reply that is not an array", &value));
        };
        match items.first() {
            None => Err(Failure::Reply("an empty script reply".to_owned())),
            Some(tag) => {
                bytes(tag)?;
                Ok(Self { items })
            }
        }
    }

    /// The tag.
    pub(crate) fn tag(&self) -> &[u8] {
        // Checked by `parse`.
        bytes(&self.items[0]).unwrap_or_default()
    }

    /// Field `n` (0 is the first after the tag) as bytes.
    pub(crate) fn bytes(&self, n: usize) -> Result<&[u8], Failure> {
        self.field(n).and_then(bytes)
    }

    /// Field `n` as an integer.
    pub(crate) fn int(&self, n: usize) -> Result<i64, Failure> {
        self.field(n).and_then(int)
    }

    /// Field `n` as owned bytes, taken out of the reply without a copy.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, Failure> {
        self.field(n)?;
        take_bytes(std::mem::replace(&mut self.items[n + 1], Value::Nil))
    }

    /// The tag as text, for messages.
    pub(crate) fn tag_text(&self) -> String {
        String::from_utf8_lossy(self.tag()).into_owned()
    }

    fn field(&self, n: usize) -> Result<&Value, Failure> {
        self.items.get(n + 1).ok_or_else(|| {
            Failure::Reply(format!(
                "the script reply {} has no field {n}",
                self.tag_text()
            ))
        })
    }
}

/// A bulk or simple string (nil reads as empty).
pub(crate) fn bytes(value: &Value) -> Result<&[u8], Failure> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        Value::Nil => Ok(&[]),
        other => Err(unexpected("a string", other)),
    }
}

/// A bulk string as owned bytes, without a copy; `None` for nil (`GET` of
/// a missing key).
pub(crate) fn optional_bytes(value: Value) -> Result<Option<Bytes>, Failure> {
    match value {
        Value::Nil => Ok(None),
        other => take_bytes(other).map(Some),
    }
}

fn take_bytes(value: Value) -> Result<Bytes, Failure> {
    match value {
        Value::BulkString(b) => Ok(Bytes::from(b)),
        other => bytes(&other).map(Bytes::copy_from_slice),
    }
}

/// An integer reply.
pub(crate) fn int(value: &Value) -> Result<i64, Failure> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(unexpected("an integer", other)),
    }
}

/// A list of binary strings (`ZRANGEBYSCORE`).
pub(crate) fn byte_strings(value: Value) -> Result<Vec<Vec<u8>>, Failure> {
    Vec::<Vec<u8>>::from_redis_value(value).map_err(|e| Failure::Reply(e.to_string()))
}

fn unexpected(wanted: &str, got: &Value) -> Failure {
    // The kind only: a value may be a stored body, not for error messages.
    let kind = match got {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) => "a status",
        Value::Okay => "OK",
        Value::Map(_) => "a map",
        _ => "another kind of value",
    };
    Failure::Reply(format!("expected {wanted}, got {kind}"))
}

/// The replies of a script run that did `count` operations: an array of
/// one reply each.
pub(crate) fn batch(value: Value, count: usize) -> Result<Vec<Value>, Failure> {
    match value {
        Value::Array(replies) if replies.len() == count => Ok(replies),
        Value::Array(replies) => Err(Failure::Reply(format!(
            "a script run of {count} operations gave {} replies",
            replies.len()
        ))),
        other => Err(unexpected("an array of replies", &other)),
    }
}
