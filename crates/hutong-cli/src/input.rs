//! The export a department hands over, as `hutong ingest` and `hutong validate` read it:
//! NDJSON, CSV (UTF-8 or GBK/GB18030) or a workbook, and where its records' identities are.

use std::path::PathBuf;

use hutong_client::{Format, Identity, Line, ReadOptions, read_records};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// From the extension: .csv/.tsv/.txt CSV; .xlsx/.xlsm/.xls/.xlsb/.ods a workbook; else NDJSON.
    Auto,
    /// One JSON object per line: a wrapper `{"source_id", "revision", "op", "payload"}` or a bare payload.
    Ndjson,
    /// A header row naming the fields, then one record per row.
    Csv,
    /// A workbook (.xlsx, .xls, .ods …): a header row, then one record per row.
    Excel,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Csv => Format::Csv,
            FormatArg::Excel => Format::Excel,
        }
    }
}

/// The export file and how to read it.
#[derive(Debug, clap::Args)]
pub(crate) struct InputArgs {
    /// The export: NDJSON (one wrapper or bare payload per line), CSV with a header row, or a
    /// workbook (.xlsx/.xls/.ods; cells stored as text stay text, dates become YYYY-MM-DD).
    pub(crate) file: PathBuf,
    /// The file's shape.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) format: FormatArg,
    /// A CSV file's encoding: utf-8, gbk, gb18030 … (default: UTF-8 when the file is, else GB18030).
    #[arg(long)]
    pub(crate) encoding: Option<String>,
    /// The sheet of a workbook to read (default: the first); `*` reads every sheet.
    #[arg(long)]
    pub(crate) sheet: Option<String>,
    /// Field (column) holding the record's id in the department's system, for bare payloads and
    /// table rows — never its position in the file.
    #[arg(long)]
    pub(crate) id_field: Option<String>,
    /// Field (column) holding the record's revision: a version number, or a last-modified time
    /// (its Unix seconds), so an update supersedes the record before.
    #[arg(long)]
    pub(crate) revision_field: Option<String>,
}

impl InputArgs {
    /// How the file is read, in words, for a checkpoint: format, encoding, sheet, id and
    /// revision fields (`declared_id` when `--id-field` is not given).
    pub(crate) fn reading(&self, declared_id: Option<&str>) -> String {
        format!(
            "format={:?} encoding={} sheet={} id-field={} revision-field={}",
            self.format,
            self.encoding.as_deref().unwrap_or("auto"),
            self.sheet.as_deref().unwrap_or("first"),
            self.id_field.as_deref().or(declared_id).unwrap_or("-"),
            self.revision_field.as_deref().unwrap_or("-"),
        )
    }

    /// The records of the file, of source kind `kind`; `declared_id` is the id field to use when
    /// `--id-field` is not given; `strict` refuses records without a stable id and revision.
    pub(crate) fn read(&self, kind: &str, declared_id: Option<&str>, strict: bool) -> anyhow::Result<Vec<Line>> {
        let options = ReadOptions {
            identity: Identity {
                id_field: self.id_field.as_deref().or(declared_id),
                revision_field: self.revision_field.as_deref(),
                strict,
            },
            format: self.format.into(),
            encoding: self.encoding.as_deref(),
            sheet: self.sheet.as_deref(),
            delimiter: None,
        };
        Ok(read_records(&self.file, kind, &options)?)
    }
}
