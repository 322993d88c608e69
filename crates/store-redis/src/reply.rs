//! Reading the scripts' replies: a tag, then fields.
//!
//! Scripts reply with Lua tables, which Redis sends as arrays: strings as
//! bulk strings, numbers as integers, `false` as nil. Anything else is a
//! reply this build does not understand, reported as such.

use std::collections::HashMap;

use redis::{FromRedisValue, Value};

use crate::error::Failure;

/// A script's reply: its tag and the fields after it.
pub(crate) struct Reply {
    pub(crate) tag: Vec<u8>,
    fields: Vec<Value>,
}

impl Reply {
    /// Splits a script's array reply into tag and fields.
    pub(crate) fn parse(value: Value) -> Result<Self, Failure> {
        let Value::Array(mut items) = value else {
            return Err(unexpected("a script reply that is not an array", &value));
        };
        if items.is_empty() {
            return Err(Failure::Reply("an empty script reply".to_owned()));
        }
        let fields = items.split_off(1);
        let tag = bytes(&items[0])?.to_vec();
        Ok(Self { tag, fields })
    }

    /// Field `n` (0 is the first after the tag) as bytes.
    pub(crate) fn bytes(&self, n: usize) -> Result<&[u8], Failure> {
        self.field(n).and_then(bytes)
    }

    /// Field `n` as an integer.
    pub(crate) fn int(&self, n: usize) -> Result<i64, Failure> {
        self.field(n).and_then(int)
    }

    /// The tag as text, for messages.
    pub(crate) fn tag_text(&self) -> String {
        String::from_utf8_lossy(&self.tag).into_owned()
    }

    fn field(&self, n: usize) -> Result<&Value, Failure> {
        self.fields.get(n).ok_or_else(|| {
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

/// An integer reply.
pub(crate) fn int(value: &Value) -> Result<i64, Failure> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(unexpected("an integer", other)),
    }
}

/// A list of strings (`ZRANGEBYSCORE`, `ZRANGEBYLEX`).
pub(crate) fn strings(value: Value) -> Result<Vec<String>, Failure> {
    Vec::<String>::from_redis_value(value).map_err(|e| Failure::Reply(e.to_string()))
}

/// A hash (`HGETALL`).
pub(crate) fn hash(value: Value) -> Result<HashMap<Vec<u8>, Vec<u8>>, Failure> {
    HashMap::<Vec<u8>, Vec<u8>>::from_redis_value(value).map_err(|e| Failure::Reply(e.to_string()))
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
