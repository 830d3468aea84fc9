//! The English reading of the everyday requests.
//!
//! Times understood: `at 7`, `at 7pm`, `at 7:30 am`, `at 19:00`, `at noon`,
//! `at midnight`; `today`, `tonight`, `tomorrow`, `this evening`, `tomorrow
//! morning`; `on Friday`, `next Friday`, `on 3 December`, `on December 3rd`,
//! `on 2026-12-03`; `in 20 minutes`, `in an hour`, `in half an hour`, `in 3
//! days`; and, recurring, `every day`, `every weekday`, `every weekend`,
//! `every Monday`, `every Monday and Thursday`, `every morning`, `every
//! hour`, `every 30 minutes`, `every month on the 1st`.
//!
//! Requests: `remember (that) …`; `forget #3`, `forget (that) …`; `remind
//! me|us|the household …`; `every … tell|give|send|share|post|summarize
//! …`; `list|show (me) my reminders`, `what are my reminders`; `cancel
//! reminder 3`, `cancel the reminder about …`; `add … to the NAME list`,
//! `put … on the NAME list`; `show|read (me) the NAME list`, `what's on
//! the NAME list`; `remove … from the NAME list`, `take|cross … off the
//! NAME list`.

use jiff::civil::Weekday;
use jiff::{SignedDuration, Timestamp};

use super::{
    AFTERNOON, ALL_DAYS, Action, Audience, Clock, Day, EVENING, Every, Intent, ListRequest,
    MORNING, Missing, NIGHT, PhraseError, Scheduled, WEEKDAYS, WEEKEND, When, Which, day_bit,
    resolve, set,
};
use crate::schedule::zone;

mod times;
mod words;

use times::*;
pub(super) use times::{clock_word, iso_date};
use words::*;

/// The English request in `message`, if it is one.
pub(super) fn recognize(
    message: &str,
    now: Timestamp,
    tz: &str,
) -> Option<Result<Intent, PhraseError>> {
    let words = words(message);
    let start = skip_preamble(&words);
    let words = &words[start..];
    let first = words.first()?;
    match first.norm.as_str() {
        "remember" => Some(remember(message, &words[1..])),
        "forget" => Some(forget(message, &words[1..])),
        "remind" => {
            let (audience, used) = audience(&words[1..])?;
            Some(schedule(
                message,
                &words[1 + used..],
                Verb::Remind,
                audience,
                now,
                tz,
            ))
        }
        "every" | "each" | "daily" | "weekdays" => {
            // "every Monday at 8 tell the household the week's plan"
            let verb_at = words
                .iter()
                .position(|word| VERBS.contains(&word.norm.as_str()))?;
            let (audience, used) = audience(&words[verb_at + 1..])?;
            if words[verb_at].norm == "remind" {
                let mut rest: Vec<Word> = words[..verb_at].to_vec();
                rest.extend_from_slice(&words[verb_at + 1 + used..]);
                Some(schedule(message, &rest, Verb::Remind, audience, now, tz))
            } else {
                // The instruction itself is what the assistant is asked then.
                Some(schedule(message, words, Verb::Ask, audience, now, tz))
            }
        }
        "cancel" | "delete" | "remove" | "stop" => {
            if let Some(found) = list_request(message, words) {
                return Some(found);
            }
            cancel(message, &words[1..])
        }
        "list" | "show" | "what" | "what's" | "whats" | "which" | "read" => {
            let is_reminders = words.iter().take(6).any(|word| word.norm == "reminders")
                && !words[1..].iter().any(|word| word.norm == "list");
            if is_reminders {
                return Some(Ok(Intent::Reminders));
            }
            list_request(message, words)
        }
        "add" | "put" | "take" | "cross" => list_request(message, words),
        _ => None,
    }
}

/// The time pieces of `text`, when it is nothing but a time phrase;
/// `None` when something else is in it.
pub(super) fn time_only(text: &str) -> Result<Option<When>, PhraseError> {
    let words = words(text);
    let mut when = When::default();
    let mut index = 0;
    while index < words.len() {
        match time_phrase(&words[index..], &mut when)? {
            0 => return Ok(None),
            used => index += used,
        }
    }
    Ok(Some(when))
}

/// Verbs that start the action of a recurring request.
const VERBS: [&str; 7] = [
    "remind",
    "tell",
    "give",
    "send",
    "share",
    "post",
    "summarize",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Remind,
    Ask,
}

/// Words before the request itself: a mention of the assistant, greetings, "please".
fn skip_preamble(words: &[Word]) -> usize {
    let filler = [
        "@assistant",
        "assistant",
        "hey",
        "hi",
        "please",
        "pls",
        "could",
        "can",
        "would",
        "you",
    ];
    words
        .iter()
        .take_while(|word| filler.contains(&word.norm.as_str()))
        .count()
}

fn remember(message: &str, rest: &[Word]) -> Result<Intent, PhraseError> {
    let mut rest = rest;
    if rest
        .first()
        .is_some_and(|word| word.norm == "that" || word.norm == ":")
    {
        rest = &rest[1..];
    }
    let text = text_of(message, rest);
    let text = text.trim_start_matches(':').trim().to_owned();
    if text.is_empty() {
        return Err(PhraseError::Empty(Missing::Remember));
    }
    Ok(Intent::Remember { text })
}

/// A number as a member writes it beside a request: `3`, `#3`.
fn number(word: &str) -> Option<i64> {
    word.trim_start_matches('#')
        .parse()
        .ok()
        .filter(|id| *id > 0)
}

/// `forget #3`, `forget number 3`, `forget that …`, `forget …`.
fn forget(message: &str, rest: &[Word]) -> Result<Intent, PhraseError> {
    let norms: Vec<&str> = rest.iter().map(|word| word.norm.as_str()).collect();
    match norms.as_slice() {
        [] => Err(PhraseError::Empty(Missing::Which)),
        [id] | ["number" | "entry" | "memory", id] if number(id).is_some() => Ok(Intent::Forget(
            Which::Number(number(id).unwrap_or_default()),
        )),
        ["that" | "about", ..] => which_text(message, &rest[1..]).map(Intent::Forget),
        _ => which_text(message, rest).map(Intent::Forget),
    }
}

fn which_text(message: &str, words: &[Word]) -> Result<Which, PhraseError> {
    let text = text_of(message, words);
    if text.is_empty() {
        return Err(PhraseError::Empty(Missing::Which));
    }
    Ok(Which::Text(text))
}

/// `cancel reminder 3`, `cancel my reminder #3`, `cancel the reminder
/// about …`, `cancel the dentist reminder`; `None` without "reminder".
fn cancel(message: &str, rest: &[Word]) -> Option<Result<Intent, PhraseError>> {
    let at = rest
        .iter()
        .position(|word| word.norm == "reminder" || word.norm == "reminders")?;
    let after = &rest[at + 1..];
    if let Some(id) = after.first().and_then(|word| number(&word.norm)) {
        return Some(Ok(Intent::Cancel(Which::Number(id))));
    }
    let after = match after.first().map(|word| word.norm.as_str()) {
        Some("about" | "to" | "for" | "of" | "that") => &after[1..],
        _ => after,
    };
    if !after.is_empty() {
        return Some(which_text(message, after).map(Intent::Cancel));
    }
    let before: Vec<Word> = rest[..at]
        .iter()
        .filter(|word| !matches!(word.norm.as_str(), "the" | "my" | "that" | "this"))
        .cloned()
        .collect();
    Some(which_text(message, &before).map(Intent::Cancel))
}

/// A request about a list, when `words` end in "… the NAME list".
fn list_request(message: &str, words: &[Word]) -> Option<Result<Intent, PhraseError>> {
    let mut words = words;
    while words
        .last()
        .is_some_and(|word| matches!(word.norm.as_str(), "please" | "thanks"))
    {
        words = &words[..words.len() - 1];
    }
    if words.last()?.norm != "list" || words.len() < 3 {
        return None;
    }
    // Where the list's name starts: after the last "the", "my" or "our"
    // before "list".
    let owner_at = words[..words.len() - 1]
        .iter()
        .rposition(|word| matches!(word.norm.as_str(), "the" | "my" | "our"))?;
    let name = text_of(message, &words[owner_at + 1..words.len() - 1]);
    if name.is_empty() {
        return None;
    }
    let verb = words[0].norm.as_str();
    let before = &words[..owner_at];
    let preposition = before.last()?.norm.as_str();
    let items = |words: &[Word]| -> Result<Vec<String>, PhraseError> {
        let items = split_items(&text_of(message, words));
        if items.is_empty() {
            return Err(PhraseError::Empty(Missing::Items));
        }
        Ok(items)
    };
    let request = match (verb, preposition) {
        ("add", "to") | ("put", "on" | "in") => {
            items(&before[1..before.len() - 1]).map(|items| ListRequest::Add { list: name, items })
        }
        ("remove" | "delete", "from") | ("take" | "cross", "off") => {
            items(&before[1..before.len() - 1])
                .map(|items| ListRequest::Remove { list: name, items })
        }
        ("show" | "read" | "list", _) if before.len() <= 2 => Ok(ListRequest::Show { list: name }),
        ("what" | "what's" | "whats", "on" | "in") => Ok(ListRequest::Show { list: name }),
        _ => return None,
    };
    Some(request.map(Intent::List))
}

/// Items as a member lists them: "eggs, oat milk and bread".
pub(super) fn split_items(text: &str) -> Vec<String> {
    text.split(',')
        .flat_map(|part| part.split(" and "))
        .flat_map(|part| part.split(" & "))
        .map(str::trim)
        .map(|item| item.trim_start_matches("and ").trim())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who a reminder is for, and how many words said so.
fn audience(words: &[Word]) -> Option<(Audience, usize)> {
    let norms: Vec<&str> = words
        .iter()
        .take(2)
        .map(|word| word.norm.as_str())
        .collect();
    match norms.as_slice() {
        ["me", ..] => Some((Audience::Me, 1)),
        ["us" | "everyone" | "everybody" | "all", ..] => Some((Audience::Room, 1)),
        ["the", "household" | "family" | "house" | "room" | "group"] => Some((Audience::Room, 2)),
        _ => None,
    }
}

fn schedule(
    message: &str,
    words: &[Word],
    verb: Verb,
    audience: Audience,
    now: Timestamp,
    tz: &str,
) -> Result<Intent, PhraseError> {
    let zone = zone(tz)?;
    let mut when = When::default();
    let mut kept: Vec<Word> = Vec::new();
    let mut index = 0;
    while index < words.len() {
        match time_phrase(&words[index..], &mut when)? {
            0 => {
                kept.push(words[index].clone());
                index += 1;
            }
            used => index += used,
        }
    }
    // "remind me every Monday at 8 to …": the action starts at its connective.
    let mut kept = kept.as_slice();
    if verb == Verb::Remind
        && kept
            .first()
            .is_some_and(|word| matches!(word.norm.as_str(), "to" | "that" | "about" | "of"))
    {
        kept = &kept[1..];
    }
    let text = text_of(message, kept);
    if text.is_empty() {
        return Err(PhraseError::Empty(match verb {
            Verb::Remind => Missing::Remind,
            Verb::Ask => Missing::Do,
        }));
    }
    let action = match verb {
        Verb::Remind => Action::Remind(text),
        Verb::Ask => Action::Ask(ask_text(&text)),
    };
    let schedule = resolve(&when, now, &zone, tz)?;
    Ok(Intent::Schedule(Scheduled {
        schedule,
        action,
        audience,
    }))
}

/// What the assistant is asked when an "every Monday, tell the household
/// the week's plan" fires: the request without its time, as a sentence.
pub(super) fn ask_text(rest: &str) -> String {
    let mut text = rest.to_owned();
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phrases::tests::{LONDON, at, now};
    use crate::phrases::{Action, Audience, ListRequest, Missing, Scheduled, Which, recognize};
    use crate::schedule::{Schedule, ScheduleError};

    fn scheduled(message: &str) -> Scheduled {
        match recognize(message, now(), LONDON) {
            Some(Ok(Intent::Schedule(scheduled))) => scheduled,
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn when(message: &str) -> Schedule {
        scheduled(message).schedule
    }

    #[test]
    fn remind_me_at_seven_pm_is_tonight_and_keeps_the_words() {
        let reminder = scheduled("Remind me at 7 pm to call Grandma about Sunday.");
        assert_eq!(reminder.schedule, at("2026-11-24T19:00:00Z"));
        assert_eq!(
            reminder.action,
            Action::Remind("call Grandma about Sunday".into())
        );
        assert_eq!(reminder.audience, Audience::Me);
        // The time may come last, and the wording varies.
        assert_eq!(
            scheduled("remind me to take the bins out at 7pm").action,
            Action::Remind("take the bins out".into())
        );
        assert_eq!(
            when("@assistant please remind me at 19:00 to x"),
            at("2026-11-24T19:00:00Z")
        );
    }

    #[test]
    fn a_bare_hour_is_the_next_time_it_comes_round() {
        // 15:00 now: 7 is this evening's, 4 this afternoon's, 2 tomorrow's.
        assert_eq!(when("remind me at 7 to x"), at("2026-11-24T19:00:00Z"));
        assert_eq!(when("remind me at 4 to x"), at("2026-11-24T16:00:00Z"));
        assert_eq!(when("remind me at 2 to x"), at("2026-11-25T02:00:00Z"));
        assert_eq!(
            when("remind me at 8:30 am to x"),
            at("2026-11-25T08:30:00Z")
        );
        assert_eq!(when("remind me at noon to x"), at("2026-11-25T12:00:00Z"));
    }

    #[test]
    fn days_dates_and_parts_of_the_day() {
        assert_eq!(
            when("remind me tomorrow at 8 to x"),
            at("2026-11-25T08:00:00Z")
        );
        assert_eq!(
            when("remind me tomorrow at 5 to x"),
            at("2026-11-25T17:00:00Z")
        );
        assert_eq!(
            when("remind me tomorrow morning to x"),
            at("2026-11-25T09:00:00Z")
        );
        assert_eq!(when("remind me tonight to x"), at("2026-11-24T20:00:00Z"));
        assert_eq!(
            when("remind me this evening at 7 to x"),
            at("2026-11-24T19:00:00Z")
        );
        // Tuesday today: "on Tuesday" at 9 has passed, so next week's.
        assert_eq!(
            when("remind me on Tuesday to x"),
            at("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            when("remind me on Friday at 6 pm to x"),
            at("2026-11-27T18:00:00Z")
        );
        assert_eq!(
            when("remind me Friday at 6 pm to x"),
            at("2026-11-27T18:00:00Z")
        );
        assert_eq!(
            scheduled("remind me to buy the Sunday roast at 7").action,
            Action::Remind("buy the Sunday roast".into())
        );
        assert_eq!(
            when("remind me next friday to x"),
            at("2026-11-27T09:00:00Z")
        );
        assert_eq!(
            when("remind me on 3 December at 10 to x"),
            at("2026-12-03T10:00:00Z")
        );
        assert_eq!(
            when("remind me on December 3rd to x"),
            at("2026-12-03T09:00:00Z")
        );
        assert_eq!(
            when("remind me on the 3rd of January to x"),
            at("2027-01-03T09:00:00Z")
        );
        assert_eq!(
            when("remind me on 2027-06-01 at 12:30 to x"),
            at("2027-06-01T11:30:00Z")
        );
    }

    #[test]
    fn relative_times_count_from_now() {
        assert_eq!(
            when("remind me in 20 minutes to x"),
            at("2026-11-24T15:20:00Z")
        );
        assert_eq!(
            when("remind me in an hour to x"),
            at("2026-11-24T16:00:00Z")
        );
        assert_eq!(
            when("remind me in half an hour to x"),
            at("2026-11-24T15:30:00Z")
        );
        assert_eq!(when("remind me to x in 3 days"), at("2026-11-27T15:00:00Z"));
    }

    #[test]
    fn recurring_requests_become_cron_in_the_household_s_zone() {
        let weekly = scheduled("every Monday at 8 tell the household the week's plan");
        assert_eq!(
            weekly.schedule,
            Schedule::Cron {
                expr: "0 8 * * 1".into(),
                tz: LONDON.into()
            }
        );
        assert_eq!(
            weekly.action,
            Action::Ask("Tell the household the week's plan.".into())
        );
        assert_eq!(weekly.audience, Audience::Room);
        let cron = |message: &str| match when(message) {
            Schedule::Cron { expr, .. } => expr,
            other => panic!("{other:?}"),
        };
        assert_eq!(cron("remind me every day at 7:30 to stretch"), "30 7 * * *");
        assert_eq!(
            cron("remind us every weekday at 7 to pack lunches"),
            "0 7 * * 1,2,3,4,5"
        );
        assert_eq!(
            cron("remind me every Monday and Thursday at 6 pm to x"),
            "0 18 * * 1,4"
        );
        assert_eq!(cron("remind me every morning to x"), "0 9 * * *");
        assert_eq!(
            when("remind me every 30 minutes to drink water"),
            Schedule::Every {
                every_ms: 30 * 60_000,
                anchor: "2026-11-24T15:30:00Z".parse().unwrap()
            }
        );
        assert_eq!(
            scheduled("every weekday at 7 remind us to pack lunches").action,
            Action::Remind("pack lunches".into())
        );
    }

    #[test]
    fn remember_takes_the_rest_of_the_sentence() {
        assert_eq!(
            recognize("Remember that the bike lock code is 4711.", now(), LONDON),
            Some(Ok(Intent::Remember {
                text: "the bike lock code is 4711".into()
            }))
        );
        assert_eq!(
            recognize(
                "@assistant remember: Ben is allergic to peanuts",
                now(),
                LONDON
            ),
            Some(Ok(Intent::Remember {
                text: "Ben is allergic to peanuts".into()
            }))
        );
        assert_eq!(
            recognize("remember", now(), LONDON),
            Some(Err(PhraseError::Empty(Missing::Remember)))
        );
    }

    #[test]
    fn other_messages_are_for_the_model() {
        for message in [
            "What is a hearth?",
            "do you remember what Ben likes?",
            "remind Ben to call me",
            "every so often I wonder",
            "",
        ] {
            assert_eq!(recognize(message, now(), LONDON), None, "{message:?}");
        }
        assert_eq!(recognize(&"remind me ".repeat(300), now(), LONDON), None);
        // Found by the fuzzer: "every" then "and" before any weekday
        // counted its words below zero.
        assert!(matches!(
            recognize("remind me every and Thursday at 6 pm to x", now(), LONDON),
            Some(Ok(Intent::Schedule(_)))
        ));
    }

    #[test]
    fn unclear_requests_say_what_is_missing() {
        let error = |message: &str| match recognize(message, now(), LONDON) {
            Some(Err(error)) => error,
            other => panic!("{message:?}: {other:?}"),
        };
        assert_eq!(error("remind me to call Dan"), PhraseError::NoTime);
        assert_eq!(error("remind me today at 9 am to x"), PhraseError::Past);
        assert_eq!(
            error("remind me at 7 pm tomorrow at 8 to x"),
            PhraseError::TwoTimes
        );
        assert_eq!(
            error("remind me in 5 minutes at 7 to x"),
            PhraseError::TwoTimes
        );
        assert_eq!(
            error("remind me at 7 pm"),
            PhraseError::Empty(Missing::Remind)
        );
        assert!(matches!(
            error("remind me on 2027-02-30 to x"),
            PhraseError::BadTime(_)
        ));
        assert!(matches!(
            recognize("remind me at 7 to x", now(), "Nowhere/Else"),
            Some(Err(PhraseError::Schedule(ScheduleError::TimeZone(_))))
        ));
    }

    #[test]
    fn lists_reminders_and_forgetting_are_read_too() {
        let intent = |message: &str| match recognize(message, now(), LONDON) {
            Some(Ok(intent)) => intent,
            other => panic!("{message:?}: {other:?}"),
        };
        assert_eq!(
            intent("@assistant add eggs and oat milk to the shopping list"),
            Intent::List(ListRequest::Add {
                list: "shopping".into(),
                items: vec!["eggs".into(), "oat milk".into()]
            })
        );
        assert_eq!(
            intent("put bread, butter and jam on my shopping list please"),
            Intent::List(ListRequest::Add {
                list: "shopping".into(),
                items: vec!["bread".into(), "butter".into(), "jam".into()]
            })
        );
        let show = Intent::List(ListRequest::Show {
            list: "shopping".into(),
        });
        assert_eq!(intent("what's on the shopping list?"), show);
        assert_eq!(intent("what is on the shopping list?"), show);
        assert_eq!(intent("show me the shopping list"), show);
        assert_eq!(
            intent("take eggs off the shopping list"),
            Intent::List(ListRequest::Remove {
                list: "shopping".into(),
                items: vec!["eggs".into()]
            })
        );
        assert_eq!(
            intent("remove eggs from the packing list"),
            Intent::List(ListRequest::Remove {
                list: "packing".into(),
                items: vec!["eggs".into()]
            })
        );
        assert_eq!(intent("list my reminders"), Intent::Reminders);
        assert_eq!(intent("what are my reminders?"), Intent::Reminders);
        assert_eq!(
            intent("cancel reminder 3"),
            Intent::Cancel(Which::Number(3))
        );
        assert_eq!(
            intent("cancel my reminder #12"),
            Intent::Cancel(Which::Number(12))
        );
        assert_eq!(
            intent("cancel the reminder about the bins"),
            Intent::Cancel(Which::Text("the bins".into()))
        );
        assert_eq!(
            intent("cancel the dentist reminder"),
            Intent::Cancel(Which::Text("dentist".into()))
        );
        assert_eq!(intent("forget #2"), Intent::Forget(Which::Number(2)));
        assert_eq!(
            intent("forget that the bike lock code is 4711"),
            Intent::Forget(Which::Text("the bike lock code is 4711".into()))
        );
        assert_eq!(
            recognize("add to the shopping list", now(), LONDON),
            Some(Err(PhraseError::Empty(Missing::Items)))
        );
        for message in [
            "what is on the list?",
            "add salt to taste",
            "cancel the party",
            "show me how to reset the boiler",
        ] {
            assert_eq!(recognize(message, now(), LONDON), None, "{message:?}");
        }
        let monthly = match intent("remind me every month on the 1st at 9 to pay rent") {
            Intent::Schedule(Scheduled { schedule, .. }) => schedule,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            monthly,
            Schedule::Cron {
                expr: "0 9 1 * *".into(),
                tz: LONDON.into()
            }
        );
    }
}
