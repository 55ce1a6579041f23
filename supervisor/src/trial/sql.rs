//! Which tables one SQL statement names, and whether it reads or writes each: read
//! off its tokens, for a trial's record (nothing runs against the real database).

// A heuristic, not a parser: the names after FROM, JOIN, INTO, UPDATE and TABLE, less
// the names a WITH clause defines. It is only used to say what a refused statement
// tried; the real database service decides with SQLite's authorizer.

use crate::catalog::Permission;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// A quoted identifier: never a keyword.
    Quoted(String),
    Punct(char),
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' => {
                // A string literal: skipped ('' is an escaped quote).
                while let Some(n) = chars.next() {
                    if n == '\'' && chars.peek() != Some(&'\'') {
                        break;
                    }
                    if n == '\'' {
                        chars.next();
                    }
                }
            }
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let name: String = chars.by_ref().take_while(|&n| n != close).collect();
                out.push(Token::Quoted(name));
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '$' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "outer",
    "cross",
    "natural",
    "on",
    "using",
    "group",
    "order",
    "by",
    "having",
    "limit",
    "offset",
    "union",
    "except",
    "intersect",
    "as",
    "set",
    "values",
    "returning",
    "into",
    "window",
    "default",
];

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

/// The table name at `i` (`schema.table` gives `table`), and the index after it.
fn name_at(t: &[Token], i: usize) -> Option<(String, usize)> {
    let name = match t.get(i)? {
        Token::Word(w) if !is_keyword(w) => w.clone(),
        Token::Quoted(q) => q.clone(),
        _ => return None,
    };
    if t.get(i + 1) == Some(&Token::Punct('.')) {
        if let Some((inner, next)) = name_at(t, i + 2) {
            return Some((inner, next));
        }
    }
    Some((name.to_ascii_lowercase(), i + 1))
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w))
}

/// Words that end a FROM clause.
const CLAUSE_ENDS: &[&str] = &[
    "where",
    "group",
    "order",
    "limit",
    "having",
    "window",
    "union",
    "except",
    "intersect",
    "returning",
    "set",
    "values",
];

/// Reads one table name (and its alias) at `i`; the index after them.
fn table_at(
    t: &[Token],
    i: usize,
    permission: Permission,
    add: &mut impl FnMut(Permission, String),
) -> usize {
    let Some((name, mut j)) = name_at(t, i) else {
        return i;
    };
    add(permission, name);
    if t.get(j).is_some_and(|x| word_is(x, "as")) {
        j += 1;
    }
    if matches!(t.get(j), Some(Token::Word(w)) if !is_keyword(w)) {
        j += 1;
    }
    j
}

/// Each table the statement names, once, with the permission touching it needs.
pub fn tables(sql: &str) -> Vec<(Permission, String)> {
    let t = tokens(sql);
    // Names a WITH clause defines (`name AS (`) are not tables.
    let defined: Vec<String> = t
        .windows(3)
        .filter(|w| word_is(&w[1], "as") && w[2] == Token::Punct('('))
        .filter_map(|w| match &w[0] {
            Token::Word(n) | Token::Quoted(n) => Some(n.to_ascii_lowercase()),
            Token::Punct(_) => None,
        })
        .collect();
    let mut found: Vec<(Permission, String)> = Vec::new();
    let mut add = |p: Permission, name: String| {
        if defined.contains(&name) {
            return;
        }
        // A written table is also read; one line for it, as database_write.
        if let Some(existing) = found.iter_mut().find(|(_, n)| *n == name) {
            if p == Permission::DatabaseWrite {
                existing.0 = p;
            }
        } else {
            found.push((p, name));
        }
    };
    let first = t.iter().find_map(|x| match x {
        Token::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    });
    let writes = matches!(
        first.as_deref(),
        Some("insert" | "replace" | "update" | "delete" | "create" | "drop" | "alter")
    );
    // Whether a FROM clause is open at each parenthesis depth: a comma there names
    // another table (`FROM a JOIN b ON ..., c`).
    let mut open: Vec<bool> = vec![false];
    let mut i = 0;
    while i < t.len() {
        let depth = open.len() - 1;
        match &t[i] {
            Token::Punct('(') => {
                open.push(false);
                i += 1;
                continue;
            }
            Token::Punct(')') => {
                if open.len() > 1 {
                    open.pop();
                }
                i += 1;
                continue;
            }
            Token::Punct(',') if open[depth] => {
                i = table_at(&t, i + 1, Permission::DatabaseRead, &mut add);
                continue;
            }
            Token::Word(w) if CLAUSE_ENDS.iter().any(|k| k.eq_ignore_ascii_case(w)) => {
                open[depth] = false;
            }
            _ => {}
        }
        let starts_write = word_is(&t[i], "into")
            || word_is(&t[i], "update")
            || word_is(&t[i], "table")
            || (writes && first.as_deref() == Some("delete") && word_is(&t[i], "from"));
        let starts_read = word_is(&t[i], "from") || word_is(&t[i], "join");
        if !(starts_write || starts_read) {
            i += 1;
            continue;
        }
        let permission = if starts_write {
            Permission::DatabaseWrite
        } else {
            Permission::DatabaseRead
        };
        let mut j = i + 1;
        // UPDATE OR IGNORE t, CREATE TABLE IF NOT EXISTS t
        while t.get(j).is_some_and(|x| {
            [
                "or", "rollback", "abort", "replace", "fail", "ignore", "if", "not", "exists",
            ]
            .iter()
            .any(|k| word_is(x, k))
        }) {
            j += 1;
        }
        open[depth] = starts_read;
        i = table_at(&t, j, permission, &mut add).max(i + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::{DatabaseRead as R, DatabaseWrite as W};

    fn t(sql: &str) -> Vec<(Permission, String)> {
        tables(sql)
    }

    #[test]
    fn names_the_tables_read_and_written() {
        assert_eq!(t("SELECT password_hash FROM users"), [(R, "users".into())]);
        assert_eq!(
            t("select * from main.Users u join \"messages\" m on m.id = u.id, notes"),
            [
                (R, "users".into()),
                (R, "messages".into()),
                (R, "notes".into())
            ]
        );
        assert_eq!(
            t("INSERT INTO notes (text) SELECT body FROM messages WHERE body = 'from x'"),
            [(W, "notes".into()), (R, "messages".into())]
        );
        assert_eq!(
            t("UPDATE OR IGNORE users SET name = ?1"),
            [(W, "users".into())]
        );
        assert_eq!(t("DELETE FROM users WHERE id = 1"), [(W, "users".into())]);
        assert_eq!(
            t("WITH recent AS (SELECT * FROM messages) SELECT * FROM recent"),
            [(R, "messages".into())]
        );
        assert_eq!(
            t("SELECT * FROM (SELECT id FROM a) x, b WHERE x.id IN (SELECT id FROM c), d"),
            [(R, "a".into()), (R, "b".into()), (R, "c".into())]
        );
        assert_eq!(t("SELECT 1"), []);
    }
}
