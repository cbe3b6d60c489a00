//! Valid ranges of numeric settings: one definition per setting, checked
//! the same way for config files (`check`) and command-line flags (the
//! same constant as clap's value parser), with one wording for both.
//!
//! NaN and ±∞ are never in a [`Real`] range unless it says `inf_ok` (then
//! only +∞): a setting that parses as a float is not therefore meaningful.

use std::fmt;

/// A closed (or left-open) interval of `f32` settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Real {
    /// Lower bound.
    pub lo: f32,
    /// Upper bound (finite).
    pub hi: f32,
    /// Whether `lo` itself is excluded.
    pub lo_open: bool,
    /// Whether +∞ is also accepted (e.g. "no limit").
    pub inf_ok: bool,
}

impl Real {
    /// `[lo, hi]`.
    pub const fn closed(lo: f32, hi: f32) -> Real {
        Real {
            lo,
            hi,
            lo_open: false,
            inf_ok: false,
        }
    }

    /// `(lo, hi]`.
    pub const fn above(lo: f32, hi: f32) -> Real {
        Real {
            lo,
            hi,
            lo_open: true,
            inf_ok: false,
        }
    }

    /// The same range, plus +∞.
    pub const fn or_inf(self) -> Real {
        Real {
            inf_ok: true,
            ..self
        }
    }

    /// Whether `v` is valid.
    pub fn contains(&self, v: f32) -> bool {
        if v == f32::INFINITY {
            return self.inf_ok;
        }
        let above_lo = if self.lo_open {
            v > self.lo
        } else {
            v >= self.lo
        };
        // NaN fails both comparisons.
        above_lo && v <= self.hi
    }

    /// `Ok` if `v` is valid, else what is wrong, naming `field`.
    pub fn check(&self, field: &str, v: f32) -> Result<(), String> {
        match self.contains(v) {
            true => Ok(()),
            false => Err(format!("{field} must be in {self}, got {v}")),
        }
    }

    /// Parses a flag value and checks it.
    pub fn parse(&self, s: &str) -> Result<f32, String> {
        let v: f32 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a number", s.escape_debug()))?;
        match self.contains(v) {
            true => Ok(v),
            false => Err(format!("must be in {self}, got {v}")),
        }
    }
}

impl fmt::Display for Real {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.lo_open { '(' } else { '[' };
        write!(f, "{open}{}, {}]", self.lo, self.hi)?;
        if self.inf_ok {
            write!(f, " or inf")?;
        }
        Ok(())
    }
}

/// A closed interval of counts (frames, states, threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// Smallest valid value.
    pub lo: u64,
    /// Largest valid value.
    pub hi: u64,
}

impl Count {
    /// `[lo, hi]`.
    pub const fn new(lo: u64, hi: u64) -> Count {
        Count { lo, hi }
    }

    /// Whether `v` is valid.
    pub fn contains(&self, v: u64) -> bool {
        (self.lo..=self.hi).contains(&v)
    }

    /// `Ok` if `v` is valid, else what is wrong, naming `field`.
    pub fn check(&self, field: &str, v: usize) -> Result<(), String> {
        match self.contains(v as u64) {
            true => Ok(()),
            false => Err(format!("{field} must be in {self}, got {v}")),
        }
    }

    /// Parses a flag value and checks it.
    pub fn parse(&self, s: &str) -> Result<u64, String> {
        let v: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a whole number in {self}", s.escape_debug()))?;
        match self.contains(v) {
            true => Ok(v),
            false => Err(format!("must be in {self}, got {v}")),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.lo, self.hi)
    }
}

/// The ranges as clap value parsers: `#[arg(value_parser = SOME_RANGE)]`
/// rejects out-of-range flags with clap's usage error (exit 2).
#[cfg(feature = "cli")]
mod cli {
    use super::{Count, Real};
    use clap::builder::TypedValueParser;

    // Delegating to clap's own closure parser gives its usual wording:
    // "invalid value 'X' for '--flag <V>': must be in [a, b], got X".
    impl TypedValueParser for Real {
        type Value = f32;
        fn parse_ref(
            &self,
            cmd: &clap::Command,
            arg: Option<&clap::Arg>,
            value: &std::ffi::OsStr,
        ) -> Result<f32, clap::Error> {
            let me = *self;
            (move |s: &str| me.parse(s)).parse_ref(cmd, arg, value)
        }
    }

    impl TypedValueParser for Count {
        type Value = usize;
        fn parse_ref(
            &self,
            cmd: &clap::Command,
            arg: Option<&clap::Arg>,
            value: &std::ffi::OsStr,
        ) -> Result<usize, clap::Error> {
            let me = *self;
            let parse = move |s: &str| {
                me.parse(s)
                    .and_then(|v| usize::try_from(v).map_err(|_| format!("{v} is too large")))
            };
            parse.parse_ref(cmd, arg, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_and_specials() {
        let r = Real::above(0.0, 10.0);
        assert!(!r.contains(0.0) && r.contains(1e-30) && r.contains(10.0));
        assert!(
            !r.contains(f32::NAN) && !r.contains(f32::INFINITY) && !r.contains(f32::NEG_INFINITY)
        );
        assert!(r.or_inf().contains(f32::INFINITY) && !r.or_inf().contains(f32::NAN));
        assert_eq!(r.or_inf().to_string(), "(0, 10] or inf");
        assert_eq!(r.parse("1e400"), Err("must be in (0, 10], got inf".into()));
        assert!(Real::closed(-1.0, 1.0).parse("nan").is_err());
        let c = Count::new(1, 100);
        assert!(c.parse("0").is_err() && c.parse("18446744073709551615").is_err());
        assert!(c.parse("1e3").is_err() && c.parse("-1").is_err());
        assert_eq!(c.parse(" 7"), Ok(7));
    }

    proptest! {
        /// Any f32 is either accepted and inside the range or refused.
        #[test]
        fn real_accepts_only_its_range(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            let r = Real::closed(-5.0, 5.0);
            let ok = r.check("x", v).is_ok();
            prop_assert_eq!(ok, v.is_finite() && (-5.0..=5.0).contains(&v));
            prop_assert_eq!(r.parse(&v.to_string()).is_ok(), ok);
        }

        /// Any count is either accepted and inside the range or refused.
        #[test]
        fn count_accepts_only_its_range(v in any::<u64>()) {
            let c = Count::new(1, 1 << 20);
            prop_assert_eq!(c.parse(&v.to_string()).is_ok(), (1..=1 << 20).contains(&v));
        }
    }
}
