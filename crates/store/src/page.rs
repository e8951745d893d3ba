//! Keyset pages: a query asks for one row more than the page holds, and
//! that extra row says whether another page follows.

/// One page of rows, in the query's order.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether rows follow the last one here.
    pub more: bool,
}

impl<T> Page<T> {
    /// The page from rows fetched with `LIMIT limit + 1`.
    pub fn from_overfetch(mut rows: Vec<T>, limit: i64) -> Self {
        let size = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
        let more = rows.len() > size;
        rows.truncate(size);
        Page { items: rows, more }
    }

    /// The last row, when another page follows (its key is the cursor).
    pub fn last_if_more(&self) -> Option<&T> {
        if self.more { self.items.last() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn the_extra_row_says_more_follow() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2);
        assert_eq!((p.items.as_slice(), p.more), (&[1, 2][..], true));
        assert_eq!(p.last_if_more(), Some(&2));
        let p = Page::from_overfetch(vec![1, 2], 2);
        assert_eq!((p.items.as_slice(), p.more), (&[1, 2][..], false));
        assert_eq!(p.last_if_more(), None);
    }
}
