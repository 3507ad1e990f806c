//! Fault-injection directives: parsing `{{stub key=value ...}}` out of a user message.
//!
//! A directive may appear anywhere in the last user message. It is removed from the
//! text the stub echoes back. Several directives in one message are merged (later keys
//! win). Unknown keys and bad values are errors, so typos in a test show up loudly.

use std::fmt;

/// Marker that opens a directive.
const OPEN: &str = "{{stub";
/// Marker that closes a directive.
const CLOSE: &str = "}}";

/// Faults requested by one completion request. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directive {
    /// Sleep this long before answering; overrides the global latency.
    pub latency_ms: Option<u64>,
    /// Statuses answered by the job's calls 1, 2, ... in order; later calls succeed.
    pub fail: Vec<u16>,
    /// Status answered by every call.
    pub status: Option<u16>,
    /// `Retry-After` seconds added to 429 and 5xx fault answers.
    pub retry_after: Option<u64>,
    /// Never answer.
    pub hang: bool,
    /// Answer 200 with a body that is not valid JSON.
    pub malformed: bool,
    /// Start a global outage lasting this long (only the first one counts).
    pub outage_ms: Option<u64>,
}

/// A message split into its echoed text and its merged directive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The message with every directive removed, trimmed.
    pub text: String,
    /// The merged directive (default when the message has none).
    pub directive: Directive,
}

/// A directive that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveError(String);

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad stub directive: {}", self.0)
    }
}

impl std::error::Error for DirectiveError {}

/// Splits `content` into text and directive.
///
/// `{{stub` must be followed by whitespace or `}}`; an unterminated `{{stub` is plain text.
pub fn extract(content: &str) -> Result<Parsed, DirectiveError> {
    let mut directive = Directive::default();
    let mut text = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = find_open(rest) {
        let body_start = start + OPEN.len();
        let Some(body_len) = rest[body_start..].find(CLOSE) else {
            break;
        };
        text.push_str(&rest[..start]);
        apply(&mut directive, &rest[body_start..body_start + body_len])?;
        rest = &rest[body_start + body_len + CLOSE.len()..];
    }
    text.push_str(rest);
    Ok(Parsed {
        text: text.trim().to_owned(),
        directive,
    })
}

/// Byte offset of the next real directive opener in `s`.
fn find_open(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = s[from..].find(OPEN) {
        let at = from + pos;
        let after = &s[at + OPEN.len()..];
        if after.starts_with(CLOSE) || after.starts_with(char::is_whitespace) {
            return Some(at);
        }
        from = at + OPEN.len();
    }
    None
}

/// Applies the `key=value` pairs of one directive body.
fn apply(directive: &mut Directive, body: &str) -> Result<(), DirectiveError> {
    for pair in body.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| DirectiveError(format!("expected key=value, got `{pair}`")))?;
        match key {
            "latency_ms" => directive.latency_ms = Some(number(key, value)?),
            "fail" => {
                directive.fail = value
                    .split(',')
                    .map(|s| status(key, s))
                    .collect::<Result<_, _>>()?;
            }
            "status" => directive.status = Some(status(key, value)?),
            "retry_after" => directive.retry_after = Some(number(key, value)?),
            "hang" => directive.hang = boolean(key, value)?,
            "malformed" => directive.malformed = boolean(key, value)?,
            "outage_ms" => directive.outage_ms = Some(number(key, value)?),
            _ => return Err(DirectiveError(format!("unknown key `{key}`"))),
        }
    }
    Ok(())
}

fn number(key: &str, value: &str) -> Result<u64, DirectiveError> {
    value
        .parse()
        .map_err(|_| DirectiveError(format!("`{key}` wants a whole number, got `{value}`")))
}

fn status(key: &str, value: &str) -> Result<u16, DirectiveError> {
    match value.parse::<u16>() {
        Ok(code @ 400..=599) => Ok(code),
        _ => Err(DirectiveError(format!(
            "`{key}` wants HTTP statuses 400..=599, got `{value}`"
        ))),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, DirectiveError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(DirectiveError(format!(
            "`{key}` wants true or false, got `{value}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_directive() {
        let parsed = extract("  hello world ").unwrap();
        assert_eq!(parsed.text, "hello world");
        assert_eq!(parsed.directive, Directive::default());
    }

    #[test]
    fn parses_every_key_and_strips_it() {
        let parsed = extract(
            "say hi {{stub latency_ms=5 fail=500,429 status=400 retry_after=2 hang=true malformed=1 outage_ms=30}} now",
        )
        .unwrap();
        assert_eq!(parsed.text, "say hi  now");
        assert_eq!(
            parsed.directive,
            Directive {
                latency_ms: Some(5),
                fail: vec![500, 429],
                status: Some(400),
                retry_after: Some(2),
                hang: true,
                malformed: true,
                outage_ms: Some(30),
            }
        );
    }

    #[test]
    fn directive_anywhere_and_merged() {
        let parsed = extract("{{stub fail=503}}a{{stub}}b {{stub latency_ms=1 fail=502}}").unwrap();
        assert_eq!(parsed.text, "ab");
        assert_eq!(parsed.directive.fail, vec![502]);
        assert_eq!(parsed.directive.latency_ms, Some(1));
    }

    #[test]
    fn lookalikes_stay_text() {
        let parsed = extract("{{stubby x}} and {{stub hang=true").unwrap();
        assert_eq!(parsed.text, "{{stubby x}} and {{stub hang=true");
        assert!(!parsed.directive.hang);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(extract("{{stub fail=200}}").is_err());
        assert!(extract("{{stub fail=500, 500}}").is_err());
        assert!(extract("{{stub latency=5}}").is_err());
        assert!(extract("{{stub hang=maybe}}").is_err());
        assert!(extract("{{stub latency_ms=-1}}").is_err());
    }
}
