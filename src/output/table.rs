//! A terminal table whose columns are as wide as their widest cell (or header), so no figure
//! ever pushes a column out of line, however large it grows.

use std::io::{self, Write};

/// Text columns align left, figures right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

pub(crate) struct Table {
    /// Header, alignment, and the spaces before the column (none before the first).
    cols: Vec<(&'static str, Align, usize)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns as (header, alignment); figures are one space apart, text columns two.
    pub(crate) fn new(cols: &[(&'static str, Align)]) -> Self {
        let mut out = Vec::with_capacity(cols.len());
        for (i, &(h, a)) in cols.iter().enumerate() {
            let gap = match (i, a, cols.get(i.wrapping_sub(1)).map(|c| c.1)) {
                (0, _, _) => 0,
                (_, Align::Right, Some(Align::Right)) => 1,
                _ => 2,
            };
            out.push((h, a, gap));
        }
        Table { cols: out, rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.cols.len(), "a cell per column");
        self.rows.push(cells);
    }

    pub(crate) fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let width = |i: usize| {
            let cells = self.rows.iter().map(|r| r[i].chars().count());
            cells.chain([self.cols[i].0.chars().count()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.cols.len()).map(width).collect();
        let header: Vec<String> = self.cols.iter().map(|c| c.0.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align, gap), cell)) in self.cols.iter().zip(cells).enumerate() {
                line.push_str(&" ".repeat(*gap));
                let pad = widths[i].saturating_sub(cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            writeln!(w, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_grow_with_their_widest_cell() {
        let mut t = Table::new(&[("NAME", Align::Left), ("SENT", Align::Right), ("LOSS%", Align::Right)]);
        t.row(vec!["a".into(), "12345678901".into(), "0.00".into()]);
        t.row(vec!["longer-name".into(), "7".into(), "100.00".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "NAME                SENT  LOSS%\na            12345678901   0.00\nlonger-name            7 100.00\n"
        );
    }
}
