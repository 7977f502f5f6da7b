//! National and Hutong code lists, loaded from `schemas/codes/` into lookups.
//!
//! A list is a JSON file with its source standard, edition and version, and
//! either its codes inline or a `data` file (`code<TAB>name<TAB>parent`) for
//! long lists such as divisions.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde::Deserialize;

use crate::StandardError;

/// One code of a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The code itself, e.g. `01`.
    pub code: String,
    /// Its Chinese name, e.g. `汉族`.
    pub name: String,
    /// English name, where the standard gives one.
    #[serde(default)]
    pub name_en: Option<String>,
    /// Other spellings departments use for the same code, e.g. `汉`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The parent code in hierarchical lists (divisions).
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeListFile {
    id: String,
    title: String,
    #[serde(default)]
    title_en: Option<String>,
    standard: String,
    edition: String,
    version: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    codes: Vec<Code>,
    #[serde(default)]
    data: Option<String>,
    /// A gzip'd `code<TAB>name` file of numeric codes kept compactly
    /// (membership and name only), e.g. 620,000 village codes.
    #[serde(default)]
    compact_data: Option<String>,
}

/// Numeric codes held compactly: sorted codes, names in one string.
#[derive(Debug, Clone, Default)]
struct CompactCodes {
    codes: Vec<u64>,
    ends: Vec<u32>,
    names: String,
}

impl CompactCodes {
    fn index(&self, code: &str) -> Option<usize> {
        if code.is_empty() || code.len() > 19 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Leading zeros would alias: keep the length in the number's top digit.
        self.codes.binary_search(&compact_key(code)?).ok()
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.names[start..self.ends[i] as usize]
    }
}

fn compact_key(code: &str) -> Option<u64> {
    let n: u64 = code.parse().ok()?;
    Some(n.checked_mul(100)? + code.len() as u64)
}

/// A code list with its provenance and fast lookups by code and by name.
#[derive(Debug, Clone)]
pub struct CodeList {
    /// Identifier used by `x-code-list` and adapters, e.g. `gb-t-3304`.
    pub id: String,
    /// Chinese title of the list.
    pub title: String,
    /// English title.
    pub title_en: Option<String>,
    /// The standard it comes from, with its number, e.g. `GB/T 3304-1991`.
    pub standard: String,
    /// Edition of the standard or data set.
    pub edition: String,
    /// Version of this file.
    pub version: String,
    /// Where the data came from, when it is not the standard's text.
    pub source: Option<String>,
    /// Notes on deviations from the standard.
    pub note: Option<String>,
    codes: Vec<Code>,
    by_code: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    compact: CompactCodes,
}

impl CodeList {
    fn build(
        file: CodeListFile,
        codes: Vec<Code>,
        compact: CompactCodes,
        origin: &Path,
    ) -> Result<Self, StandardError> {
        let mut by_code = HashMap::with_capacity(codes.len());
        let mut by_name = HashMap::with_capacity(codes.len());
        for (i, c) in codes.iter().enumerate() {
            if by_code.insert(c.code.clone(), i).is_some() {
                return Err(StandardError::CodeList {
                    path: origin.to_owned(),
                    message: format!("duplicate code {}", c.code),
                });
            }
            // Names need not be unique in hierarchical lists (many 市辖区); first wins.
            by_name.entry(c.name.clone()).or_insert(i);
            for a in &c.aliases {
                by_name.entry(a.clone()).or_insert(i);
            }
        }
        Ok(Self {
            id: file.id,
            title: file.title,
            title_en: file.title_en,
            standard: file.standard,
            edition: file.edition,
            version: file.version,
            source: file.source,
            note: file.note,
            codes,
            by_code,
            by_name,
            compact,
        })
    }

    /// The entry for `code`, if the list has it.
    pub fn get(&self, code: &str) -> Option<&Code> {
        self.by_code.get(code).map(|&i| &self.codes[i])
    }

    /// Whether `code` is in the list.
    pub fn contains(&self, code: &str) -> bool {
        self.by_code.contains_key(code) || self.compact.index(code).is_some()
    }

    /// The name of `code`, from the full or the compact part of the list.
    pub fn name_of(&self, code: &str) -> Option<&str> {
        self.get(code).map(|c| c.name.as_str()).or_else(|| self.compact.index(code).map(|i| self.compact.name(i)))
    }

    /// How many codes the list has, compact ones included.
    pub fn len(&self) -> usize {
        self.codes.len() + self.compact.codes.len()
    }

    /// Whether the list has no codes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Codes of the compact part (e.g. villages), with their names.
    pub fn compact_codes(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.compact.codes.iter().enumerate().map(|(i, k)| (k / 100, self.compact.name(i)))
    }

    /// The code whose code, name or alias is `value`.
    pub fn lookup(&self, value: &str) -> Option<&Code> {
        self.get(value).or_else(|| self.by_name.get(value).map(|&i| &self.codes[i]))
    }

    /// All codes, in file order.
    pub fn codes(&self) -> &[Code] {
        &self.codes
    }
}

/// Every code list of the standard, by id.
#[derive(Debug, Clone, Default)]
pub struct CodeLists {
    lists: BTreeMap<String, CodeList>,
}

impl CodeLists {
    /// Loads every `*.json` list in `dir`.
    pub fn load(dir: &Path) -> Result<Self, StandardError> {
        let mut lists = BTreeMap::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| StandardError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| StandardError::io(&path, e))?;
            let mut file: CodeListFile = serde_json::from_str(&text)
                .map_err(|e| StandardError::CodeList { path: path.clone(), message: e.to_string() })?;
            let codes = match file.data.take() {
                Some(data) => read_tsv(&dir.join(data))?,
                None => std::mem::take(&mut file.codes),
            };
            let compact = match file.compact_data.take() {
                Some(data) => read_compact(&dir.join(data))?,
                None => CompactCodes::default(),
            };
            let list = CodeList::build(file, codes, compact, &path)?;
            if lists.contains_key(&list.id) {
                return Err(StandardError::CodeList { path, message: format!("duplicate list id {}", list.id) });
            }
            lists.insert(list.id.clone(), list);
        }
        Ok(Self { lists })
    }

    /// The list `id`.
    pub fn get(&self, id: &str) -> Option<&CodeList> {
        self.lists.get(id)
    }

    /// All lists, by id.
    pub fn iter(&self) -> impl Iterator<Item = &CodeList> {
        self.lists.values()
    }
}

fn read_compact(path: &Path) -> Result<CompactCodes, StandardError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| StandardError::io(path, e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| StandardError::io(path, e))?;
    let bad = |n: usize, m: &str| StandardError::CodeList { path: path.to_owned(), message: format!("line {n}: {m}") };
    let mut rows: Vec<(u64, &str)> = Vec::with_capacity(text.len() / 40);
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (code, name) = line.split_once('\t').ok_or_else(|| bad(n + 1, "expected code<TAB>name"))?;
        let key = compact_key(code).filter(|_| code.bytes().all(|b| b.is_ascii_digit()));
        rows.push((key.ok_or_else(|| bad(n + 1, "codes must be numeric"))?, name));
    }
    rows.sort_unstable_by_key(|r| r.0);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(StandardError::CodeList {
            path: path.to_owned(),
            message: format!("duplicate code {}", w[0].0 / 100),
        });
    }
    let mut compact = CompactCodes {
        codes: Vec::with_capacity(rows.len()),
        ends: Vec::with_capacity(rows.len()),
        names: String::with_capacity(rows.iter().map(|r| r.1.len()).sum()),
    };
    for (key, name) in rows {
        compact.codes.push(key);
        compact.names.push_str(name);
        compact.ends.push(compact.names.len() as u32);
    }
    Ok(compact)
}

fn read_tsv(path: &Path) -> Result<Vec<Code>, StandardError> {
    let text = std::fs::read_to_string(path).map_err(|e| StandardError::io(path, e))?;
    let mut codes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(code), Some(name)) = (cols.next(), cols.next()) else {
            return Err(StandardError::CodeList {
                path: path.to_owned(),
                message: format!("line {}: expected code<TAB>name<TAB>parent", n + 1),
            });
        };
        let parent = cols.next().filter(|p| !p.is_empty()).map(str::to_owned);
        codes.push(Code { code: code.to_owned(), name: name.to_owned(), name_en: None, aliases: vec![], parent });
    }
    Ok(codes)
}
