//! Single-range requests (RFC 9110 §14): what part of a representation a `Range` header asks for.
//!
//! Pure, so every edge case is unit- and property-tested. Only one range is honoured; a header
//! with several, or one that does not parse, is ignored and the whole representation is sent, as
//! RFC 9110 allows.

/// What to send for a representation of `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    Full,
    /// Bytes `start..start + len`.
    Partial {
        start: u64,
        len: u64,
    },
    Unsatisfiable,
}

pub fn resolve(header: Option<&str>, length: u64) -> RangeOutcome {
    let Some(spec) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("bytes="))
        .map(str::trim)
    else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // "-N": the last N bytes.
        return match number(last) {
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(suffix) => {
                let len = suffix.min(length);
                RangeOutcome::Partial {
                    start: length - len,
                    len,
                }
            }
            None => RangeOutcome::Full,
        };
    }
    let Some(start) = number(first) else {
        return RangeOutcome::Full;
    };
    // "N-" runs to the end; "N-M" must not run backwards.
    let end = match (last.is_empty(), number(last)) {
        (true, _) => u64::MAX,
        (false, Some(end)) if end >= start => end,
        _ => return RangeOutcome::Full,
    };
    if start >= length {
        return RangeOutcome::Unsatisfiable;
    }
    let end = end.min(length - 1);
    RangeOutcome::Partial {
        start,
        len: end - start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_9110_examples() {
        let p = |start, len| Partial { start, len };
        assert_eq!(resolve(Some("bytes=0-499"), 10000), p(0, 500));
        assert_eq!(resolve(Some("bytes=500-999"), 10000), p(500, 500));
        assert_eq!(resolve(Some("bytes=-500"), 10000), p(9500, 500));
        assert_eq!(resolve(Some("bytes=9500-"), 10000), p(9500, 500));
        assert_eq!(resolve(Some("bytes=0-0"), 10000), p(0, 1));
        assert_eq!(resolve(Some("bytes=-1"), 10000), p(9999, 1));
        assert_eq!(resolve(Some("bytes=0-99999"), 10000), p(0, 10000));
        assert_eq!(resolve(Some("bytes=-20000"), 10000), p(0, 10000));
    }

    #[test]
    fn unsatisfiable_and_ignored_headers() {
        assert_eq!(resolve(Some("bytes=10000-"), 10000), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=10000-20000"), 10000), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 10000), Unsatisfiable);
        for ignored in [
            None,
            Some("bytes=5-1"),
            Some("bytes=0-1,5-6"),
            Some("items=0-1"),
            Some("bytes=abc"),
            Some("bytes=-"),
            Some("bytes=1-x"),
            Some("bytes=+1-2"),
        ] {
            assert_eq!(resolve(ignored, 10000), Full, "{ignored:?}");
        }
    }

    proptest! {
        #[test]
        fn partial_ranges_always_lie_inside(header in "\\PC{0,30}", length in 1u64..1_000_000) {
            if let Partial { start, len } = resolve(Some(&header), length) {
                prop_assert!(len >= 1 && start + len <= length);
            }
        }

        #[test]
        fn well_formed_ranges_resolve(start in 0u64..2000, extra in 0u64..2000, length in 1u64..3000) {
            let header = format!("bytes={start}-{}", start + extra);
            let outcome = resolve(Some(&header), length);
            if start >= length {
                prop_assert_eq!(outcome, Unsatisfiable);
            } else {
                let len = (start + extra).min(length - 1) - start + 1;
                prop_assert_eq!(outcome, Partial { start, len });
            }
        }
    }
}
