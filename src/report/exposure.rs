//! `exposure`: one row per readable object, as a table, JSON
//! (`etcd-audit.exposure/v1`, docs/schema/exposure.v1.json) or CSV for a
//! rotation ticket. Names, types and data key names only: never a value.

use std::io::Write;

use serde::Serialize;

use super::{skipped_table, Entry, Skipped};
use crate::audit::exposure::{Exposed, Exposure, Model, Places};

pub const SCHEMA: &str = "etcd-audit.exposure/v1";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
    /// SARIF 2.1.0: one result per readable Secret, rules `exposure-<risk>`.
    Sarif,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    tool_version: &'static str,
    summary: String,
    #[serde(flatten)]
    exposure: &'a Exposure,
    backups: Vec<BackupStatus<'a>>,
    skipped: &'a [Skipped],
}

#[derive(Serialize)]
struct BackupStatus<'a> {
    source: &'a str,
    error: Option<&'a str>,
}

pub fn render(
    out: &mut dyn Write,
    exposure: &Exposure,
    backups: &[Entry<()>],
    skipped: &[Skipped],
    format: Format,
) -> std::io::Result<()> {
    let summary = summary(exposure, backups.len());
    match format {
        Format::Json => {
            let backups = backups
                .iter()
                .map(|b| BackupStatus { source: &b.source, error: b.error.as_deref() })
                .collect();
            let doc = Document {
                schema: SCHEMA,
                tool_version: crate::TOOL_VERSION,
                summary,
                exposure,
                backups,
                skipped,
            };
            super::write_json(out, &doc)
        }
        Format::Sarif => super::write_json(out, &sarif(exposure, backups)),
        Format::Csv => {
            writeln!(out, "risk,resource,namespace,name,key,type,data_keys,exposed_in,still_live,readable_from,backups,reason")?;
            for row in exposure.secrets.iter().chain(&exposure.others) {
                let fields = [
                    row.rank.risk.as_str().to_string(),
                    row.at.resource.clone(),
                    row.at.namespace.clone().unwrap_or_default(),
                    row.at.name.clone(),
                    row.at.key.clone(),
                    row.secret_type.clone().unwrap_or_default(),
                    join(row.data_keys.iter().map(String::as_str)),
                    join(row.exposed_in.iter().map(|p| p.as_str())),
                    row.still_live.to_string(),
                    row.readable_from.to_string(),
                    join(row.backups.iter().map(|b| b.source.as_str())),
                    row.rank.reason.clone(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
            Ok(())
        }
        Format::Table => {
            writeln!(out, "{summary}")?;
            writeln!(out, "assume      {} ({})", exposure.assume, described(exposure.assume))?;
            for b in backups {
                match &b.error {
                    Some(e) => writeln!(out, "error       {}: {e}", b.source)?,
                    None => writeln!(out, "read        {}", b.source)?,
                }
            }
            table(out, "SECRET", &exposure.secrets)?;
            if !exposure.others.is_empty() {
                writeln!(out, "\nOther objects whose data key names look like credentials:")?;
                table(out, "OBJECT", &exposure.others)?;
            }
            out.write_all(skipped_table(skipped).as_bytes())
        }
    }
}

fn table(out: &mut dyn Write, what: &str, rows: &[Exposed]) -> std::io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let name = |r: &Exposed| match (&r.at.namespace, what) {
        (Some(ns), "SECRET") => format!("{ns}/{}", r.at.name),
        (Some(ns), _) => format!("{}/{ns}/{}", r.at.resource, r.at.name),
        (None, _) => r.at.name.clone(),
    };
    let names: Vec<String> = rows.iter().map(name).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.secret_type.as_deref().unwrap_or("-")).collect();
    let width = |v: &[&str], min: usize| v.iter().map(|s| s.len()).max().unwrap_or(0).max(min);
    let (wn, wt) =
        (width(&names.iter().map(String::as_str).collect::<Vec<_>>(), what.len()), width(&types, 4));
    writeln!(out, "\n{:<8}  {what:<wn$}  {:<wt$}  LIVE  EXPOSED IN / DATA KEYS / WHY", "RISK", "TYPE")?;
    for ((row, name), t) in rows.iter().zip(&names).zip(&types) {
        let live = if row.still_live { "yes" } else { "no" };
        writeln!(out, "{:<8}  {name:<wn$}  {t:<wt$}  {live:<4}  {}", row.rank.risk.as_str(), places(row))?;
        let pad = 8 + 2 + wn + 2 + wt + 2 + 4 + 2;
        let keys = row.data_keys.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        writeln!(out, "{:pad$}data keys: {}", "", if keys.is_empty() { "-" } else { &keys })?;
        writeln!(out, "{:pad$}why: {} (readable from --assume {})", "", row.rank.reason, row.readable_from)?;
    }
    Ok(())
}

/// `live 39; history 5; wal #8 #42` over every backup (and which, when several).
fn places(row: &Exposed) -> String {
    let one = |p: &Places| {
        let revs =
            |s: &std::collections::BTreeSet<i64>| s.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
        let mut parts = vec![];
        for (name, set) in [
            ("live", &p.live_revisions),
            ("history", &p.history_revisions),
            ("residue", &p.residue_revisions),
        ] {
            if !set.is_empty() {
                parts.push(format!("{name} {}", revs(set)));
            }
        }
        if !p.wal_raft_indexes.is_empty() {
            let idx: Vec<String> = p.wal_raft_indexes.iter().map(|i| format!("#{i}")).collect();
            parts.push(format!("wal {}", idx.join(" ")));
        }
        parts.join("; ")
    };
    match row.backups.as_slice() {
        [b] => one(&b.places),
        many => {
            many.iter().map(|b| format!("{}: {}", b.source, one(&b.places))).collect::<Vec<_>>().join(" | ")
        }
    }
}

fn described(model: Model) -> &'static str {
    match model {
        Model::Backup => "the file(s) only",
        Model::BackupToken => "the file(s) and the k3s/RKE2 server token",
        Model::BackupKeys => "the file(s), the server token and the encryption config",
        Model::BackupKeysKms => "the file(s), the server token, the encryption config and the KMS",
    }
}

/// "N Secrets readable by whoever holds this backup (M critical); K more if
/// the encryption config leaked too": the value of encryption at rest here.
pub fn summary(exposure: &Exposure, backups: usize) -> String {
    let this = if backups == 1 { "this backup" } else { "these backups" };
    let count = |m: Model| exposure.count(m).map_or(0, |c| c.secrets);
    let Some(base) = exposure.count(Model::Backup) else { return format!("nothing read from {this}") };
    let mut line = format!(
        "{} Secret{} readable by whoever holds {this} ({} critical)",
        base.secrets,
        if base.secrets == 1 { "" } else { "s" },
        base.critical
    );
    let mut below = base.secrets;
    if let Some(token) = exposure.count(Model::BackupToken) {
        line += &format!("; {} more with the k3s/RKE2 server token", token.secrets.saturating_sub(below));
        below = token.secrets;
    }
    match exposure.count(Model::BackupKeys) {
        Some(keys) => {
            line +=
                &format!("; {} more if the encryption config leaked too", keys.secrets.saturating_sub(below));
            below = keys.secrets;
        }
        None => line += "; pass -c CONFIG to count what a leaked encryption config would add",
    }
    if exposure.count(Model::BackupKeysKms).is_some() {
        let more = count(Model::BackupKeysKms).saturating_sub(below);
        line += &format!("; {more} more with access to the KMS");
    }
    if exposure.secrets_unreadable > 0 {
        line += &format!("; {} unreadable under --assume {}", exposure.secrets_unreadable, exposure.assume);
    }
    line
}

/// Rules `exposure-critical` … `exposure-low`; a result per readable object,
/// at the first backup it is readable in, the etcd key as logical location.
fn sarif(exposure: &Exposure, backups: &[Entry<()>]) -> serde_json::Value {
    use super::sarif::{
        fingerprint, level, location, log, security_severity, unreadable_result, unreadable_rule, uri,
    };
    use crate::audit::risk::Risk;
    use crate::audit::Severity;
    use serde_json::json;
    let risks = [Risk::Critical, Risk::High, Risk::Medium, Risk::Low];
    let severity = |r: Risk| match r {
        Risk::Critical => Severity::Critical,
        Risk::High => Severity::High,
        Risk::Medium => Severity::Medium,
        Risk::Low => Severity::Low,
    };
    let mut rules: Vec<serde_json::Value> = risks
        .iter()
        .map(|&r| {
            let s = severity(r);
            json!({
                "id": format!("exposure-{}", r.as_str()),
                "name": format!("Exposure{}", capitalised(r.as_str())),
                "shortDescription": {"text": format!("A {} Secret is readable by whoever holds the backup", r.as_str())},
                "fullDescription": {"text": format!("Under the assumed attacker model, the backup gives away a Secret ranked {} (README: breach impact).", r.as_str())},
                "help": {"text": "Rotate the credential the Secret holds, first the highest ranked; then remove the plaintext (enable encryption at rest, rewrite, compact and defragment, destroy older backups)."},
                "defaultConfiguration": {"level": level(s)},
                "properties": {"security-severity": security_severity(s), "tags": ["security", "secrets", "breach-impact"]},
            })
        })
        .collect();
    rules.push(unreadable_rule());
    let mut results: Vec<serde_json::Value> = exposure
        .secrets
        .iter()
        .chain(&exposure.others)
        .map(|row| {
            let rule = format!("exposure-{}", row.rank.risk.as_str());
            let at = row.backups.first().map_or("", |b| b.source.as_str());
            let places: Vec<&str> = row.exposed_in.iter().map(|p| p.as_str()).collect();
            let message = format!(
                "{} {} is readable under --assume {} ({}): {}",
                row.at.resource,
                row.at.key,
                exposure.assume,
                places.join(", "),
                row.rank.reason
            );
            json!({
                "ruleId": rule,
                "ruleIndex": risks.iter().position(|r| *r == row.rank.risk),
                "level": level(severity(row.rank.risk)),
                "message": {"text": message},
                "locations": [location(&uri(at, None), &[row.at.key.as_str()])],
                "partialFingerprints": {"primaryLocationLineHash": fingerprint(&rule, &row.at.key, &[])},
            })
        })
        .collect();
    for b in backups.iter().filter(|b| b.error.is_some()) {
        results.push(unreadable_result(&b.source, b.error.as_deref(), &uri(&b.source, None), risks.len()));
    }
    log(rules, results)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(";")
}

/// RFC 4180: quoted when it holds a comma, quote or line break; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }
}
