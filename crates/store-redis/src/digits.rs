//! Fixed-width decimal numbers: how times and fence counters are written in
//! a record.
//!
//! A record's numbers are ASCII decimal, zero-padded to [`WIDTH`] digits
//! (enough for any `u64`). Fixed width lets the Lua scripts find a field by
//! offset (`string.sub`) and read it with `tonumber`, and makes two equal
//! counters equal as strings, which is how the scripts compare fences. It is
//! also readable in `redis-cli`. Binary fields would be shorter, but Lua 5.1
//! cannot read a 64-bit integer from bytes exactly.

/// Digits of one number field: `u64::MAX` has 20.
pub(crate) const WIDTH: usize = 20;

/// `n` as [`WIDTH`] zero-padded decimal digits, without allocating.
pub(crate) fn padded(mut n: u64) -> [u8; WIDTH] {
    let mut out = [b'0'; WIDTH];
    for digit in out.iter_mut().rev() {
        // `n % 10` is below 10, so the cast cannot truncate.
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out
}

/// Reads decimal digits (padded or not): `None` for anything else, an
/// empty field, or a value past `u64::MAX`.
pub(crate) fn parse(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Writes `n` in the fewest digits into `buf` and returns them: for
/// arguments that need no fixed width (a TTL, a score bound).
pub(crate) fn short(n: u64, buf: &mut [u8; WIDTH]) -> &[u8] {
    *buf = padded(n);
    let first = buf.iter().position(|&b| b != b'0').unwrap_or(WIDTH - 1);
    &buf[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_at_full_width() {
        for n in [0, 1, 9, 10, 1_700_000_000_000, u64::MAX] {
            let text = padded(n);
            assert_eq!(text.len(), WIDTH);
            assert_eq!(parse(&text), Some(n), "{n}");
        }
        assert_eq!(&padded(42), b"00000000000000000042");
        assert_eq!(&padded(u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn short_form_drops_leading_zeros_only() {
        let mut buf = [0; WIDTH];
        assert_eq!(short(0, &mut buf), b"0");
        assert_eq!(short(1200, &mut buf), b"1200");
        assert_eq!(short(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn anything_but_digits_is_refused() {
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b" 12",
            b"12a",
            b"18446744073709551616",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
