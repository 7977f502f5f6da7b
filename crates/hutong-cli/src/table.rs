//! Text columns that line up with Chinese in them: a CJK character takes two columns of a
//! terminal, so padding counts display width (`unicode-width`), not characters.

use unicode_width::UnicodeWidthStr;

/// `s` padded with spaces to `width` terminal columns (longer text is left as it is).
pub(crate) fn pad(s: &str, width: usize) -> String {
    let w = s.width();
    if w >= width { s.to_owned() } else { format!("{s}{}", " ".repeat(width - w)) }
}

/// One line of a table: each cell padded to its width (0: as it is), two spaces between.
pub(crate) fn row(cells: &[(&str, usize)]) -> String {
    cells.iter().map(|(s, w)| pad(s, *w)).collect::<Vec<_>>().join("  ").trim_end().to_owned()
}

/// `s` cut to at most `width` terminal columns, with `…` where it was cut.
pub(crate) fn clip(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_counts_double() {
        assert_eq!(pad("胡金凤", 8), "胡金凤  ");
        assert_eq!(pad("name", 8), "name    ");
        assert_eq!(row(&[("胡金凤", 8), ("x", 2), ("end", 0)]), "胡金凤    x   end");
        assert_eq!(pad("居住地址很长很长", 4), "居住地址很长很长");
        assert_eq!(clip("西湖区西溪街道石灰桥社区", 9), "西湖区西…");
        assert_eq!(clip("short", 9), "short");
        assert_eq!(pad(&clip("西湖区西溪街道石灰桥社区", 9), 9).width(), 9);
    }
}
