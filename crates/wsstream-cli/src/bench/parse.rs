//! Parsers of the `bench` flags: sizes with binary suffixes, durations with units, rates.

use std::time::Duration;

/// Largest message size accepted: the default `max_message_size` of wsstream (and of
/// `wsstream serve`), 64 MiB.
pub(crate) const MAX_SIZE: usize = 64 << 20;

/// A size in bytes: `32`, `1k`, `64KiB`, `1m`, `1MB` (the suffixes are powers of 1024:
/// `k`, `kb`, `kib` = 1,024; `m`, `mb`, `mib` = 1,048,576; `b` = 1), at most 64 MiB.
pub(crate) fn parse_size(value: &str) -> Result<usize, String> {
    let lower = value.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, suffix) = lower.split_at(split);
    let multiplier: usize = match suffix.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => {
            return Err(format!(
                "unknown size suffix {other:?} in {value:?} (use k or m, powers of 1024)"
            ));
        }
    };
    let number: usize = digits
        .parse()
        .map_err(|_| format!("expected a size such as 32, 1k or 64k, got {value:?}"))?;
    let size = number
        .checked_mul(multiplier)
        .filter(|&size| size <= MAX_SIZE)
        .ok_or_else(|| format!("{value:?} is larger than 64 MiB"))?;
    Ok(size)
}

/// A duration: `10s`, `500ms`, `2m`, `1h`, `1.5s`; a bare number is seconds. Must be
/// more than zero.
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 10s or 500ms, got {value:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {value:?} (use ms, s, m or h)"
            ));
        }
    };
    let duration = Duration::try_from_secs_f64(seconds)
        .map_err(|e| format!("invalid duration {value:?}: {e}"))?;
    if duration.is_zero() {
        return Err(format!("the duration {value:?} must be more than zero"));
    }
    Ok(duration)
}

/// A rate in messages per second: a positive number (decimals allowed).
pub(crate) fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("expected messages per second, got {value:?}"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("the rate {value:?} must be a positive number"));
    }
    Ok(rate)
}

/// A count of at least one (connections, pipeline depth).
pub(crate) fn parse_positive(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a positive whole number, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32").unwrap(), 32);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2MB").unwrap(), 2 << 20);
        assert_eq!(parse_size("10b").unwrap(), 10);
        assert_eq!(parse_size("64m").unwrap(), MAX_SIZE);
        assert!(parse_size("65m").is_err());
        assert!(parse_size("1g").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(parse_rate("1000").unwrap(), 1000.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_positive("4").unwrap(), 4);
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("-2").is_err());
    }
}
