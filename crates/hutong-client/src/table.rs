//! Tables as exports: CSV (UTF-8, or GBK/GB18030 as county systems write it) and workbooks
//! (.xlsx, .xlsm, .xls, .xlsb, .ods through calamine).
//!
//! The first row names the fields; every later row is one bare payload: an object of the row's
//! non-empty cells, each as text — a cell stored as text keeps it (leading zeros, an 18-digit
//! citizen ID), a whole number has no `.0`, a date cell is `YYYY-MM-DD` (`YYYY-MM-DD HH:MM:SS`
//! with a time). Source ids and revisions come from the named columns, as for bare NDJSON lines.
//! A CSV row whose bytes are not text in the file's encoding is sent as its bytes with the
//! charset named, so the gateway answers it (rule `charset`) and the other rows go on.

use std::path::Path;

use calamine::{Data, Reader as _};
use encoding_rs::Encoding;
use hutong_proto::v1::SourceRecord;
use serde_json::{Map, Value};

use crate::records::{Identity, Line, Place, RecordError, bare, read_export};

/// The shape of an export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// From the file's extension: `.csv`/`.txt` CSV, `.xlsx`/`.xlsm`/`.xls`/`.xlsb`/`.ods` a
    /// workbook, anything else NDJSON.
    #[default]
    Auto,
    /// One JSON object per line (a wrapper or a bare payload).
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
    /// A workbook: header row, then one record per row.
    Excel,
}

impl Format {
    /// The format of `path` when `self` is [`Format::Auto`].
    pub fn of(self, path: &Path) -> Format {
        if self != Format::Auto {
            return self;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" | "tsv" => Format::Csv,
            "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Format::Excel,
            _ => Format::Ndjson,
        }
    }
}

/// How to read an export: its shape, the encoding of a CSV file, the sheets of a workbook, and
/// where its records' identities are.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions<'a> {
    /// Source ids and revisions.
    pub identity: Identity<'a>,
    /// The file's shape.
    pub format: Format,
    /// A CSV file's encoding label (`utf-8`, `gbk`, `gb18030` …); default: UTF-8 when the file
    /// is valid UTF-8 (or has a byte-order mark), else GB18030 (a superset of GBK).
    pub encoding: Option<&'a str>,
    /// The sheet of a workbook to read (default the first); `*` reads every sheet.
    pub sheet: Option<&'a str>,
    /// The CSV field separator (default `,`; a `.tsv` file `\t`).
    pub delimiter: Option<u8>,
}

/// Reads an export of any [`Format`] into records of source kind `kind`.
pub fn read_records(path: &Path, kind: &str, options: &ReadOptions<'_>) -> Result<Vec<Line>, RecordError> {
    match options.format.of(path) {
        Format::Csv => read_csv(path, kind, options),
        Format::Excel => read_workbook(path, kind, options),
        Format::Ndjson | Format::Auto => read_export(path, kind, options.identity),
    }
}

/// The encoding of a CSV file: the label given, else a byte-order mark, else UTF-8 when every
/// byte is, else GB18030.
pub fn csv_encoding(bytes: &[u8], label: Option<&str>) -> Result<&'static Encoding, String> {
    if let Some(label) = label {
        return Encoding::for_label(label.trim().as_bytes())
            .ok_or_else(|| format!("unknown encoding {label:?} (try utf-8, gbk or gb18030)"));
    }
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return Ok(enc);
    }
    if std::str::from_utf8(bytes).is_ok() {
        return Ok(encoding_rs::UTF_8);
    }
    // Not UTF-8 throughout: GB18030, unless most lines with non-ASCII text are UTF-8 (a UTF-8
    // export with a few rows cut inside a character: those rows, not the file, are refused).
    let (mut utf8, mut other) = (0usize, 0usize);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_ascii()) {
        if std::str::from_utf8(line).is_ok() {
            utf8 += 1;
        } else {
            other += 1;
        }
    }
    Ok(if utf8 > other { encoding_rs::UTF_8 } else { encoding_rs::GB18030 })
}

/// Header names: trimmed, non-empty, unique (empty cells after the last name are not columns).
fn header(mut cells: Vec<String>, at: &Place<'_>) -> Result<Vec<String>, RecordError> {
    let table = |message: String| RecordError::Table { at: at.to_string(), message };
    while cells.last().is_some_and(|c| c.trim().is_empty()) {
        cells.pop();
    }
    let mut names: Vec<String> = Vec::with_capacity(cells.len());
    for (i, c) in cells.into_iter().enumerate() {
        let c = c.trim().trim_start_matches('\u{feff}').to_owned();
        if c.is_empty() {
            return Err(table(format!(
                "column {} of the header row has no name: the first row must name every column",
                i + 1
            )));
        }
        if names.contains(&c) {
            return Err(table(format!("column {c:?} is named twice in the header row")));
        }
        names.push(c);
    }
    if names.is_empty() {
        return Err(table("no header row: the first row must name the columns".to_owned()));
    }
    Ok(names)
}

/// Refuses a row with a value in a column the header does not name (it would be lost).
fn no_unnamed_values(names: &[String], empty: impl Iterator<Item = bool>, at: &Place<'_>) -> Result<(), RecordError> {
    let width = empty.enumerate().filter(|(_, e)| !e).map(|(i, _)| i + 1).max().unwrap_or(0);
    if width > names.len() {
        return Err(RecordError::Table {
            at: at.to_string(),
            message: format!(
                "a value in column {width}, the header names {}: name the column, or quote a separator inside a value",
                names.len()
            ),
        });
    }
    Ok(())
}

/// A row as a bare payload: its non-empty cells by column name.
fn row_object(names: &[String], cells: impl IntoIterator<Item = String>) -> Value {
    let mut obj = Map::new();
    for (name, cell) in names.iter().zip(cells) {
        if !cell.trim().is_empty() {
            obj.insert(name.clone(), Value::String(cell));
        }
    }
    Value::Object(obj)
}

fn read_csv(path: &Path, kind: &str, options: &ReadOptions<'_>) -> Result<Vec<Line>, RecordError> {
    let bytes = std::fs::read(path).map_err(|source| RecordError::Read { path: path.to_owned(), source })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
    let top = Place { path, sheet: None, number: 1 };
    let encoding = csv_encoding(&bytes, options.encoding)
        .map_err(|message| RecordError::Table { at: top.to_string(), message })?;
    // UTF-16 (Excel's "Unicode text") is made UTF-8 first: its bytes cannot be split on ASCII.
    let (encoding, utf8_copy) = if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        let (text, _, _) = encoding.decode(&bytes);
        (encoding_rs::UTF_8, Some(text.into_owned().into_bytes()))
    } else {
        (encoding, None)
    };
    let body: &[u8] = match &utf8_copy {
        Some(b) => b,
        None => match Encoding::for_bom(&bytes) {
            Some((_, bom)) => &bytes[bom..],
            None => &bytes[..],
        },
    };
    // `,`; a tab for .tsv, or when the header row has tabs and no comma (Excel's text exports).
    let delimiter = options.delimiter.unwrap_or_else(|| {
        let header = body.split(|b| *b == b'\n').next().unwrap_or_default();
        let tabbed = header.contains(&b'\t') && !header.contains(&b',');
        if tabbed || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv")) { b'\t' } else { b',' }
    });
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(body);
    let decode = |raw: &[u8]| -> Option<String> {
        let (text, malformed) = encoding.decode_without_bom_handling(raw);
        (!malformed).then(|| text.into_owned())
    };
    let mut names: Option<Vec<String>> = None;
    let mut out = Vec::new();
    let mut row = csv::ByteRecord::new();
    // (byte offset, line number there) of the last row's start.
    let mut counted = (0usize, 1usize);
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = Place { path, sheet: None, number: reader.position().line() as usize };
                return Err(RecordError::Table { at: at.to_string(), message: format!("not CSV: {e}") });
            }
        }
        // The line the row starts on, from its byte offset (csv's own line count lags behind a
        // CRLF): past the line ends before it, counted from where the last row was.
        let mut start = row.position().map_or(0, |p| p.byte() as usize).min(body.len());
        while body.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        if start >= counted.0 {
            counted.1 += body[counted.0..start].iter().filter(|b| **b == b'\n').count();
            counted.0 = start;
        }
        let number = counted.1;
        let at = Place { path, sheet: None, number };
        if row.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let Some(names) = &names else {
            let cells: Option<Vec<String>> = row.iter().map(decode).collect();
            let cells = cells.ok_or_else(|| RecordError::Table {
                at: at.to_string(),
                message: format!(
                    "the header row is not {} text: name the file's encoding with --encoding (utf-8, gbk, gb18030)",
                    encoding.name()
                ),
            })?;
            names = Some(header(cells, &at)?);
            continue;
        };
        no_unnamed_values(names, row.iter().map(|f| f.iter().all(u8::is_ascii_whitespace)), &at)?;
        let cells: Option<Vec<String>> = row.iter().map(decode).collect();
        let record = match cells {
            Some(cells) => {
                let v = row_object(names, cells);
                let payload = serde_json::to_vec(&v).expect("an object of strings serialises");
                bare(&v, payload, kind, options.identity, &at, name)?
            }
            // Not text in the file's encoding: the row's bytes, with the charset named, for the
            // gateway to answer (and keep in the dead-letter topic) on its own.
            None => {
                let raw = row.iter().collect::<Vec<_>>().join(&delimiter);
                let lossy: Vec<String> =
                    row.iter().map(|f| encoding.decode_without_bom_handling(f).0.into_owned()).collect();
                let mut rec = bare(&row_object(names, lossy), raw, kind, options.identity, &at, name)?;
                rec.charset = encoding.name().to_ascii_lowercase();
                rec
            }
        };
        out.push(Line { number, sheet: None, record });
    }
    Ok(out)
}

/// A cell as text, `None` when empty.
fn cell_text(cell: &Data) -> Option<String> {
    let text = match cell {
        Data::Empty => return None,
        Data::String(s) | Data::DurationIso(s) => s.clone(),
        // OpenDocument date-times are ISO text: as the workbook's other dates, `YYYY-MM-DD HH:MM:SS`.
        Data::DateTimeIso(s) => match chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
            Ok(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Ok(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            Err(_) => s.clone(),
        },
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if dt.is_datetime() && t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) if dt.is_datetime() => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            _ => dt.as_f64().to_string(),
        },
        // The error as the sheet shows it (`#DIV/0!`); the standard refuses it where it lands.
        Data::Error(e) => e.to_string(),
    };
    Some(text)
}

fn read_workbook(path: &Path, kind: &str, options: &ReadOptions<'_>) -> Result<Vec<Line>, RecordError> {
    let top = Place { path, sheet: None, number: 1 };
    let table = |message: String| RecordError::Table { at: top.to_string(), message };
    let mut book = calamine::open_workbook_auto(path).map_err(|e| table(format!("not a readable workbook: {e}")))?;
    let all = book.sheet_names();
    let sheets: Vec<String> = match options.sheet {
        None => all.first().cloned().into_iter().collect(),
        Some("*") => all.clone(),
        Some(s) if all.iter().any(|n| n == s) => vec![s.to_owned()],
        Some(s) => return Err(table(format!("no sheet {s:?}; the workbook has {}", all.join(", ")))),
    };
    if sheets.is_empty() {
        return Err(table("the workbook has no sheet".to_owned()));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
    let mut out = Vec::new();
    for sheet in &sheets {
        let range = book.worksheet_range(sheet).map_err(|e| table(format!("sheet {sheet:?}: {e}")))?;
        let first_row = range.start().map_or(0, |(r, _)| r as usize);
        let mut names: Option<Vec<String>> = None;
        for (i, cells) in range.rows().enumerate() {
            let number = first_row + i + 1;
            let at = Place { path, sheet: Some(sheet), number };
            let texts: Vec<Option<String>> = cells.iter().map(cell_text).collect();
            if texts.iter().all(Option::is_none) {
                continue;
            }
            let Some(names) = &names else {
                // Leading empty columns of the header are the range's, not the table's.
                names = Some(header(texts.into_iter().map(Option::unwrap_or_default).collect(), &at)?);
                continue;
            };
            no_unnamed_values(names, texts.iter().map(Option::is_none), &at)?;
            let v = row_object(names, texts.into_iter().map(Option::unwrap_or_default));
            let payload = serde_json::to_vec(&v).expect("an object of strings serialises");
            let record: SourceRecord = bare(&v, payload, kind, options.identity, &at, name)?;
            out.push(Line { number, sheet: Some(sheet.clone()), record });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict<'a>(id: &'a str, rev: &'a str) -> ReadOptions<'a> {
        ReadOptions {
            identity: Identity { id_field: Some(id), revision_field: Some(rev), strict: true },
            ..ReadOptions::default()
        }
    }

    fn payload(line: &Line) -> Value {
        crate::decoded_payload(&line.record).expect("a JSON payload")
    }

    #[test]
    fn csv_rows_are_bare_payloads_of_text() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.csv");
        std::fs::write(
            &f,
            "\u{feff}ID,XM,GMSFHM,YZBM,GXSJ\r\nT1,张三,11010119900307001X,010010,2026-11-03 19:00:00\r\n\r\n\"T2\",\"李,四\",,000123,2026-11-04\r\n",
        )
        .unwrap();
        let lines = read_records(&f, "k", &strict("ID", "GXSJ")).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].number, lines[1].number), (2, 4));
        assert_eq!(lines[0].record.source_id, "T1");
        assert_eq!(lines[0].record.revision, 1_793_703_600);
        assert_eq!(payload(&lines[0])["YZBM"], "010010", "leading zeros stay");
        assert_eq!(
            payload(&lines[1]),
            serde_json::json!({"ID": "T2", "XM": "李,四", "YZBM": "000123", "GXSJ": "2026-11-04"})
        );
        assert!(lines[0].record.charset.is_empty());
        // Strictly, a row without its id is refused with its place.
        std::fs::write(&f, "ID,XM,GXSJ\nT1,张三,2026-11-03\n,李四,2026-11-03\n").unwrap();
        let e = read_records(&f, "k", &strict("ID", "GXSJ")).unwrap_err().to_string();
        assert!(e.contains("x.csv:3") && e.contains("--id-field"), "{e}");
    }

    #[test]
    fn gbk_csv_is_detected_and_a_broken_row_travels_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gbk.csv");
        let mut bytes = encoding_rs::GBK.encode("编号,姓名,版本\nA1,周玉珍,3\n").0.into_owned();
        bytes.extend_from_slice(b"A2,\x81\x20bad,4\n");
        bytes.extend_from_slice(&encoding_rs::GBK.encode("A3,王建国,5\n").0);
        std::fs::write(&f, &bytes).unwrap();
        assert_eq!(csv_encoding(&bytes, None).unwrap(), encoding_rs::GB18030);
        let lines = read_records(&f, "k", &strict("编号", "版本")).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(payload(&lines[0]), serde_json::json!({"编号": "A1", "姓名": "周玉珍", "版本": "3"}));
        assert_eq!((lines[1].record.source_id.as_str(), lines[1].record.revision), ("A2", 4));
        assert_eq!(lines[1].record.charset, "gb18030", "the broken row is sent as its bytes, its charset named");
        assert_eq!(lines[1].record.payload, b"A2,\x81\x20bad,4");
        assert_eq!(crate::decoded_payload(&lines[1].record), None);
        assert_eq!(payload(&lines[2])["姓名"], "王建国", "the rows after it are read");
        // Named wrongly, the header says how to fix it.
        let e = read_records(&f, "k", &ReadOptions { encoding: Some("utf-8"), ..strict("编号", "版本") })
            .unwrap_err()
            .to_string();
        assert!(e.contains("gbk.csv:1") && e.contains("--encoding"), "{e}");
        let e = read_records(&f, "k", &ReadOptions { encoding: Some("latin-9x"), ..strict("编号", "版本") })
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown encoding"), "{e}");
    }

    #[test]
    fn a_utf8_export_with_a_broken_row_stays_utf8_and_utf16_text_exports_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cut.csv");
        let mut bytes = "ID,XM,V\n1,李四,1\n2,文三,1\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"3,\xe6\x9d,1\n"); // 李 cut after two of its three bytes
        bytes.extend_from_slice("4,王建国,1\n".as_bytes());
        std::fs::write(&f, &bytes).unwrap();
        assert_eq!(csv_encoding(&bytes, None).unwrap(), encoding_rs::UTF_8);
        let lines = read_records(&f, "k", &strict("ID", "V")).unwrap();
        assert_eq!(payload(&lines[0])["XM"], "李四", "not read as GB18030 mojibake");
        assert_eq!(lines[2].record.charset, "utf-8", "only the broken row travels as bytes");
        assert_eq!(payload(&lines[3])["XM"], "王建国");
        // Excel's "Unicode text": UTF-16LE with a BOM, tab-separated, .txt.
        let f = dir.path().join("unicode.txt");
        let mut utf16 = vec![0xff, 0xfe];
        for u in "编号\t姓名\t版本\r\nA1\t周玉珍\t3\r\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(&f, &utf16).unwrap();
        let lines = read_records(&f, "k", &strict("编号", "版本")).unwrap();
        assert_eq!(payload(&lines[0]), serde_json::json!({"编号": "A1", "姓名": "周玉珍", "版本": "3"}));
        assert_eq!(lines[0].number, 2);
    }

    #[test]
    fn csv_shapes_that_would_lose_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.csv");
        let read = |text: &str| {
            std::fs::write(&f, text).unwrap();
            read_records(&f, "k", &strict("ID", "V")).map_err(|e| e.to_string())
        };
        let e = read("ID,XM,ID\n1,a,2\n").unwrap_err();
        assert!(e.contains("\"ID\" is named twice"), "{e}");
        let e = read("ID,,V\n1,a,2\n").unwrap_err();
        assert!(e.contains("column 2") && e.contains("no name"), "{e}");
        let e = read("ID,XM,V\n1,张,三,2\n").unwrap_err();
        assert!(e.contains("x.csv:2") && e.contains("column 4") && e.contains("quote"), "{e}");
        // A trailing empty field (a row ending in a comma) loses nothing.
        assert_eq!(read("ID,XM,V,\n1,张三,2,\n").unwrap().len(), 1);
    }

    #[test]
    fn workbooks_keep_text_whole_numbers_and_dates() {
        use rust_xlsxwriter::{ExcelDateTime, Format as Style, Workbook};
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("export.xlsx");
        let mut book = Workbook::new();
        let date = Style::new().set_num_format("yyyy-mm-dd");
        let stamp = Style::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let sheet = book.add_worksheet().set_name("2026年11月").unwrap();
        for (c, h) in ["编号", "姓名", "公民身份号码", "邮编", "人数", "入伍日期", "更新时间"].iter().enumerate()
        {
            sheet.write_string(0, c as u16, *h).unwrap();
        }
        sheet.write_string(1, 0, "T001").unwrap();
        sheet.write_string(1, 1, "周玉珍").unwrap();
        sheet.write_string(1, 2, "11010119900307001X").unwrap();
        sheet.write_string(1, 3, "010010").unwrap();
        sheet.write_number(1, 4, 3.0).unwrap();
        sheet.write_datetime_with_format(1, 5, ExcelDateTime::from_ymd(2001, 9, 1).unwrap(), &date).unwrap();
        let t = ExcelDateTime::parse_from_str("2026-11-03T19:00:00").unwrap();
        sheet.write_datetime_with_format(1, 6, &t, &stamp).unwrap();
        sheet.write_string(2, 0, "T002").unwrap();
        sheet.write_number(2, 4, 2.5).unwrap();
        sheet.write_number(2, 6, 7.0).unwrap();
        let second = book.add_worksheet().set_name("补录").unwrap();
        second.write_string(0, 0, "编号").unwrap();
        second.write_string(0, 1, "更新时间").unwrap();
        second.write_string(1, 0, "T003").unwrap();
        second.write_string(1, 1, "9").unwrap();
        book.save(&f).unwrap();

        let lines = read_records(&f, "k", &strict("编号", "更新时间")).unwrap();
        assert_eq!(lines.len(), 2, "the first sheet by default");
        assert_eq!(
            payload(&lines[0]),
            serde_json::json!({
                "编号": "T001", "姓名": "周玉珍", "公民身份号码": "11010119900307001X", "邮编": "010010",
                "人数": "3", "入伍日期": "2001-09-01", "更新时间": "2026-11-03 19:00:00",
            })
        );
        assert_eq!(lines[0].record.revision, 1_793_703_600);
        assert_eq!((lines[0].number, lines[0].sheet.as_deref()), (2, Some("2026年11月")));
        assert_eq!(payload(&lines[1])["人数"], "2.5");
        assert_eq!(lines[1].record.revision, 7);
        let all = read_records(&f, "k", &ReadOptions { sheet: Some("*"), ..strict("编号", "更新时间") }).unwrap();
        assert_eq!(all.iter().map(|l| l.record.source_id.as_str()).collect::<Vec<_>>(), ["T001", "T002", "T003"]);
        let one = read_records(&f, "k", &ReadOptions { sheet: Some("补录"), ..strict("编号", "更新时间") }).unwrap();
        assert_eq!(one[0].sheet.as_deref(), Some("补录"));
        let e = read_records(&f, "k", &ReadOptions { sheet: Some("12月"), ..strict("编号", "更新时间") })
            .unwrap_err()
            .to_string();
        assert!(e.contains("no sheet \"12月\"") && e.contains("补录"), "{e}");
        // Leniently, a row's fallback id names its sheet.
        let lenient = read_records(&f, "k", &ReadOptions { sheet: Some("补录"), ..ReadOptions::default() }).unwrap();
        assert_eq!(lenient[0].record.source_id, "export.xlsx:补录:2");
    }
}
