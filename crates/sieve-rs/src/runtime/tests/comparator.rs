/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use std::{borrow::Cow, cmp::Ordering, sync::Arc};

use crate::{
    MatchAs,
    compiler::{
        Number, Value,
        grammar::{Comparator, RelationalMatch},
    },
    runtime::Variable,
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

    pub(crate) fn regex(
        &self,
        pattern: &Value,
        pattern_expr: &Variable,
        value: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        if let Value::Regex(regex) = pattern {
            let lazy_regex = regex.regex.0.load();
            if let Some(regex) = lazy_regex.as_ref() {
                eval_regex(regex, value, capture_positions, captured_values)
            } else {
                match fancy_regex::Regex::new(&regex.expr) {
                    Ok(fancy_regex) => {
                        let result =
                            eval_regex(&fancy_regex, value, capture_positions, captured_values);
                        regex.regex.0.store(Arc::new(Some(fancy_regex)));
                        result
                    }
                    Err(err) => {
                        debug_assert!(false, "Failed to compile regex: {err:?}");
                        false
                    }
                }
            }
        } else {
            match fancy_regex::Regex::new(pattern_expr.to_string().as_ref()) {
                Ok(regex) => eval_regex(&regex, value, capture_positions, captured_values),
                Err(err) => {
                    debug_assert!(false, "Failed to compile regex: {err:?}");
                    false
                }
            }
        }
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

fn eval_regex(
    regex: &fancy_regex::Regex,
    value: &str,
    mut capture_positions: u64,
    captured_values: &mut Vec<(usize, String)>,
) -> bool {
    if capture_positions == 0 {
        regex.is_match(value).unwrap_or_default()
    } else if let Ok(Some(captures)) = regex.captures(value) {
        captured_values.clear();
        while capture_positions != 0 {
            let index = 63 - capture_positions.leading_zeros();
            capture_positions ^= 1 << index;
            if let Some(match_var) = captures.get(index as usize) {
                captured_values.push((index as usize, match_var.as_str().to_string()));
            }
        }
        // A match that captured none of the requested groups still
        // replaces the list of matched strings (RFC 5229 3.2).
        if captured_values.is_empty() {
            captured_values.push((0, captures[0].to_string()));
        }
        true
    } else {
        false
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
