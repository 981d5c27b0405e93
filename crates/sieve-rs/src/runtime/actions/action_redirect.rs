/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use mail_parser::{DateTime, HeaderName};

use crate::{
    Context, Event, Recipient,
    compiler::grammar::actions::action_redirect::{ByTime, Redirect},
    runtime::RuntimeError,
};

impl Redirect {
    pub(crate) fn exec(&self, ctx: &mut Context) -> Result<(), RuntimeError> {
        let address = ctx.eval_value(&self.address).to_string().into_owned();
        let address = if self.list {
            address
        } else {
            // RFC 5228 2.4.2.3: "It is an error for a script to execute an
            // action with a value for use as an outbound address that
            // doesn't match the "sieve-address" syntax."
            sanitize_address(&address).ok_or(RuntimeError::InvalidAddress(address))?
        };

        if ctx.num_redirects < ctx.runtime.max_redirects
            && ctx.num_out_messages < ctx.runtime.max_out_messages
            && ctx.message.parts[0]
                .headers
                .iter()
                .filter(|h| matches!(&h.name, HeaderName::Received))
                .count()
                < ctx.runtime.max_received_headers
        {
            // Try to avoid forwarding loops
            if !self.list && address.eq_ignore_ascii_case(ctx.user_address.as_ref()) {
                return Ok(());
            }

            if !self.copy && matches!(&ctx.final_event, Some(Event::Keep { .. })) {
                ctx.final_event = None;
            }

            let mut events = Vec::with_capacity(2);
            if let Some(event) = ctx.build_message_id() {
                events.push(event);
            }
            ctx.num_redirects += 1;
            ctx.num_out_messages += 1;
            events.push(Event::SendMessage {
                recipient: if !self.list {
                    Recipient::Address(address)
                } else {
                    Recipient::List(address)
                },
                notify: self.notify.clone(),
                return_of_content: self.return_of_content.clone(),
                by_time: match &self.by_time {
                    ByTime::Relative {
                        rlimit,
                        mode,
                        trace,
                    } => ByTime::Relative {
                        rlimit: *rlimit,
                        mode: mode.clone(),
                        trace: *trace,
                    },
                    ByTime::Absolute {
                        alimit,
                        mode,
                        trace,
                    } => ByTime::Absolute {
                        alimit: DateTime::parse_rfc3339(
                            ctx.eval_value(alimit).to_string().as_ref(),
                        )
                        .and_then(|d| {
                            if d.is_valid() {
                                d.to_timestamp().into()
                            } else {
                                None
                            }
                        })
                        .unwrap_or(0),
                        mode: mode.clone(),
                        trace: *trace,
                    },
                    ByTime::None => ByTime::None,
                },
                message_id: ctx.main_message_id,
            });
            ctx.queued_events = events.into_iter();
        }
        Ok(())
    }
}

/// The addr-spec of `addr` (a quoted local part without its quotes), or
/// `None` when `addr` is not a "sieve-address" (RFC 5228 2.4.2.3): an
/// addr-spec, alone or as `phrase "<" addr-spec ">"`, with white space and
/// comments around its parts (RFC 5322 3.4). Like Pigeonhole, the local
/// part may have dots at its ends or in a row (RFC 5322 4.4) and a domain
/// needs no dot (`user@localhost`); UTF-8 is allowed in both (RFC 6532 3.2).
pub(crate) fn sanitize_address(addr: &str) -> Option<String> {
    let tokens = tokenize_address(addr)?;
    let addr_spec = match tokens
        .iter()
        .position(|t| matches!(t, AddrToken::Special('<')))
    {
        Some(start)
            if tokens[..start]
                .iter()
                .all(|t| matches!(t, AddrToken::Word(..) | AddrToken::Special('.')))
                && matches!(tokens.last(), Some(AddrToken::Special('>'))) =>
        {
            &tokens[start + 1..tokens.len() - 1]
        }
        Some(_) => return None,
        None => &tokens[..],
    };
    let at = addr_spec
        .iter()
        .position(|t| matches!(t, AddrToken::Special('@')))?;

    let mut local_part = String::new();
    let mut has_word = false;
    let mut last_was_word = false;
    for token in &addr_spec[..at] {
        match token {
            AddrToken::Word(word, _) if !last_was_word => {
                local_part.push_str(word);
                has_word = true;
                last_was_word = true;
            }
            AddrToken::Special('.') => {
                local_part.push('.');
                last_was_word = false;
            }
            _ => return None,
        }
    }
    if !has_word || local_part.is_empty() {
        return None;
    }

    let domain = match &addr_spec[at + 1..] {
        [AddrToken::Literal(literal)] => format!("[{literal}]"),
        [AddrToken::Word(label, false), labels @ ..] => {
            let mut domain = label.clone();
            for pair in labels.chunks(2) {
                if let [AddrToken::Special('.'), AddrToken::Word(label, false)] = pair {
                    domain.push('.');
                    domain.push_str(label);
                } else {
                    return None;
                }
            }
            domain
        }
        _ => return None,
    };

    Some(format!("{local_part}@{domain}"))
}

enum AddrToken {
    /// An atom, or the content of a quoted string (`true`)
    Word(String, bool),
    /// The content of a domain literal
    Literal(String),
    Special(char),
}

fn tokenize_address(addr: &str) -> Option<Vec<AddrToken>> {
    let mut tokens = Vec::new();
    let mut chars = addr.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            ' ' | '\t' | '\r' | '\n' => (),
            '(' => {
                let mut depth = 1;
                while depth > 0 {
                    match chars.next()? {
                        '\\' => {
                            chars.next()?;
                        }
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => (),
                    }
                }
            }
            '"' => {
                let mut word = String::new();
                loop {
                    match chars.next()? {
                        '\\' => word.push(chars.next()?),
                        '"' => break,
                        ch => word.push(ch),
                    }
                }
                tokens.push(AddrToken::Word(word, true));
            }
            '[' => {
                let mut literal = String::new();
                loop {
                    match chars.next()? {
                        ']' => break,
                        '[' | '\\' => return None,
                        ch => literal.push(ch),
                    }
                }
                tokens.push(AddrToken::Literal(literal));
            }
            ch if is_atext(ch) => {
                let mut word = String::from(ch);
                while let Some(&ch) = chars.peek()
                    && is_atext(ch)
                {
                    word.push(ch);
                    chars.next();
                }
                tokens.push(AddrToken::Word(word, false));
            }
            ch => tokens.push(AddrToken::Special(ch)),
        }
    }
    Some(tokens)
}

fn is_atext(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(ch) || !ch.is_ascii()
}
