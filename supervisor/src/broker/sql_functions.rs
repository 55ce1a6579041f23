//! The SQL functions a plugin's statement may call: an allowlist of SQLite's ordinary
//! scalar, aggregate, window, date, math and JSON functions, checked by the authorizer.

// An allowlist because SQLite's function namespace grows with every build option:
// `fts3_tokenizer` returns a code pointer of this (root) process for a bound 'simple',
// `fts5` another, `load_extension` loads code, `sqlite_offset` tells file offsets,
// `rtreenode`/`rtreecheck`, `sqlite_compileoption_*` and the FTS auxiliaries reach
// internals. None of them is here, and nothing new becomes callable by an upgrade.

/// Lower-case names, sorted (for the binary search and for the README).
pub const ALLOWED: &[&str] = &[
    "->",
    "->>",
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "julianday",
    "lag",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// Whether a statement may call `name` (SQLite function names are case-insensitive).
pub fn allowed(name: &str) -> bool {
    ALLOWED
        .binary_search(&name.to_ascii_lowercase().as_str())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_refuses_what_reaches_pointers_files_or_code() {
        assert!(ALLOWED.windows(2).all(|w| w[0] < w[1]), "sorted, no dups");
        for name in ["lower", "COUNT", "Substr", "json_extract", "->>"] {
            assert!(allowed(name), "{name}");
        }
        for name in [
            "fts3_tokenizer",
            "FTS3_TOKENIZER",
            "fts5",
            "load_extension",
            "sqlite_offset",
            "sqlite_compileoption_get",
            "rtreenode",
            "readfile",
            "writefile",
            "matchinfo",
            "snippet",
        ] {
            assert!(!allowed(name), "{name}");
        }
    }
}
