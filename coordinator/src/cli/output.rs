//! How the CLI prints lists: aligned tables for people, JSON for scripts.

use hearth_coordinator::accounts::KeyView;
use hearth_coordinator::admission::NodeView;
use hearth_coordinator::db::users::UserRow;

/// Renders rows under a header as left-aligned columns. Cells are what
/// users and devices chose (names, a client's description): shown escaped,
/// so none can act on the admin's terminal.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| hearth_runtime::terminal::printable(cell))
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        line.join("  ").trim_end().to_owned()
    };
    let mut text = render(header.to_vec());
    for row in rows {
        text.push('\n');
        text.push_str(&render(row.iter().map(String::as_str).collect()));
    }
    text
}

fn time(unix: Option<i64>) -> String {
    let Some(unix) = unix else {
        return "-".into();
    };
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|moment| {
            moment
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `users list`.
pub fn users(users: &[UserRow]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|user| {
            vec![
                user.id.to_string(),
                user.name.clone(),
                time(Some(user.created_at)),
            ]
        })
        .collect();
    table(&["ID", "NAME", "CREATED"], &rows)
}

/// `preauthkeys list`.
pub fn keys(keys: &[KeyView]) -> String {
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.to_string(),
                key.user.clone(),
                format!("hskey-{}-…", key.prefix),
                yes_no(key.reusable),
                yes_no(key.ephemeral),
                yes_no(key.pre_approved),
                key.use_count.to_string(),
                time(key.expires_at),
                if key.usable { "usable" } else { "spent" }.into(),
                key.tags.join(","),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USER",
            "KEY",
            "REUSABLE",
            "EPHEMERAL",
            "PRE-APPROVED",
            "USED",
            "EXPIRES",
            "STATUS",
            "TAGS",
        ],
        &rows,
    )
}

/// `nodes list`.
pub fn nodes(nodes: &[NodeView]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            vec![
                node.id.to_string(),
                node.name.clone(),
                node.user.clone(),
                node.state.to_string(),
                node.ipv4.clone(),
                node.ipv6.clone(),
                if node.online {
                    "online".into()
                } else {
                    "offline".into()
                },
                time(node.last_seen),
                match node.key_expiry {
                    Some(_) => time(node.key_expiry),
                    None => "never".into(),
                },
                node.tags.join(","),
                node.client.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "USER",
            "STATE",
            "IPV4",
            "IPV6",
            "CONNECTED",
            "LAST SEEN",
            "KEY EXPIRES",
            "TAGS",
            "CLIENT",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "alice".into()],
                vec!["10".into(), "b".into()],
            ],
        );
        assert_eq!(text, "ID  NAME\n1   alice\n10  b");
    }
}
