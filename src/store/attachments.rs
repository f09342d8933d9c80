//! Files sent in conversations (XB1): stored in the database (both backends, so a backup of
//! the database is a backup of everything), found by a random capability id.

use super::schema::attachments;
use super::{Store, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::Serialize;

/// A file's description, as messages carry it in `meta.attachment`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = attachments)]
pub struct AttachmentInfo {
    /// The capability id (in its URL).
    pub id: String,
    /// The conversation it was sent in, once sent.
    #[serde(skip)]
    pub conversation_id: Option<i64>,
    /// `visitor` or `operator`.
    #[serde(skip)]
    pub uploader_kind: String,
    /// Who uploaded it.
    #[serde(skip)]
    pub uploader_id: i64,
    /// The file name, as given (shown as text, used in the download's name).
    #[serde(rename = "name")]
    pub filename: String,
    /// Its type, checked against its content.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Bytes.
    pub size: i64,
}

/// A new file.
pub struct NewAttachment<'a> {
    /// Capability id.
    pub id: &'a str,
    /// `visitor` or `operator`.
    pub uploader_kind: &'a str,
    /// Who uploads.
    pub uploader_id: i64,
    /// Its name.
    pub filename: &'a str,
    /// Its checked type.
    pub content_type: &'a str,
    /// Its bytes.
    pub data: &'a [u8],
    /// Now, ms.
    pub now: i64,
}

impl Store {
    /// Stores an uploaded file, not yet sent in any conversation.
    pub fn add_attachment(&self, a: &NewAttachment<'_>) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::insert_into(attachments::table)
                .values((
                    attachments::id.eq(a.id),
                    attachments::uploader_kind.eq(a.uploader_kind),
                    attachments::uploader_id.eq(a.uploader_id),
                    attachments::filename.eq(a.filename),
                    attachments::content_type.eq(a.content_type),
                    attachments::size.eq(a.data.len() as i64),
                    attachments::data.eq(a.data),
                    attachments::created_at.eq(a.now),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// A file's description.
    pub fn attachment_info(&self, id: &str) -> StoreResult<Option<AttachmentInfo>> {
        db_run!(self, |conn| {
            Ok(attachments::table
                .find(id)
                .select(AttachmentInfo::as_select())
                .first(conn)
                .optional()?)
        })
    }

    /// A file's description and bytes, for download.
    pub fn attachment_data(&self, id: &str) -> StoreResult<Option<(AttachmentInfo, Vec<u8>)>> {
        db_run!(self, |conn| {
            Ok(attachments::table
                .find(id)
                .select((AttachmentInfo::as_select(), attachments::data))
                .first(conn)
                .optional()?)
        })
    }
}
