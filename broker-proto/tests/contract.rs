//! The contract's own checks, from the descriptor set protoc builds with comments:
//! every RPC, message, field and enum value of both protos is documented, and
//! `docs/api.md` is the reference page those comments generate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, ServiceDescriptorProto,
};

/// Set to 1 to rewrite `docs/api.md` instead of comparing it (`make docs`).
const WRITE_ENV: &str = "PLEXICHAT_WRITE_API_DOCS";

// Field numbers in descriptor.proto, the steps of a SourceCodeInfo path.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const FILE_SYNTAX: i32 = 12;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const MESSAGE_ONEOF: i32 = 8;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

/// The plexichat protos (not the well-known types they import).
fn files() -> Vec<FileDescriptorProto> {
    let set = FileDescriptorSet::decode(plexichat_broker_proto::FILE_DESCRIPTOR_SET)
        .expect("the build's descriptor set decodes");
    let files: Vec<_> = set
        .file
        .into_iter()
        .filter(|f| f.package().starts_with("plexichat."))
        .collect();
    assert_eq!(files.len(), 2, "broker.proto and admin.proto");
    files
}

/// Leading comments of one file by their SourceCodeInfo path.
struct Comments(BTreeMap<Vec<i32>, String>);

impl Comments {
    fn of(file: &FileDescriptorProto) -> Comments {
        let info = file
            .source_code_info
            .as_ref()
            .expect("the descriptor set was built with source info");
        let mut map = BTreeMap::new();
        for loc in &info.location {
            let text = loc
                .leading_comments
                .clone()
                .or_else(|| loc.leading_detached_comments.last().cloned())
                .unwrap_or_default();
            if !text.trim().is_empty() {
                map.insert(loc.path.clone(), tidy(&text));
            }
        }
        Comments(map)
    }

    fn at(&self, path: &[i32]) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }
}

/// A comment's lines without their leading blank, as written.
fn tidy(text: &str) -> String {
    text.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// One documented element: what it is, its full name, and its comment if any.
struct Item {
    what: &'static str,
    name: String,
    comment: Option<String>,
}

/// Every element that must carry a comment, in file order.
fn items(file: &FileDescriptorProto) -> Vec<Item> {
    let comments = Comments::of(file);
    let mut out = Vec::new();
    let item = |what, name: String, path: &[i32]| Item {
        what,
        name,
        comment: comments.at(path).map(str::to_string),
    };
    let pkg = file.package();
    for (i, s) in file.service.iter().enumerate() {
        let path = vec![FILE_SERVICE, i as i32];
        out.push(item("service", format!("{pkg}.{}", s.name()), &path));
        for (j, m) in s.method.iter().enumerate() {
            let name = format!("{pkg}.{}.{}", s.name(), m.name());
            out.push(item(
                "rpc",
                name,
                &[&path[..], &[SERVICE_METHOD, j as i32]].concat(),
            ));
        }
    }
    for (i, m) in file.message_type.iter().enumerate() {
        message_items(
            &comments,
            &format!("{pkg}.{}", m.name()),
            m,
            &[FILE_MESSAGE, i as i32],
            &mut out,
        );
    }
    for (i, e) in file.enum_type.iter().enumerate() {
        enum_items(
            &comments,
            &format!("{pkg}.{}", e.name()),
            e,
            &[FILE_ENUM, i as i32],
            &mut out,
        );
    }
    out
}

fn message_items(c: &Comments, name: &str, m: &DescriptorProto, path: &[i32], out: &mut Vec<Item>) {
    if is_map_entry(m) {
        return; // protoc's generated entry of a map field
    }
    let item = |what, name: String, path: &[i32]| Item {
        what,
        name,
        comment: c.at(path).map(str::to_string),
    };
    out.push(item("message", name.to_string(), path));
    for (i, f) in m.field.iter().enumerate() {
        let p = [path, &[MESSAGE_FIELD, i as i32]].concat();
        out.push(item("field", format!("{name}.{}", f.name()), &p));
    }
    for (i, o) in m.oneof_decl.iter().enumerate() {
        // proto3 `optional` makes a synthetic oneof named after the field.
        if o.name().starts_with('_') {
            continue;
        }
        let p = [path, &[MESSAGE_ONEOF, i as i32]].concat();
        out.push(item("oneof", format!("{name}.{}", o.name()), &p));
    }
    for (i, n) in m.nested_type.iter().enumerate() {
        let p = [path, &[MESSAGE_NESTED, i as i32]].concat();
        message_items(c, &format!("{name}.{}", n.name()), n, &p, out);
    }
    for (i, e) in m.enum_type.iter().enumerate() {
        let p = [path, &[MESSAGE_ENUM, i as i32]].concat();
        enum_items(c, &format!("{name}.{}", e.name()), e, &p, out);
    }
}

fn enum_items(
    c: &Comments,
    name: &str,
    e: &EnumDescriptorProto,
    path: &[i32],
    out: &mut Vec<Item>,
) {
    out.push(Item {
        what: "enum",
        name: name.to_string(),
        comment: c.at(path).map(str::to_string),
    });
    for (i, v) in e.value.iter().enumerate() {
        let p = [path, &[ENUM_VALUE, i as i32]].concat();
        out.push(Item {
            what: "enum value",
            name: format!("{name}.{}", v.name()),
            comment: c.at(&p).map(str::to_string),
        });
    }
}

fn is_map_entry(m: &DescriptorProto) -> bool {
    m.options.as_ref().is_some_and(|o| o.map_entry())
}

#[test]
fn every_rpc_message_field_and_enum_value_has_a_comment() {
    let mut missing = Vec::new();
    let mut counted = 0;
    for file in files() {
        for item in items(&file) {
            counted += 1;
            if item.comment.is_none() {
                missing.push(format!("{} {} ({})", item.what, item.name, file.name()));
            }
        }
    }
    println!("{counted} elements checked");
    assert!(counted > 400, "the walk found only {counted} elements");
    assert!(
        missing.is_empty(),
        "{} element(s) without a comment (say what it means, its units and limits; for an RPC the status codes it returns):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn the_check_sees_a_missing_comment() {
    // The same walk over a file whose first field lost its comment: it is reported.
    let undocumented = |file: &FileDescriptorProto| -> Vec<String> {
        items(file)
            .into_iter()
            .filter(|i| i.comment.is_none())
            .map(|i| i.name)
            .collect()
    };
    let mut file = files().remove(0);
    let before = undocumented(&file);
    let info = file.source_code_info.as_mut().expect("source info");
    let field = [FILE_MESSAGE, 0, MESSAGE_FIELD, 0];
    info.location.retain(|l| l.path != field);
    let after = undocumented(&file);
    let name = format!(
        "{}.{}.{}",
        file.package(),
        file.message_type[0].name(),
        file.message_type[0].field[0].name()
    );
    assert!(
        after.contains(&name) && !before.contains(&name),
        "{after:?}"
    );
    assert_eq!(after.len(), before.len() + 1);
}

// ---- the reference page ----------------------------------------------------

fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md")
}

#[test]
fn docs_api_md_is_generated_from_the_protos() {
    let page = render(&files());
    let path = docs_path();
    if std::env::var(WRITE_ENV).as_deref() == Ok("1") {
        std::fs::write(&path, &page).expect("writing docs/api.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == page,
        "docs/api.md is stale: run `make docs` (or {WRITE_ENV}=1 cargo test -p plexichat-broker-proto --test contract) and commit it"
    );
}

fn render(files: &[FileDescriptorProto]) -> String {
    let mut out = String::new();
    out.push_str("# API reference\n\n");
    out.push_str(
        "Generated from `broker-proto/proto/*.proto` by `make docs`; do not edit by hand \
         (a test fails when this page and the protos differ). JSON shown by \
         `plexichat --output json` is these messages in the canonical protobuf JSON \
         mapping: see the README's CLI reference.\n\n",
    );
    for file in files.iter().rev() {
        render_file(&mut out, file);
    }
    out
}

fn render_file(out: &mut String, file: &FileDescriptorProto) {
    let c = Comments::of(file);
    let _ = writeln!(out, "## `{}` ({})\n", file.package(), file.name());
    if let Some(text) = c.at(&[FILE_SYNTAX]) {
        let _ = writeln!(out, "{}\n", paragraph(text));
    }
    for (i, s) in file.service.iter().enumerate() {
        render_service(out, &c, s, &[FILE_SERVICE, i as i32]);
    }
    let _ = writeln!(out, "### Messages\n");
    for (i, m) in file.message_type.iter().enumerate() {
        render_message(out, &c, m.name(), m, &[FILE_MESSAGE, i as i32]);
    }
    let _ = writeln!(out, "### Enums\n");
    for (i, e) in file.enum_type.iter().enumerate() {
        render_enum(out, &c, e.name(), e, &[FILE_ENUM, i as i32]);
    }
}

fn render_service(out: &mut String, c: &Comments, s: &ServiceDescriptorProto, path: &[i32]) {
    let _ = writeln!(out, "### Service `{}`\n", s.name());
    if let Some(text) = c.at(path) {
        let _ = writeln!(out, "{}\n", text);
    }
    for (j, m) in s.method.iter().enumerate() {
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = writeln!(
            out,
            "#### `{}({}{}) returns ({}{})`\n",
            m.name(),
            stream(m.client_streaming()),
            short_type(m.input_type()),
            stream(m.server_streaming()),
            short_type(m.output_type()),
        );
        let p = [path, &[SERVICE_METHOD, j as i32]].concat();
        if let Some(text) = c.at(&p) {
            let _ = writeln!(out, "{}\n", paragraph(text));
        }
    }
}

fn render_message(out: &mut String, c: &Comments, name: &str, m: &DescriptorProto, path: &[i32]) {
    if is_map_entry(m) {
        return;
    }
    let _ = writeln!(out, "#### `{name}`\n");
    if let Some(text) = c.at(path) {
        let _ = writeln!(out, "{}\n", paragraph(text));
    }
    if !m.field.is_empty() {
        out.push_str("| Field | Number | Type | Description |\n|---|---|---|---|\n");
        for (i, f) in m.field.iter().enumerate() {
            let p = [path, &[MESSAGE_FIELD, i as i32]].concat();
            let oneof = f
                .oneof_index
                .filter(|_| !f.proto3_optional())
                .and_then(|o| m.oneof_decl.get(o as usize))
                .map(|o| format!(" (oneof `{}`)", o.name()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | `{}`{oneof} | {} |",
                f.name(),
                f.number(),
                field_type(m, f),
                cell(c.at(&p).unwrap_or_default()),
            );
        }
        out.push('\n');
    }
    for (i, n) in m.nested_type.iter().enumerate() {
        let p = [path, &[MESSAGE_NESTED, i as i32]].concat();
        render_message(out, c, &format!("{name}.{}", n.name()), n, &p);
    }
    for (i, e) in m.enum_type.iter().enumerate() {
        let p = [path, &[MESSAGE_ENUM, i as i32]].concat();
        render_enum(out, c, &format!("{name}.{}", e.name()), e, &p);
    }
}

fn render_enum(out: &mut String, c: &Comments, name: &str, e: &EnumDescriptorProto, path: &[i32]) {
    let _ = writeln!(out, "#### enum `{name}`\n");
    if let Some(text) = c.at(path) {
        let _ = writeln!(out, "{}\n", paragraph(text));
    }
    out.push_str("| Value | Number | Description |\n|---|---|---|\n");
    for (i, v) in e.value.iter().enumerate() {
        let p = [path, &[ENUM_VALUE, i as i32]].concat();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            v.name(),
            v.number(),
            cell(c.at(&p).unwrap_or_default())
        );
    }
    out.push('\n');
}

/// `repeated string`, `optional uint32`, `map<string, uint64>`, `PluginState`...
fn field_type(m: &DescriptorProto, f: &FieldDescriptorProto) -> String {
    if f.label() == Label::Repeated {
        if let Some(entry) = map_entry(m, f) {
            let key = entry.field.first().map(|k| field_type(entry, k));
            let value = entry.field.get(1).map(|v| field_type(entry, v));
            return format!(
                "map<{}, {}>",
                key.unwrap_or_default(),
                value.unwrap_or_default()
            );
        }
        return format!("repeated {}", scalar_or_named(f));
    }
    if f.proto3_optional() {
        return format!("optional {}", scalar_or_named(f));
    }
    scalar_or_named(f)
}

fn map_entry<'a>(m: &'a DescriptorProto, f: &FieldDescriptorProto) -> Option<&'a DescriptorProto> {
    let entry_name = f.type_name().rsplit('.').next()?;
    m.nested_type
        .iter()
        .find(|n| n.name() == entry_name && is_map_entry(n))
}

fn scalar_or_named(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message | Type::Enum => short_type(f.type_name()).to_string(),
        scalar => scalar
            .as_str_name()
            .trim_start_matches("TYPE_")
            .to_ascii_lowercase(),
    }
}

/// A type's name without its package when it is one of ours.
fn short_type(full: &str) -> &str {
    let full = full.trim_start_matches('.');
    ["plexichat.admin.v1.", "plexichat.broker.v1."]
        .iter()
        .find_map(|p| full.strip_prefix(p))
        .unwrap_or(full)
}

/// A comment as Markdown text: its lines, list items kept.
fn paragraph(text: &str) -> String {
    text.to_string()
}

/// A comment inside a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
