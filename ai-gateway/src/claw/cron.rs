//! OpenClaw's automations (`cron.*`) as the household assistant's
//! reminders and scheduled questions: a `systemEvent` payload is a
//! reminder delivered as written, an `agentTurn` a question the assistant
//! answers when it is due; both go to the member's conversation with the
//! assistant. Pure: the time and zone are arguments.

use hearth_assistant::phrases::{Action, Audience, Scheduled};
use hearth_assistant::schedule::Schedule;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::wire::ErrorShape;
use crate::assistant::store::Job;

/// Reads `cron.add`'s parameters as a job for the asking member.
pub fn scheduled(params: &Value, now: Timestamp, timezone: &str) -> Result<Scheduled, ErrorShape> {
    let schedule = &params["schedule"];
    let schedule = match schedule["kind"].as_str() {
        Some("at") => {
            let at = schedule["at"]
                .as_str()
                .and_then(|text| text.parse::<Timestamp>().ok())
                .ok_or_else(|| ErrorShape::invalid("schedule.at must be an RFC 3339 time"))?;
            Schedule::At { at }
        }
        Some("every") => {
            let every_ms = schedule["everyMs"].as_u64().ok_or_else(|| {
                ErrorShape::invalid("schedule.everyMs must be a whole number of milliseconds")
            })?;
            let anchor = match schedule["anchorMs"].as_i64() {
                Some(ms) => Timestamp::from_millisecond(ms)
                    .map_err(|_| ErrorShape::invalid("schedule.anchorMs is out of range"))?,
                None => now
                    .checked_add(jiff::SignedDuration::from_millis(
                        i64::try_from(every_ms).unwrap_or(i64::MAX),
                    ))
                    .map_err(|_| ErrorShape::invalid("schedule.everyMs is out of range"))?,
            };
            Schedule::Every { every_ms, anchor }
        }
        Some("cron") => Schedule::Cron {
            expr: schedule["expr"]
                .as_str()
                .ok_or_else(|| ErrorShape::invalid("schedule.expr must be a cron expression"))?
                .to_owned(),
            tz: schedule["tz"]
                .as_str()
                .filter(|tz| !tz.is_empty())
                .unwrap_or(timezone)
                .to_owned(),
        },
        _ => {
            return Err(ErrorShape::invalid(
                "schedule.kind must be \"at\", \"every\" or \"cron\"",
            ));
        }
    };
    let payload = &params["payload"];
    let action = match payload["kind"].as_str() {
        Some("systemEvent") => Action::Remind(text(&payload["text"], "payload.text")?),
        Some("agentTurn") => Action::Ask(text(&payload["message"], "payload.message")?),
        Some(other) => {
            return Err(ErrorShape::invalid(format!(
                "payload.kind {other:?} is not kept here: Hearth's automations are reminders (systemEvent) \
                 and questions for the assistant (agentTurn)"
            )));
        }
        None => return Err(ErrorShape::invalid("payload.kind is required")),
    };
    Ok(Scheduled {
        schedule,
        action,
        audience: Audience::Me,
    })
}

fn text(value: &Value, what: &str) -> Result<String, ErrorShape> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ErrorShape::invalid(format!("{what} must be text")))
}

/// A stored job as OpenClaw lists it.
pub fn job(job: &Job) -> Value {
    let schedule = match serde_json::from_str::<Schedule>(&job.schedule) {
        Ok(Schedule::At { at }) => json!({"kind": "at", "at": at.to_string()}),
        Ok(Schedule::Every { every_ms, anchor }) => {
            json!({"kind": "every", "everyMs": every_ms, "anchorMs": anchor.as_millisecond()})
        }
        Ok(Schedule::Cron { expr, tz }) => json!({"kind": "cron", "expr": expr, "tz": tz}),
        Err(_) => json!({"kind": "at", "at": null}),
    };
    let payload = if job.action == "ask" {
        json!({"kind": "agentTurn", "message": job.text})
    } else {
        json!({"kind": "systemEvent", "text": job.text})
    };
    let name: String = job.text.chars().take(40).collect();
    json!({
        "id": job.id.to_string(),
        "name": name,
        "agentId": "main",
        "enabled": true,
        "schedule": schedule,
        "sessionTarget": "main",
        "wakeMode": "now",
        "payload": payload,
        "delivery": {"mode": "announce", "channel": "hearth"},
        "state": {"nextRunAtMs": job.next_at},
        "nextRunAtMs": job.next_at,
    })
}

/// A job id as Hearth keeps it.
pub fn job_id(params: &Value) -> Result<i64, ErrorShape> {
    let id = params["id"].as_str().or_else(|| params["jobId"].as_str());
    id.and_then(|id| id.parse().ok()).ok_or_else(|| {
        ErrorShape::invalid("id must name one of your automations (`openclaw cron list`)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-26T14:00:00Z";

    #[test]
    fn openclaws_jobs_become_reminders_and_questions() {
        let now: Timestamp = NOW.parse().unwrap();
        let reminder = scheduled(
            &json!({"schedule": {"kind": "at", "at": "2026-11-26T14:20:00Z"},
                     "payload": {"kind": "systemEvent", "text": "Put the kettle on"}}),
            now,
            "Europe/London",
        )
        .unwrap();
        assert_eq!(reminder.action, Action::Remind("Put the kettle on".into()));
        assert_eq!(
            reminder.schedule,
            Schedule::At {
                at: "2026-11-26T14:20:00Z".parse().unwrap()
            }
        );
        let question = scheduled(
            &json!({"schedule": {"kind": "cron", "expr": "0 8 * * 1"},
                     "payload": {"kind": "agentTurn", "message": "What is on this week?"}}),
            now,
            "Europe/London",
        )
        .unwrap();
        assert_eq!(question.action, Action::Ask("What is on this week?".into()));
        assert_eq!(
            question.schedule,
            Schedule::Cron {
                expr: "0 8 * * 1".into(),
                tz: "Europe/London".into()
            }
        );
        let every = scheduled(
            &json!({"schedule": {"kind": "every", "everyMs": 3_600_000},
                     "payload": {"kind": "systemEvent", "text": "Stretch"}}),
            now,
            "UTC",
        )
        .unwrap();
        assert_eq!(
            every.schedule,
            Schedule::Every {
                every_ms: 3_600_000,
                anchor: "2026-11-26T15:00:00Z".parse().unwrap()
            }
        );
    }

    #[test]
    fn jobs_hearth_cannot_keep_are_refused_with_why() {
        let now: Timestamp = NOW.parse().unwrap();
        for params in [
            json!({"schedule": {"kind": "at", "at": "soon"}, "payload": {"kind": "systemEvent", "text": "x"}}),
            json!({"schedule": {"kind": "sometimes"}, "payload": {"kind": "systemEvent", "text": "x"}}),
            json!({"schedule": {"kind": "at", "at": NOW}, "payload": {"kind": "command", "argv": ["rm"]}}),
            json!({"schedule": {"kind": "at", "at": NOW}, "payload": {"kind": "systemEvent", "text": "  "}}),
        ] {
            assert!(scheduled(&params, now, "UTC").is_err(), "{params}");
        }
    }

    #[test]
    fn a_stored_job_lists_as_openclaw_shows_it() {
        let stored = Job {
            id: 7,
            member: "ada".into(),
            asker: String::new(),
            target: "member:ada".into(),
            schedule: r#"{"kind":"at","at":"2026-11-26T14:20:00Z"}"#.into(),
            action: "remind".into(),
            text: "Put the kettle on".into(),
            next_at: 1_795_702_800_000,
        };
        let listed = job(&stored);
        assert_eq!(listed["id"], "7");
        assert_eq!(
            listed["payload"],
            json!({"kind": "systemEvent", "text": "Put the kettle on"})
        );
        assert_eq!(listed["schedule"]["kind"], "at");
        assert_eq!(job_id(&json!({"id": "7"})).unwrap(), 7);
        assert!(job_id(&json!({"id": "seven"})).is_err());
    }
}
