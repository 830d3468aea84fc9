//! Fitting a conversation into a model's context window.

use hearth_llm::Message;

/// A conservative token estimate: a token per three characters, plus framing.
pub fn estimate_tokens(message: &Message) -> usize {
    message.content.chars().count().div_ceil(3) + 4
}

/// The messages to send: the system prompt, as much recent history as fits
/// `budget` tokens, and the new message (always kept). History is cut
/// before a user message, never between a question and its answer: a
/// conversation that opens with a lone assistant reply confuses models and
/// breaks chat templates that require alternating roles.
pub fn fit(system: Option<&str>, history: &[Message], new: Message, budget: usize) -> Vec<Message> {
    let system = system.map(|text| Message::new("system", text));
    let mut used = system.iter().map(estimate_tokens).sum::<usize>() + estimate_tokens(&new);
    let mut kept = Vec::new();
    for message in history.iter().rev() {
        let cost = estimate_tokens(message);
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push(message.clone());
    }
    kept.reverse();
    let orphans = kept
        .iter()
        .take_while(|message| message.role != "user")
        .count();
    kept.drain(..orphans);
    system
        .into_iter()
        .chain(kept)
        .chain(std::iter::once(new))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_history_goes_first_when_space_runs_out() {
        let history: Vec<Message> = (0..10)
            .map(|index| Message::new("user", format!("message {index:02} {}", "x".repeat(20))))
            .collect();
        let each = estimate_tokens(&history[0]);
        let new = Message::new("user", "now");
        let budget =
            estimate_tokens(&Message::new("system", "be kind")) + estimate_tokens(&new) + 3 * each;
        let fitted = fit(Some("be kind"), &history, new, budget);
        assert_eq!(fitted.len(), 5);
        assert_eq!(fitted[0].role, "system");
        assert!(fitted[1].content.starts_with("message 07"));
        assert_eq!(fitted[4].content, "now");
    }

    #[test]
    fn history_never_opens_with_an_orphan_answer() {
        let history = [
            Message::new("user", "q".repeat(30)),
            Message::new("assistant", "a"),
            Message::new("user", "b"),
            Message::new("assistant", "c"),
        ];
        let new = Message::new("user", "now");
        // Room for the last three messages, not the first question.
        let budget =
            estimate_tokens(&new) + history[1..].iter().map(estimate_tokens).sum::<usize>();
        let fitted = fit(None, &history, new, budget);
        let roles: Vec<&str> = fitted.iter().map(|message| message.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(fitted[0].content, "b");
    }

    #[test]
    fn the_new_message_is_kept_even_over_budget() {
        let fitted = fit(
            None,
            &[Message::new("user", "old")],
            Message::new("user", "y".repeat(100)),
            1,
        );
        assert_eq!(fitted.len(), 1);
    }
}
