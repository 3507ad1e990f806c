//! The Prometheus text exposition format (version 0.0.4): a parser, a merger and a checker.
//!
//! A worker host's supervisor scrapes each worker process, [`parse`]s the answers, and
//! [`merge`]s them into one answer with a `process` label on every sample and each family's
//! `# HELP` and `# TYPE` written once. [`check`] is the lint tests run on any output (what
//! `promtool check metrics` would reject: malformed samples, a family typed twice or split,
//! histogram buckets that are not cumulative).

use std::collections::HashMap;
use std::fmt::Write as _;

/// One metric family: its comments and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name (a histogram's, without `_bucket`/`_sum`/`_count`).
    pub name: String,
    /// The `# HELP` text, escaped as it was read.
    pub help: Option<String>,
    /// The `# TYPE`: counter, gauge, histogram, summary or untyped.
    pub kind: Option<String>,
    /// Its sample lines, in order.
    pub samples: Vec<Sample>,
}

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name (`x_bucket` for a histogram `x`).
    pub name: String,
    /// Label names and values (values escaped as written).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The value (and timestamp, if any) as written.
    pub raw_value: String,
}

impl Sample {
    /// The unescaped value of label `name`.
    pub fn label(&self, name: &str) -> Option<String> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| unescape(v))
    }
}

/// A line that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The line.
    pub text: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one sample line.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        loop {
            while chars.next_if(|(_, c)| *c == ' ' || *c == ',').is_some() {}
            match chars.peek() {
                Some((i, '}')) => {
                    end = Some(*i);
                    break;
                }
                None => break,
                _ => {}
            }
            let start = chars.peek().map(|(i, _)| *i).unwrap_or(after.len());
            while chars.next_if(|(_, c)| is_name_char(*c)).is_some() {}
            let eq = chars.peek().map(|(i, _)| *i).unwrap_or(after.len());
            let label = &after[start..eq];
            if !valid_name(label) || label.starts_with("__") {
                return Err(format!("invalid label name {label:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("label {label} has no quoted value"));
            }
            let value_start = chars.peek().map(|(i, _)| *i).unwrap_or(after.len());
            let mut value_end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        value_end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let value_end = value_end.ok_or("unterminated label value")?;
            labels.push((label.to_owned(), after[value_start..value_end].to_owned()));
        }
        let end = end.ok_or("unterminated label set")?;
        rest = &after[end + 1..];
    }
    let raw_value = rest.trim();
    let mut parts = raw_value.split_whitespace();
    let value = parts.next().ok_or("no value")?;
    let value: f64 = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("invalid value {v:?}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("invalid timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text after the value".into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _)) = labels.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(format!("label {dup} given twice"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        raw_value: raw_value.to_owned(),
    })
}

/// Whether `sample` belongs to family `family` of type `kind`.
fn belongs(sample: &str, family: &str, kind: Option<&str>) -> bool {
    if sample == family {
        return true;
    }
    let Some(suffix) = sample.strip_prefix(family) else {
        return false;
    };
    match kind {
        Some("histogram") => matches!(suffix, "_bucket" | "_sum" | "_count"),
        Some("summary") => matches!(suffix, "_sum" | "_count"),
        _ => false,
    }
}

/// Parses exposition text into families, in order. A family's samples must follow its
/// comments; a sample with no family before it starts an untyped family.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |reason: String| ParseError {
            line: n + 1,
            reason,
            text: line.to_owned(),
        };
        let line_trimmed = line.trim();
        if line_trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = line_trimmed.strip_prefix('#') {
            let comment = comment.trim_start();
            let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if !valid_name(name) {
                return Err(err(format!("invalid metric name {name:?} in # {keyword}")));
            }
            let needs_new = families.last().is_none_or(|f| f.name != name);
            if needs_new {
                families.push(Family {
                    name: name.to_owned(),
                    help: None,
                    kind: None,
                    samples: Vec::new(),
                });
            }
            let family = families.last_mut().expect("pushed above");
            if keyword == "HELP" {
                if family.help.is_some() {
                    return Err(err(format!("second # HELP for {name}")));
                }
                family.help = Some(value.to_owned());
            } else {
                if family.kind.is_some() {
                    return Err(err(format!("second # TYPE for {name}")));
                }
                if !family.samples.is_empty() {
                    return Err(err(format!("# TYPE for {name} after its samples")));
                }
                let kind = value.trim();
                if !matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(err(format!("unknown type {kind:?}")));
                }
                family.kind = Some(kind.to_owned());
            }
            continue;
        }
        let sample = parse_sample(line_trimmed).map_err(err)?;
        match families.last_mut() {
            Some(f) if belongs(&sample.name, &f.name, f.kind.as_deref()) => f.samples.push(sample),
            _ => families.push(Family {
                name: sample.name.clone(),
                help: None,
                kind: None,
                samples: vec![sample],
            }),
        }
    }
    Ok(families)
}

/// Renders families as exposition text.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        if let Some(help) = &f.help {
            let _ = writeln!(out, "# HELP {} {help}", f.name);
        }
        if let Some(kind) = &f.kind {
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        }
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{value}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", s.raw_value);
        }
    }
    out
}

/// Merges several sources into one family list: every sample gets `label="<source>"` first
/// in its label set, each family appears once (with the first source's HELP and TYPE) and
/// holds the samples of every source, in source order.
pub fn merge(label: &str, sources: Vec<(String, Vec<Family>)>) -> Vec<Family> {
    let mut merged: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (source, families) in sources {
        let escaped = source
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        for family in families {
            let i = *index.entry(family.name.clone()).or_insert_with(|| {
                merged.push(Family {
                    name: family.name.clone(),
                    help: family.help.clone(),
                    kind: family.kind.clone(),
                    samples: Vec::new(),
                });
                merged.len() - 1
            });
            for mut sample in family.samples {
                sample.labels.retain(|(name, _)| name != label);
                sample.labels.insert(0, (label.to_owned(), escaped.clone()));
                merged[i].samples.push(sample);
            }
        }
    }
    merged
}

/// Checks text as `promtool check metrics` would for structure: it parses, no family is
/// typed twice or appears in two places, a counter's samples end in `_total`, and a
/// histogram's buckets are cumulative and end with `+Inf` equal to its `_count`.
pub fn check(text: &str) -> Result<Vec<Family>, String> {
    let families = parse(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    for f in &families {
        if !seen.insert(f.name.as_str()) {
            return Err(format!("family {} appears twice", f.name));
        }
        if f.kind.is_none() {
            return Err(format!("family {} has no # TYPE", f.name));
        }
        let mut series = std::collections::HashSet::new();
        for s in &f.samples {
            let mut key: Vec<_> = s.labels.clone();
            key.sort();
            if !series.insert((s.name.clone(), key)) {
                return Err(format!("series {}{:?} given twice", s.name, s.labels));
            }
        }
        match f.kind.as_deref() {
            Some("counter") if !f.name.ends_with("_total") => {
                return Err(format!("counter {} does not end in _total", f.name));
            }
            Some("histogram") => check_histogram(f)?,
            _ => {}
        }
    }
    Ok(families)
}

fn check_histogram(f: &Family) -> Result<(), String> {
    type Series = Vec<(String, String)>;
    let mut buckets: HashMap<Series, Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<Series, f64> = HashMap::new();
    for s in &f.samples {
        let mut key: Series = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le")
            .cloned()
            .collect();
        key.sort();
        if s.name.ends_with("_bucket") {
            let le = s
                .label("le")
                .ok_or_else(|| format!("{} bucket without le", f.name))?;
            let le: f64 = match le.as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().map_err(|_| format!("{}: bad le {v:?}", f.name))?,
            };
            buckets.entry(key).or_default().push((le, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert(key, s.value);
        }
    }
    for (key, bs) in &buckets {
        for pair in bs.windows(2) {
            if pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1 {
                return Err(format!(
                    "{}{key:?}: buckets not increasing and cumulative",
                    f.name
                ));
            }
        }
        match bs.last() {
            Some((le, n)) if le.is_infinite() => {
                if counts.get(key) != Some(n) {
                    return Err(format!(
                        "{}{key:?}: +Inf bucket differs from _count",
                        f.name
                    ));
                }
            }
            _ => return Err(format!("{}{key:?}: no +Inf bucket", f.name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = r#"# HELP longhaul_jobs_total Job events.
# TYPE longhaul_jobs_total counter
longhaul_jobs_total{kind="generation",outcome="started"} 3
# HELP longhaul_http_requests_total Requests.
# TYPE longhaul_http_requests_total counter
longhaul_http_requests_total{route="/v1/jobs/{id}",status="200"} 2
# HELP d Duration.
# TYPE d histogram
d_bucket{le="0.5"} 1
d_bucket{le="+Inf"} 2
d_sum 1.5
d_count 2
"#;

    #[test]
    fn it_parses_labels_with_braces_and_escapes_and_histograms_as_one_family() {
        let families = parse(CHILD).unwrap();
        assert_eq!(families.len(), 3);
        assert_eq!(
            families[1].samples[0].label("route").as_deref(),
            Some("/v1/jobs/{id}")
        );
        assert_eq!(families[2].samples.len(), 4);
        let s = parse_sample(r#"x{a="q\"}\\",b="2"} 1.5e3"#).unwrap();
        assert_eq!(s.label("a").as_deref(), Some("q\"}\\"));
        assert_eq!(s.value, 1500.0);
        assert!(parse_sample("x{a=1} 1").is_err());
        assert!(parse_sample("x 1 2 3").is_err());
        assert!(parse_sample("1x 1").is_err());
        assert!(parse("# TYPE x counter\n# TYPE x gauge\n").is_err());
    }

    #[test]
    fn merging_labels_each_source_and_writes_each_family_once() {
        let merged = merge(
            "process",
            vec![
                ("0".into(), parse(CHILD).unwrap()),
                ("1".into(), parse(CHILD).unwrap()),
            ],
        );
        let text = render(&merged);
        assert_eq!(
            text.matches("# TYPE longhaul_jobs_total counter").count(),
            1
        );
        assert_eq!(text.matches("# HELP d Duration.").count(), 1);
        assert!(text.contains(
            "longhaul_jobs_total{process=\"1\",kind=\"generation\",outcome=\"started\"} 3"
        ));
        assert!(text.contains("d_bucket{process=\"0\",le=\"+Inf\"} 2"));
        check(&text).unwrap();
    }

    #[test]
    fn the_check_rejects_what_promtool_would() {
        check(CHILD).unwrap();
        let split = "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\na 2\n";
        assert!(check(split).is_err());
        let not_cumulative = "# TYPE d histogram\nd_bucket{le=\"1\"} 3\nd_bucket{le=\"+Inf\"} 2\nd_count 2\nd_sum 1\n";
        assert!(check(not_cumulative).is_err());
        let bad_count = "# TYPE d histogram\nd_bucket{le=\"+Inf\"} 2\nd_count 3\nd_sum 1\n";
        assert!(check(bad_count).is_err());
        assert!(check("# TYPE c counter\nc 1\n").is_err());
        assert!(check("# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n").is_err());
    }
}
