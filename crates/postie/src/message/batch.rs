//! Many messages from one source, for bulk sending: a directory of `.eml`
//! files, an mbox file, or a mail merge (one template, one row per message
//! from a CSV or JSON file).
//!
//! Items are read one at a time ([`Source::items`]), so a batch of
//! thousands never holds more than one message. Each has a key that names
//! it within its source across runs (the file name; for an mbox message or
//! a row, its first recipient and a hash of its bytes or fields), so a
//! batch that is run again can skip what it already took: an item keeps
//! its key when others are added, removed or reordered, and an edited item
//! is a new one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    Draft, OutgoingMessage, RawOptions, from_raw, from_raw_file, html_escape, split_address_list,
};
use crate::error::{Error, ErrorKind, Result};

/// Where a batch's messages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Every `*.eml` file of a directory, in name order: complete RFC 5322
    /// messages, recipients from their To/Cc/Bcc.
    Dir(PathBuf),
    /// The messages of an mbox file (mboxo/mboxrd), in order.
    Mbox(PathBuf),
    /// One message per row of `rows` (CSV with a header line, or a JSON
    /// array of objects), from `template`: header lines (From, To, Cc, Bcc,
    /// Subject, Content-Type), an empty line, the body; `{{field}}` is
    /// replaced by the row's field, in headers and body (HTML-escaped in an
    /// HTML body). In an address header a field fills in one address or
    /// one name: a value that would add addresses is refused.
    /// `{{{field}}}` puts a trusted value in as it is: HTML, or a list of
    /// addresses.
    Merge {
        /// The template file.
        template: PathBuf,
        /// The rows file, `.csv` or `.json`.
        rows: PathBuf,
    },
}

/// One message of a batch.
#[derive(Debug)]
pub struct Item {
    /// What names it in its source, the same on every run: the file name;
    /// for an mbox message or a row, its first recipient and a hash of its
    /// bytes or fields (`ann@example.org 0f3a…`, with `/2` for the second of
    /// identical items), wherever it moves.
    pub key: String,
    /// The message, with its envelope.
    pub message: OutgoingMessage,
}

fn input(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Input, what.to_string())
}

impl Source {
    /// The source from a path: a directory, else an mbox file.
    pub fn from_path(path: &Path) -> Source {
        if path.is_dir() {
            Source::Dir(path.to_path_buf())
        } else {
            Source::Mbox(path.to_path_buf())
        }
    }

    /// The source in words, for plans and errors.
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => format!("the .eml files of {}", d.display()),
            Source::Mbox(f) => format!("the mbox {}", f.display()),
            Source::Merge { template, rows } => format!(
                "the template {} merged with the rows of {}",
                template.display(),
                rows.display()
            ),
        }
    }

    /// A name for a batch of this source, the same on every run from
    /// anywhere: its file name and a hash of its absolute path(s).
    pub fn batch_name(&self) -> Result<String> {
        let paths: Vec<&Path> = match self {
            Source::Dir(p) | Source::Mbox(p) => vec![p],
            Source::Merge { template, rows } => vec![template, rows],
        };
        let mut h = Sha256::new();
        for p in &paths {
            let abs = std::fs::canonicalize(p)
                .map_err(|e| input(format_args!("cannot read {}: {e}", p.display())))?;
            h.update(abs.as_os_str().as_encoded_bytes());
            h.update([0]);
        }
        let stem = paths
            .last()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let hash: String = h.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!("{stem}-{hash}"))
    }

    /// The items, read one at a time (blocking reads: call where blocking
    /// is allowed). `sender` completes a message with no `From:` and is the
    /// template's sender when it names none. An item that cannot be read or
    /// built is an error naming it.
    pub fn items(&self, sender: &str) -> Result<Box<dyn Iterator<Item = Result<Item>> + Send>> {
        let raw_opts = RawOptions {
            read_headers: true,
            add_from: Some(sender.to_string()),
            ..RawOptions::default()
        };
        match self {
            Source::Dir(dir) => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| {
                        input(format_args!(
                            "cannot read the directory {}: {e}",
                            dir.display()
                        ))
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("eml"))
                    })
                    .collect();
                files.sort();
                if files.is_empty() {
                    return Err(input(format_args!(
                        "{} has no .eml files; put one RFC 5322 message per .eml file there",
                        dir.display()
                    )));
                }
                Ok(Box::new(files.into_iter().map(move |path| {
                    let key = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let message = from_raw_file(&path, &raw_opts)
                        .map_err(|e| input(format_args!("{key}: {}", e.message())))?;
                    Ok(Item { key, message })
                })))
            }
            Source::Mbox(path) => {
                let file = std::fs::File::open(path).map_err(|e| {
                    input(format_args!("cannot read the mbox {}: {e}", path.display()))
                })?;
                let mut reader = BufReader::new(file);
                if !reader
                    .fill_buf()
                    .map_err(|e| {
                        input(format_args!("cannot read the mbox {}: {e}", path.display()))
                    })?
                    .starts_with(b"From ")
                {
                    return Err(input(format_args!(
                        "{} is not an mbox file (it does not start with a \"From \" line); \
                         give a directory of .eml files, an mbox, or --template with --data",
                        path.display()
                    )));
                }
                let it = mail_parser::mailbox::mbox::MessageIterator::new(reader);
                let mut seen = Seen::default();
                Ok(Box::new(it.enumerate().map(move |(i, m)| {
                    let label = format!("#{}", i + 1);
                    let m = m.map_err(|e| input(format_args!("mbox message {label}: {e}")))?;
                    let mut bytes = m.unwrap_contents();
                    // The empty line an mbox writer puts before the next "From ".
                    if bytes.ends_with(b"\n\n") || bytes.ends_with(b"\r\n\r\n") {
                        bytes.truncate(bytes.len() - if bytes.ends_with(b"\r\n") { 2 } else { 1 });
                    }
                    let hash = short_hash([&bytes[..]]);
                    let message = from_raw(bytes, &raw_opts).map_err(|e| {
                        input(format_args!("mbox message {label}: {}", e.message()))
                    })?;
                    let key = seen.key(&message, hash);
                    Ok(Item { key, message })
                })))
            }
            Source::Merge { template, rows } => {
                let template = Template::read(template)?;
                let rows = read_rows(rows)?;
                let sender = sender.to_string();
                let mut seen = Seen::default();
                Ok(Box::new(rows.into_iter().enumerate().map(
                    move |(i, row)| {
                        let message = template
                            .render(&row, &sender)
                            .map_err(|e| input(format_args!("row {}: {}", i + 1, e.message())))?;
                        // The fields and values, in name order.
                        let hash = short_hash(
                            row.iter()
                                .flat_map(|(k, v)| [k.as_bytes(), b"\0", v.as_bytes(), b"\0"]),
                        );
                        let key = seen.key(&message, hash);
                        Ok(Item { key, message })
                    },
                )))
            }
        }
    }
}

/// One row: field name → value.
type Row = BTreeMap<String, String>;

/// 64 bits of SHA-256 over `parts`, in hex: an item's content, the same
/// wherever the item stands in its source.
fn short_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The content hashes met so far in a source: identical items get `/2`,
/// `/3` ... after the first.
#[derive(Default)]
struct Seen(std::collections::HashMap<String, usize>);

impl Seen {
    /// The key of an item with `message` and content `hash`: its first
    /// recipient (for people reading results) and the hash.
    fn key(&mut self, message: &OutgoingMessage, hash: String) -> String {
        let first = message
            .recipients
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let n = self.0.entry(hash.clone()).or_default();
        *n += 1;
        match *n {
            1 => format!("{first} {hash}"),
            n => format!("{first} {hash}/{n}"),
        }
    }
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let cannot =
        |e: &dyn std::fmt::Display| input(format_args!("cannot read {}: {e}", path.display()));
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rows: Vec<Row> = match ext.as_str() {
        "csv" => {
            let mut r = csv::ReaderBuilder::new()
                .flexible(false)
                .from_path(path)
                .map_err(|e| cannot(&e))?;
            let names: Vec<String> = r
                .headers()
                .map_err(|e| cannot(&e))?
                .iter()
                .map(|h| h.trim().to_string())
                .collect();
            let mut out = Vec::new();
            for (i, rec) in r.records().enumerate() {
                let rec =
                    rec.map_err(|e| input(format_args!("{} row {}: {e}", path.display(), i + 1)))?;
                out.push(
                    names
                        .iter()
                        .cloned()
                        .zip(rec.iter().map(str::to_string))
                        .collect(),
                );
            }
            out
        }
        "json" => {
            let text = std::fs::read_to_string(path).map_err(|e| cannot(&e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| cannot(&e))?;
            let serde_json::Value::Array(items) = v else {
                return Err(input(format_args!(
                    "{}: expected a JSON array of objects, one per message",
                    path.display()
                )));
            };
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let serde_json::Value::Object(map) = item else {
                    return Err(input(format_args!(
                        "{} row {}: not an object; each row is {{\"field\": \"value\", ...}}",
                        path.display(),
                        i + 1
                    )));
                };
                let mut row = Row::new();
                for (k, v) in map {
                    let s = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
                        _ => {
                            return Err(input(format_args!(
                                "{} row {}: field \"{k}\" is a list or an object; give text",
                                path.display(),
                                i + 1
                            )));
                        }
                    };
                    row.insert(k, s);
                }
                out.push(row);
            }
            out
        }
        _ => {
            return Err(input(format_args!(
                "{}: the rows file must be .csv (a header line, then one row per message) or .json (an array of objects)",
                path.display()
            )));
        }
    };
    if rows.is_empty() {
        return Err(input(format_args!("{} has no rows", path.display())));
    }
    Ok(rows)
}

/// A message template: header lines, an empty line, the body.
struct Template {
    name: String,
    headers: Vec<(String, String)>,
    body: String,
    html: bool,
}

/// The headers a template may set (others would be silently lost).
const TEMPLATE_HEADERS: [&str; 6] = ["From", "To", "Cc", "Bcc", "Subject", "Content-Type"];

impl Template {
    fn read(path: &Path) -> Result<Template> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| input(format_args!("cannot read the template {name}: {e}")))?;
        let text = text.replace("\r\n", "\n");
        let Some((head, body)) = text.split_once("\n\n") else {
            return Err(input(format_args!(
                "the template {name} has no empty line: write its headers (To: {{{{email}}}}, Subject: ...), an empty line, then the body"
            )));
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(input(format_args!(
                    "the template {name}: \"{line}\" is not a header line (Name: value)"
                )));
            };
            let Some(canon) = TEMPLATE_HEADERS
                .iter()
                .find(|h| h.eq_ignore_ascii_case(k.trim()))
            else {
                return Err(input(format_args!(
                    "the template {name}: the header \"{}\" is not one a template sets; use {}",
                    k.trim(),
                    TEMPLATE_HEADERS.join(", ")
                )));
            };
            headers.push((canon.to_string(), v.trim().to_string()));
        }
        let html = headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v.to_ascii_lowercase().starts_with("text/html"));
        Ok(Template {
            name,
            headers,
            body: body.to_string(),
            html,
        })
    }

    fn render(&self, row: &Row, sender: &str) -> Result<OutgoingMessage> {
        let mut d = Draft {
            from: sender.to_string(),
            ..Draft::default()
        };
        for (k, template) in &self.headers {
            let v = substitute(template, row, Place::Header)?;
            if matches!(k.as_str(), "From" | "To" | "Cc" | "Bcc") {
                // As many addresses as the template makes with these
                // fields (an empty one may leave its slot out): a value
                // with a comma or a quote must not add recipients.
                let want = split_address_list(&substitute(template, row, Place::Shape)?).len();
                let got = split_address_list(&v).len();
                if got != want {
                    return Err(input(format_args!(
                        "its fields make {got} address(es) in {k} where the template has {want}: \
                         a field fills in one address or one name; put a name with a comma in \
                         quotes in the template ({k}: \"{{{{name}}}}\" <{{{{email}}}}>), give \
                         each address its own field, or write {{{{{{field}}}}}} for a field that \
                         holds a list"
                    )));
                }
            }
            match k.as_str() {
                "From" => d.from = v,
                "To" => d.to.extend(split_address_list(&v)),
                "Cc" => d.cc.extend(split_address_list(&v)),
                "Bcc" => d.bcc.extend(split_address_list(&v)),
                "Subject" => d.subject = Some(v),
                _ => {}
            }
        }
        if d.to.is_empty() && d.cc.is_empty() && d.bcc.is_empty() {
            return Err(input(format_args!(
                "no recipient: the template {} has no To, Cc or Bcc, or the row's fields left them empty",
                self.name
            )));
        }
        let body = substitute(
            &self.body,
            row,
            if self.html { Place::Html } else { Place::Text },
        )?;
        if self.html {
            d.html = Some(body);
        } else {
            d.text = Some(body);
        }
        d.build()
    }
}

/// Where a template's text goes, which decides how a value is put in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A header: a value with a line break is refused.
    Header,
    /// A text/plain body: as it is.
    Text,
    /// A text/html body: HTML-escaped, unless in `{{{triple braces}}}`.
    Html,
    /// A header's shape: `x` for a value, nothing for an empty one, a
    /// `{{{raw}}}` value as it is.
    Shape,
}

/// Replace each `{{field}}` and `{{{field}}}` (spaces allowed inside the
/// braces) as `place` wants. A field the row lacks is an error; in a
/// header, a value with a line break is (it would add headers of its own).
fn substitute(text: &str, row: &Row, place: Place) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let raw = rest[at + 2..].starts_with('{');
        let (open, close) = if raw { (3, "}}}") } else { (2, "}}") };
        let after = &rest[at + open..];
        let Some(end) = after.find(close) else {
            return Err(input(format_args!(
                "a \"{}\" in the template has no \"{close}\"",
                &rest[at..at + open]
            )));
        };
        let field = after[..end].trim();
        let Some(value) = row.get(field) else {
            let names: Vec<&str> = row.keys().map(String::as_str).collect();
            return Err(input(format_args!(
                "the template uses {{{{{field}}}}} but the row has no field \"{field}\" (fields: {})",
                names.join(", ")
            )));
        };
        match place {
            Place::Header if value.contains(['\r', '\n']) => {
                return Err(input(format_args!(
                    "the field \"{field}\" has a line break, which a header cannot hold"
                )));
            }
            Place::Html if !raw => out.push_str(&html_escape(value)),
            // a trusted value may be a list: it counts as what it holds
            Place::Shape if raw => out.push_str(value),
            Place::Shape if !value.trim().is_empty() => out.push('x'),
            Place::Shape => {}
            _ => out.push_str(value),
        }
        rest = &after[end + close.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn all(s: &Source) -> Vec<Item> {
        s.items("me@example.com")
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn merge_substitutes_in_headers_and_body_from_csv_and_json() {
        let d = tempfile::tempdir().unwrap();
        let t = write(
            d.path(),
            "t.txt",
            "To: \"{{ name }}\" <{{email}}>\nSubject: Hello {{name}}\n\nDear {{name}},\nyour code is {{code}}.\n",
        );
        let csv = write(
            d.path(),
            "rows.csv",
            "email,name,code\nann@example.org,Ann,1\n\"bob@example.org\",\"Bob, Jr\",2\n",
        );
        let items = all(&Source::Merge {
            template: t.clone(),
            rows: csv,
        });
        assert_eq!(items.len(), 2);
        assert!(
            items[1].key.starts_with("bob@example.org "),
            "{}",
            items[1].key
        );
        assert_eq!(
            items[1].message.recipients[0].to_string(),
            "bob@example.org"
        );
        let body = String::from_utf8(items[1].message.body.to_vec().unwrap()).unwrap();
        assert!(body.contains("Subject: Hello Bob, Jr"), "{body}");
        assert!(body.contains("your code is 2."), "{body}");
        let json = write(
            d.path(),
            "rows.json",
            r#"[{"email": "cy@example.org", "name": "Cy", "code": 7}]"#,
        );
        let items = all(&Source::Merge {
            template: t,
            rows: json,
        });
        let body = String::from_utf8(items[0].message.body.to_vec().unwrap()).unwrap();
        assert!(body.contains("your code is 7."), "{body}");
    }

    #[test]
    fn merge_refuses_missing_fields_header_injection_and_unknown_headers() {
        let d = tempfile::tempdir().unwrap();
        let t = write(
            d.path(),
            "t.txt",
            "To: {{email}}\nSubject: {{subject}}\n\nhi\n",
        );
        let rows = write(
            d.path(),
            "r.json",
            r#"[{"email": "a@example.org", "subject": "x\nBcc: evil@example.net"}]"#,
        );
        let e = Source::Merge {
            template: t.clone(),
            rows,
        }
        .items("me@example.com")
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
        assert!(
            e.message().contains("row 1") && e.message().contains("line break"),
            "{}",
            e.message()
        );
        let rows = write(d.path(), "r2.csv", "email\na@example.org\n");
        let e = Source::Merge { template: t, rows }
            .items("me@example.com")
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(
            e.message().contains("no field \"subject\" (fields: email)"),
            "{}",
            e.message()
        );
        let t = write(d.path(), "t2.txt", "To: {{email}}\nX-Mailer: me\n\nhi\n");
        let rows = write(d.path(), "r3.csv", "email\na@example.org\n");
        let e = Source::Merge { template: t, rows }
            .items("me@example.com")
            .err()
            .unwrap();
        assert!(
            e.message()
                .contains("\"X-Mailer\" is not one a template sets"),
            "{}",
            e.message()
        );
    }

    fn merge(d: &Path, template: &str, rows: &str) -> Result<Vec<Item>> {
        let n = std::fs::read_dir(d).unwrap().count();
        let t = write(d, &format!("t{n}.txt"), template);
        let r = write(d, &format!("r{n}.csv"), rows);
        Source::Merge {
            template: t,
            rows: r,
        }
        .items("me@example.com")?
        .collect()
    }

    #[test]
    fn a_rows_key_follows_the_row_not_its_place() {
        let d = tempfile::tempdir().unwrap();
        let t = "To: {{email}}\nSubject: {{n}}\n\nhi\n";
        let keys = |rows: &str| -> Vec<String> {
            merge(d.path(), t, rows)
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect()
        };
        let first = keys("email,n\nann@example.org,1\nbob@example.org,2\n");
        // a row put in front, the others moved down: theirs keep their keys
        let second = keys("email,n\ncarl@example.org,3\nann@example.org,1\nbob@example.org,2\n");
        assert_eq!(&second[1..], &first[..]);
        assert!(second[0].starts_with("carl@example.org "));
        assert!(!first.contains(&second[0]));
        // an edited row is another row; identical rows are told apart
        let third = keys("email,n\nann@example.org,9\nbob@example.org,2\nbob@example.org,2\n");
        assert_ne!(third[0], first[0]);
        assert_eq!(third[1], first[1]);
        assert_eq!(third[2], format!("{}/2", first[1]));
    }

    #[test]
    fn a_field_cannot_add_recipients_unless_written_as_trusted() {
        let d = tempfile::tempdir().unwrap();
        let refused = |template: &str, rows: &str| -> String {
            match merge(d.path(), template, rows) {
                Err(e) => e.message().to_string(),
                Ok(items) => panic!(
                    "accepted: {:?}",
                    items[0]
                        .message
                        .recipients
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                ),
            }
        };
        let e = refused(
            "To: {{email}}\n\nhi\n",
            "email\n\"ann@example.org, evil@example.net\"\n",
        );
        assert!(
            e.contains("row 1") && e.contains("make 2 address(es) in To where the template has 1"),
            "{e}"
        );
        // a name that closes the template's quotes and opens a recipient of its own
        let e = refused(
            "To: \"{{name}}\" <{{email}}>\n\nhi\n",
            "name,email\n\"Ann\"\" <evil@example.net>, \"\"x\",ann@example.org\n",
        );
        assert!(e.contains("in To where the template has 1"), "{e}");
        let e = refused(
            "To: ann@example.org\nBcc: {{b}}\n\nhi\n",
            "b\n\"x@example.org,y@example.org\"\n",
        );
        assert!(e.contains("in Bcc"), "{e}");

        // an empty field leaves its slot out; a trusted field may hold a list
        let items = merge(
            d.path(),
            "To: {{{list}}}\nCc: {{cc}}\n\nhi\n",
            "list,cc\n\"ann@example.org, bob@example.org\",\n",
        )
        .unwrap();
        let to: Vec<String> = items[0]
            .message
            .recipients
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(to, ["ann@example.org", "bob@example.org"]);
    }

    #[test]
    fn an_html_body_gets_its_fields_escaped_unless_trusted() {
        let d = tempfile::tempdir().unwrap();
        let items = merge(
            d.path(),
            "To: {{email}}\nSubject: {{name}}\nContent-Type: text/html\n\n<p>Dear {{name}},</p>{{{sig}}}\n",
            "email,name,sig\nann@example.org,<b>Ann</b> & \"Co\",<i>the team</i>\n",
        )
        .unwrap();
        let raw = items[0].message.body.to_vec().unwrap();
        let parsed = mail_parser::MessageParser::new().parse(&raw[..]).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(
            html.contains(
                "<p>Dear &lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Co&quot;,</p><i>the team</i>"
            ),
            "{html}"
        );
        // headers are not HTML
        assert_eq!(parsed.subject(), Some("<b>Ann</b> & \"Co\""));
    }

    #[test]
    fn mbox_messages_are_split_and_unescaped() {
        let d = tempfile::tempdir().unwrap();
        let m = write(
            d.path(),
            "box.mbox",
            "From a@example.org Thu Dec  3 10:00:00 2026\nFrom: a@example.org\nTo: x@example.org\nSubject: one\n\n>From here\nbody one\n\n\
             From a@example.org Thu Dec  3 10:01:00 2026\nFrom: a@example.org\nTo: y@example.org, z@example.org\nSubject: two\n\nbody two\n",
        );
        let items = all(&Source::Mbox(m));
        assert_eq!(items.len(), 2);
        assert!(
            items[1].key.starts_with("y@example.org "),
            "{}",
            items[1].key
        );
        assert_eq!(items[1].message.recipients.len(), 2);
        let one = String::from_utf8(items[0].message.body.to_vec().unwrap()).unwrap();
        assert!(one.ends_with("From here\nbody one\n"), "{one:?}");
        let not = write(d.path(), "x.txt", "hello\n");
        assert!(
            Source::Mbox(not)
                .items("me@example.com")
                .err()
                .unwrap()
                .message()
                .contains("not an mbox")
        );
    }

    #[test]
    fn an_mbox_messages_key_follows_the_message_not_its_place() {
        let d = tempfile::tempdir().unwrap();
        let msg = |to: &str, subject: &str| {
            format!(
                "From a@example.org Thu Dec  3 10:00:00 2026\nFrom: a@example.org\nTo: {to}\nSubject: {subject}\n\nbody {subject}\n\n"
            )
        };
        let keys = |name: &str, text: String| -> Vec<String> {
            all(&Source::Mbox(write(d.path(), name, &text)))
                .into_iter()
                .map(|i| i.key)
                .collect()
        };
        let (one, two, three) = (
            msg("x@example.org", "one"),
            msg("y@example.org", "two"),
            msg("z@example.org", "three"),
        );
        let first = keys("a.mbox", format!("{one}{two}"));
        // a message put in front and the others swapped: theirs keep their keys
        let second = keys("b.mbox", format!("{three}{two}{one}"));
        assert_eq!(second[1], first[1]);
        assert_eq!(second[2], first[0]);
        assert!(!first.contains(&second[0]));
        // the same message twice is two items
        let twice = keys("c.mbox", format!("{one}{one}"));
        assert_eq!(twice, [first[0].clone(), format!("{}/2", first[0])]);
    }

    #[test]
    fn a_directory_gives_its_eml_files_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b.eml", "To: b@example.org\nSubject: b\n\nb\n");
        write(d.path(), "a.eml", "To: a@example.org\nSubject: a\n\na\n");
        write(d.path(), "notes.txt", "not a message");
        let items = all(&Source::Dir(d.path().to_path_buf()));
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a.eml", "b.eml"]);
        assert_eq!(items[0].message.from.to_string(), "me@example.com");
        let name = Source::Dir(d.path().to_path_buf()).batch_name().unwrap();
        assert_eq!(name, Source::Dir(d.path().join(".")).batch_name().unwrap());
    }
}
