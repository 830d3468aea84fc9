//! Shared lists (the shopping list, the packing list): named lists of short
//! items, kept per conversation owner like memory, so the household room's
//! shopping list is the household's and a member's own lists are theirs.

/// Longest item, in characters.
pub const MAX_ITEM_CHARS: usize = 200;
/// Most items one list holds.
pub const MAX_ITEMS: usize = 500;
/// Most lists one owner keeps.
pub const MAX_LISTS: usize = 100;

/// Why a list or item was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// A name or item with nothing in it.
    #[error("a list name and its items need some text")]
    Empty,
    /// Too long.
    #[error("a list name or item may be at most {MAX_ITEM_CHARS} characters")]
    TooLong,
    /// The list is full.
    #[error("the list already holds {MAX_ITEMS} items")]
    Full,
    /// Too many lists.
    #[error("there are already {MAX_LISTS} lists")]
    TooMany,
}

/// The name a list is kept under: lower case, without a trailing "list"
/// ("Shopping list" and "shopping" are the same list).
pub fn name(text: &str) -> Result<String, ListError> {
    let lower = text.trim().to_lowercase();
    let lower = lower
        .strip_suffix(" list")
        .unwrap_or(&lower)
        .trim_start_matches("the ")
        .trim();
    let name = item(lower)?;
    Ok(name)
}

/// An item as kept: trimmed, one line, within the limit.
pub fn item(text: &str) -> Result<String, ListError> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return Err(ListError::Empty);
    }
    if flat.chars().count() > MAX_ITEM_CHARS {
        return Err(ListError::TooLong);
    }
    Ok(flat)
}

/// Whether `existing` is the item `asked` names (case does not matter).
pub fn same_item(existing: &str, asked: &str) -> bool {
    existing.to_lowercase() == asked.trim().to_lowercase()
}

/// A list for people to read.
pub fn render(name: &str, items: &[String]) -> String {
    render_as(
        &format!("The {name} list:"),
        &format!("The {name} list is empty."),
        items,
    )
}

/// A list under `title`, one item a line; `empty` when it has none.
pub fn render_as(title: &str, empty: &str, items: &[String]) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    let mut text = title.to_owned();
    for item in items {
        text.push_str("\n- ");
        text.push_str(item);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_items_are_kept_plainly() {
        assert_eq!(name("The Shopping list").unwrap(), "shopping");
        assert_eq!(name("shopping").unwrap(), "shopping");
        assert_eq!(item("  oat   milk\n").unwrap(), "oat milk");
        assert_eq!(item(" "), Err(ListError::Empty));
        assert_eq!(item(&"x".repeat(201)), Err(ListError::TooLong));
        assert!(same_item("Oat milk", " oat MILK "));
        assert_eq!(
            render("shopping", &["eggs".into(), "oat milk".into()]),
            "The shopping list:\n- eggs\n- oat milk"
        );
        assert_eq!(render("packing", &[]), "The packing list is empty.");
    }
}
