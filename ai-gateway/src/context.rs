//! Fitting a conversation into a model's context window.

use hearth_llm::Message;

/// A conservative token estimate of a message: its text's
/// ([`estimate_text_tokens`]), plus framing.
pub fn estimate_tokens(message: &Message) -> usize {
    estimate_text_tokens(&message.content) + 4
}

/// A conservative token estimate of `text`: a token per three ASCII
/// characters, and one per byte of every other character. Tokenizers
/// trained mostly on English cut Hangul and other scripts into pieces of
/// a byte or two (SmolLM2's gives 83 tokens to a Korean sentence of 38
/// syllables, 94 bytes, and 13 to an English one of 57 characters); a
/// tokenizer that knows Korean gives fewer, and the estimate only leaves
/// room unused.
pub fn estimate_text_tokens(text: &str) -> usize {
    let ascii = text.bytes().filter(u8::is_ascii).count();
    ascii.div_ceil(3) + (text.len() - ascii)
}

/// The messages to send: the system prompt, as much recent history as fits
/// `budget` tokens, and the new message (always kept). History is cut
/// before a user message, never between a question and its answer: a
/// conversation that opens with a lone assistant reply confuses models and
/// breaks chat templates that require alternating roles.
pub fn fit(system: Option<&str>, history: &[Message], new: Message, budget: usize) -> Vec<Message> {
    let (start, _) = fitting(system, history, &new, budget);
    system
        .map(|text| Message::new("system", text))
        .into_iter()
        .chain(history[start..].iter().cloned())
        .chain(std::iter::once(new))
        .collect()
}

/// What [`fit`] sends of `history`: where the messages it keeps start, and
/// the tokens the request takes (the system prompt's, theirs and `new`'s).
/// Reads back from the newest message only as far as the budget goes: a
/// session keeps every turn, a request costs what it sends.
pub fn fitting(
    system: Option<&str>,
    history: &[Message],
    new: &Message,
    budget: usize,
) -> (usize, usize) {
    let mut used = system.map_or(0, |text| estimate_text_tokens(text) + 4) + estimate_tokens(new);
    let mut start = history.len();
    for message in history.iter().rev() {
        let cost = estimate_tokens(message);
        if used + cost > budget {
            break;
        }
        used += cost;
        start -= 1;
    }
    while let Some(orphan) = history.get(start).filter(|message| message.role != "user") {
        used -= estimate_tokens(orphan);
        start += 1;
    }
    (start, used)
}

/// The line that opens the assistant's context in a member's message.
pub const CONTEXT_OPENS: &str = "[Context from the household assistant, not written by the member]";
/// The line between the context and what the member wrote.
pub const CONTEXT_ENDS: &str = "[The member's message]";

/// `messages` with the assistant's `context` (what is remembered, what the
/// documents say) given with the newest user message, ahead of what the
/// member wrote. Not a system message of its own: the chat templates of
/// Gemma and Mistral refuse a system message after the first, and a
/// system message at the start would change the conversation's opening
/// every turn, so that the model server could no longer reuse what it
/// computed for the history. Without a user message, it goes into the
/// opening system message.
pub fn with_context(messages: &mut Vec<Message>, context: &str) {
    match messages
        .iter_mut()
        .rev()
        .find(|message| message.role == "user")
    {
        Some(user) => {
            user.content = format!(
                "{CONTEXT_OPENS}\n{context}\n\n{CONTEXT_ENDS}\n{}",
                user.content
            );
        }
        None => match messages.first_mut().filter(|first| first.role == "system") {
            Some(system) => system.content = format!("{}\n\n{context}", system.content),
            None => messages.insert(0, Message::new("system", context)),
        },
    }
}

/// The assistant's context in a message `with_context` wrote, and what the
/// member wrote; `None` when it holds none.
pub fn split_context(content: &str) -> Option<(&str, &str)> {
    let rest = content.strip_prefix(CONTEXT_OPENS)?.strip_prefix('\n')?;
    let (context, said) = rest.split_once(&format!("\n\n{CONTEXT_ENDS}\n"))?;
    Some((context, said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_rides_with_the_newest_user_message() {
        let mut messages = vec![
            Message::new("system", "persona"),
            Message::new("user", "hi"),
            Message::new("assistant", "hello"),
            Message::new("user", "what is on?"),
        ];
        with_context(&mut messages, "What you remember here:\n- tea at 4");
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user"],
            "no system message mid-way"
        );
        assert_eq!(messages[1].content, "hi", "the history is as it was");
        assert_eq!(
            split_context(&messages[3].content),
            Some(("What you remember here:\n- tea at 4", "what is on?"))
        );
        let mut after_a_tool = vec![Message::new("user", "q"), Message::new("tool", "42")];
        with_context(&mut after_a_tool, "c");
        assert_eq!(split_context(&after_a_tool[0].content), Some(("c", "q")));
        let mut none = vec![Message::new("system", "persona")];
        with_context(&mut none, "c");
        assert_eq!(none[0].content, "persona\n\nc");
        assert_eq!(split_context("plain"), None);
    }

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
        // What is counted is what is sent: the orphan answer is not.
        let now = Message::new("user", "now");
        let sent =
            estimate_tokens(&now) + estimate_tokens(&history[2]) + estimate_tokens(&history[3]);
        assert_eq!(fitting(None, &history, &now, budget), (2, sent));
    }

    /// A member's long conversation with the assistant was charged (and
    /// reserved from their budget) as its whole history on every request,
    /// though the model is sent only what fits its window.
    #[test]
    fn a_long_session_costs_what_fits_the_window() {
        let history: Vec<Message> = (0..10_000)
            .map(|index| {
                let role = if index % 2 == 0 { "user" } else { "assistant" };
                Message::new(role, format!("turn {index} of a long chat"))
            })
            .collect();
        let new = Message::new("user", "and now?");
        let (start, used) = fitting(Some("be kind"), &history, &new, 2_000);
        assert!(used <= 2_000, "{used}");
        assert!(used > 1_900, "{used}");
        assert_eq!(history[start].role, "user");
        let fitted = fit(Some("be kind"), &history, new, 2_000);
        assert_eq!(fitted.len(), 1 + (history.len() - start) + 1);
        assert_eq!(fitted.iter().map(estimate_tokens).sum::<usize>(), used);
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

    #[test]
    fn korean_text_is_not_taken_for_fewer_tokens_than_a_tokenizer_gives_it() {
        // Counted by SmolLM2-135M's tokenizer (llama-server /tokenize).
        let korean = "보일러를 초기화하려면 아래쪽의 빨간 리셋 버튼을 5초 동안 누르세요.";
        assert!(
            estimate_text_tokens(korean) >= 83,
            "{}",
            estimate_text_tokens(korean)
        );
        let english = "To reset the boiler, hold the red button for ten seconds.";
        assert!(estimate_text_tokens(english) >= 13);
        assert_eq!(estimate_text_tokens(english), 19);
    }
}
