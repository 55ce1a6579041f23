//! One page of `QueryAudit`: the newest matching records below the caller's cursor,
//! at most a page size and cut to fit the admin message limit, with the next cursor.

use broker_proto::admin::v1::{AuditQuery, AuditRecord, AuditResponse};
use broker_proto::pbjson_types::Value;
use broker_proto::{MAX_ADMIN_MESSAGE_BYTES, MAX_AUDIT_PAGE_RECORDS};
use prost::Message;
use tonic::Status;

use super::convert;
use crate::store::{AuditFilter, Store};

/// Records in a page when the caller names no size.
pub const DEFAULT_PAGE_RECORDS: u32 = 1000;

/// Encoded bytes of records in one answer, leaving room for framing.
const PAGE_BYTES: usize = MAX_ADMIN_MESSAGE_BYTES - (64 << 10);

/// A record too large for a page alone keeps this much of its before/after text.
const SHRUNK_TEXT_BYTES: usize = 1024;

/// The page size asked for: `page_size`, else `limit` (callers from before paging,
/// clamped to one page), else the default. Too large a `page_size` is refused.
pub fn page_size(q: &AuditQuery) -> Result<u32, Status> {
    match (q.page_size, q.limit) {
        (0, 0) => Ok(DEFAULT_PAGE_RECORDS),
        (0, limit) => Ok(limit.min(MAX_AUDIT_PAGE_RECORDS)),
        (n, _) if n > MAX_AUDIT_PAGE_RECORDS => Err(Status::invalid_argument(format!(
            "page_size {n} is above the largest audit page ({MAX_AUDIT_PAGE_RECORDS} records): ask for at most {MAX_AUDIT_PAGE_RECORDS} and follow next_before_id"
        ))),
        (n, _) => Ok(n),
    }
}

pub fn answer(store: &Store, q: AuditQuery) -> Result<AuditResponse, Status> {
    if q.before_id < 0 {
        return Err(Status::invalid_argument(format!(
            "before_id {} must not be negative (0 starts from the newest record)",
            q.before_id
        )));
    }
    let size = page_size(&q)?;
    let filter = AuditFilter {
        plugin: (!q.plugin.is_empty()).then_some(q.plugin),
        since_ms: (q.since_ms != 0).then_some(q.since_ms),
        before_id: (q.before_id > 0).then_some(q.before_id),
        // One more than the page: whether older records remain.
        limit: size + 1,
    };
    let rows = store
        .query_audit(&filter)
        .map_err(|e| Status::internal(format!("audit query failed: {e}")))?;
    Ok(fill(
        rows.into_iter().rev().map(convert::audit_record),
        size as usize,
        PAGE_BYTES,
    ))
}

/// Takes records, newest first, while the page has room in count and bytes; the
/// page lists them oldest first, and names the cursor to continue from when any
/// record was left out.
fn fill(
    newest_first: impl Iterator<Item = AuditRecord>,
    size: usize,
    bytes: usize,
) -> AuditResponse {
    let mut records = Vec::new();
    let mut used = 0;
    let mut more = false;
    for mut record in newest_first {
        if records.len() == size {
            more = true;
            break;
        }
        if records.is_empty() && framed_len(&record) > bytes {
            shrink(&mut record);
        }
        let len = framed_len(&record);
        if used + len > bytes {
            more = true;
            break;
        }
        used += len;
        records.push(record);
    }
    records.reverse();
    let next_before_id = if more {
        records.first().map_or(0, |r| r.id)
    } else {
        0
    };
    AuditResponse {
        records,
        next_before_id,
    }
}

/// A record's size inside the response: its bytes plus tag and length prefix.
fn framed_len(r: &AuditRecord) -> usize {
    let len = r.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// A record larger than a whole page (a huge comment in its detail): still listed,
/// with its detail replaced by a note of its size and its before/after cut.
fn shrink(r: &mut AuditRecord) {
    let bytes = r.detail.as_ref().map_or(0, Message::encoded_len);
    let note = std::collections::HashMap::from([(
        "truncated_detail_bytes".to_string(),
        Value::from(bytes as f64),
    )]);
    r.detail = Some(Value::from(note));
    for text in [&mut r.before, &mut r.after] {
        let keep = crate::text::prefix(text, SHRUNK_TEXT_BYTES).len();
        text.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, detail_bytes: usize) -> AuditRecord {
        AuditRecord {
            id,
            action: "t".into(),
            detail: Some(Value::from("d".repeat(detail_bytes))),
            ..Default::default()
        }
    }

    fn newest_first(n: i64, detail_bytes: usize) -> impl Iterator<Item = AuditRecord> {
        (1..=n).rev().map(move |id| record(id, detail_bytes))
    }

    #[test]
    fn a_full_page_names_the_cursor_and_a_last_page_none() {
        let page = fill(newest_first(10, 10), 4, PAGE_BYTES);
        let ids: Vec<i64> = page.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [7, 8, 9, 10]);
        assert_eq!(page.next_before_id, 7);
        let last = fill(newest_first(3, 10), 4, PAGE_BYTES);
        assert_eq!(last.records.len(), 3);
        assert_eq!(last.next_before_id, 0);
    }

    #[test]
    fn a_page_is_cut_to_its_byte_budget() {
        let page = fill(newest_first(100, 1000), 100, 10_000);
        assert!(page.encoded_len() <= 10_000 + 16);
        assert!(page.records.len() < 10 && !page.records.is_empty());
        assert_eq!(page.next_before_id, page.records[0].id);
    }

    #[test]
    fn a_record_larger_than_a_page_is_shrunk_not_lost() {
        let page = fill(newest_first(2, 50_000), 10, 10_000);
        assert_eq!(page.records.len(), 1);
        let detail = serde_json::to_string(&page.records[0].detail).unwrap();
        assert!(detail.contains("truncated_detail_bytes"), "{detail}");
        assert_eq!(page.next_before_id, 2);
    }

    #[test]
    fn page_sizes_default_clamp_old_limits_and_refuse_too_large_pages() {
        let q = |limit, page_size| AuditQuery {
            limit,
            page_size,
            ..Default::default()
        };
        assert_eq!(page_size(&q(0, 0)).unwrap(), DEFAULT_PAGE_RECORDS);
        assert_eq!(page_size(&q(100_000, 0)).unwrap(), MAX_AUDIT_PAGE_RECORDS);
        assert_eq!(page_size(&q(0, 20)).unwrap(), 20);
        let err = page_size(&q(0, MAX_AUDIT_PAGE_RECORDS + 1)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("largest audit page"),
            "{}",
            err.message()
        );
    }
}
