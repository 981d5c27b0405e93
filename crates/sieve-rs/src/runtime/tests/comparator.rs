/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use std::{borrow::Cow, cmp::Ordering, sync::Arc};

use crate::{
    Context, MatchAs,
    compiler::{
        Number, Regex, Value,
        grammar::{Comparator, RelationalMatch},
    },
    runtime::{
        Variable,
        posix_regex::{PosixRegex, thread_cpu_time},
    },
};

use super::glob::GlobPattern;

pub(crate) trait Comparable {
    fn to_str(&'_ self) -> Cow<'_, str>;
}

impl Comparator {
    pub(crate) fn is(&self, a: &impl Comparable, b: &impl Comparable) -> bool {
        match self {
            Comparator::Octet => a.to_str() == b.to_str(),
            Comparator::AsciiNumeric => {
                ascii_numeric_cmp(a.to_str().as_ref(), b.to_str().as_ref()) == Ordering::Equal
            }
            _ => a.to_str().to_lowercase() == b.to_str().to_lowercase(),
        }
    }

    pub(crate) fn contains(&self, haystack: &str, needle: &str) -> bool {
        needle.is_empty()
            || match self {
                Comparator::Octet => haystack.contains(needle),
                _ => haystack.to_lowercase().contains(&needle.to_lowercase()),
            }
    }

    pub(crate) fn relational(
        &self,
        relation: &RelationalMatch,
        a: &impl Comparable,
        b: &impl Comparable,
    ) -> bool {
        match self {
            Comparator::Octet => relation.cmp(a.to_str().as_ref(), b.to_str().as_ref()),
            Comparator::AsciiNumeric => relation.cmp(
                &ascii_numeric_cmp(a.to_str().as_ref(), b.to_str().as_ref()),
                &Ordering::Equal,
            ),
            _ => relation.cmp(&a.to_str().to_lowercase(), &b.to_str().to_lowercase()),
        }
    }

    /// Compares the number of values a `:count` match found with a key
    /// (RFC 5231, section 4.2); with "i;ascii-numeric" the key is read as
    /// that comparator reads it (RFC 4790, section 9.1.1).
    pub(crate) fn count(&self, relation: &RelationalMatch, count: i64, key: &Variable) -> bool {
        match self {
            Comparator::AsciiNumeric => relation.cmp(
                &ascii_numeric_cmp(&count.to_string(), key.to_string().as_ref()),
                &Ordering::Equal,
            ),
            _ => relation.cmp(&Number::from(count), &key.to_number()),
        }
    }

    pub(crate) fn matches(
        &self,
        value: &str,
        pattern: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        let pattern = GlobPattern::compile(pattern, matches!(self, Comparator::AsciiCaseMap));
        match self {
            Comparator::AsciiCaseMap if capture_positions == 0 => pattern.matches(value),
            Comparator::AsciiCaseMap => pattern.capture(value, capture_positions, captured_values),
            _ if capture_positions == 0 => pattern.matches(value),
            _ => pattern.capture(value, capture_positions, captured_values),
        }
    }

    /// `:regex`: `pattern` is the key as compiled with the script (a
    /// `Value::Regex` when it is a constant), `pattern_expr` its value.
    /// On a match, the match variables in `capture_positions` are set from
    /// the match: `${0}` the whole match, `${1}`.. the groups, empty for a
    /// group that took no part in it. A key that does not compile (one
    /// taken from a variable) does not match, as in Pigeonhole (which
    /// logs it). Time spent here is charged to the script's `:regex`
    /// budget; once it is spent, nothing more is matched and the script
    /// is stopped (see `Context::run`).
    pub(crate) fn regex(
        &self,
        ctx: &Context,
        pattern: &Value,
        pattern_expr: &Variable,
        value: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        let compiled = match pattern {
            Value::Regex(regex) => Some(regex),
            _ => None,
        };
        self.regex_with(
            ctx,
            compiled,
            || pattern_expr.to_string(),
            value,
            capture_positions,
            captured_values,
        )
    }

    /// `:regex` with a key that was not compiled with the script.
    pub(crate) fn regex_str(
        &self,
        ctx: &Context,
        pattern: &str,
        value: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        self.regex_with(
            ctx,
            None,
            || pattern.into(),
            value,
            capture_positions,
            captured_values,
        )
    }

    fn regex_with<'p>(
        &self,
        ctx: &Context,
        compiled: Option<&Regex>,
        pattern_expr: impl FnOnce() -> Cow<'p, str>,
        value: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        let icase = match self {
            Comparator::AsciiCaseMap => true,
            Comparator::Octet => false,
            // Refused when the script is compiled.
            _ => return false,
        };
        if ctx.regex_budget_spent() {
            return false;
        }
        let started = thread_cpu_time();
        let cached = if let Some(regex) = compiled {
            let loaded = regex.regex.0.load_full();
            match loaded.as_ref() {
                Some(compiled) if compiled.icase() == icase => Some(loaded),
                _ => match PosixRegex::new(&regex.expr, icase) {
                    Ok(compiled) => {
                        let compiled = Arc::new(Some(compiled));
                        regex.regex.0.store(compiled.clone());
                        Some(compiled)
                    }
                    Err(_) => None,
                },
            }
        } else {
            PosixRegex::new(pattern_expr().as_ref(), icase)
                .ok()
                .map(|compiled| Arc::new(Some(compiled)))
        };
        let values = (u64::BITS - capture_positions.leading_zeros()) as usize;
        let found = cached
            .as_ref()
            .and_then(|compiled| compiled.as_ref().as_ref())
            .and_then(|compiled| compiled.find(value, values));
        ctx.charge_regex(thread_cpu_time().saturating_sub(started));

        let Some(found) = found else {
            return false;
        };
        if capture_positions != 0 {
            captured_values.clear();
            let mut positions = capture_positions;
            while positions != 0 {
                let index = 63 - positions.leading_zeros();
                positions ^= 1 << index;
                captured_values.push((
                    index as usize,
                    found.get(index as usize).cloned().unwrap_or_default(),
                ));
            }
        }
        true
    }

    pub(crate) fn as_match(&self) -> MatchAs {
        match self {
            Comparator::AsciiCaseMap => MatchAs::Lowercase,
            Comparator::AsciiNumeric => MatchAs::Number,
            _ => MatchAs::Octet,
        }
    }
}

/// Orders two strings as the "i;ascii-numeric" collation does (RFC 4790,
/// section 9.1.1): a string's value is the number spelled by its leading
/// digits, of any length; a string that does not begin with a digit is
/// positive infinity, equal to any other such string and greater than any
/// number.
fn ascii_numeric_cmp(a: &str, b: &str) -> Ordering {
    fn digits(s: &str) -> Option<&str> {
        let len = s.bytes().take_while(u8::is_ascii_digit).count();
        (len > 0).then(|| s[..len].trim_start_matches('0'))
    }

    match (digits(a), digits(b)) {
        (Some(a), Some(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl Comparable for Variable {
    fn to_str(&'_ self) -> Cow<'_, str> {
        self.to_string()
    }
}

impl Comparable for &str {
    fn to_str(&'_ self) -> Cow<'_, str> {
        (*self).into()
    }
}

impl RelationalMatch {
    pub fn cmp<T>(&self, a: &T, b: &T) -> bool
    where
        T: PartialOrd + ?Sized,
    {
        match self {
            RelationalMatch::Gt => a.gt(b),
            RelationalMatch::Ge => a.ge(b),
            RelationalMatch::Lt => a.lt(b),
            RelationalMatch::Le => a.le(b),
            RelationalMatch::Eq => a.eq(b),
            RelationalMatch::Ne => a.ne(b),
        }
    }
}
