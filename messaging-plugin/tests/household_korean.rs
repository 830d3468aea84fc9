//! A Korean household end to end, in network namespaces, on the real path:
//! the members' devices over the mesh, household messaging, the gateway
//! with a real llama-server (SmolLM2-135M-Instruct, which speaks no Korean:
//! the everyday requests need no model) and a second one giving embeddings
//! (multilingual-e5-small, the hub's), on a test clock. A member does each kind of everyday
//! request in Korean and it lands: remembered and listed; reminders listed
//! at their times and delivered at them, the weekly one on its day and
//! hour; one cancelled; a list kept. A Korean question finds its Korean
//! passage whatever particle it carries and the reply cites it; the
//! assistant's own sentences come back in Korean; nothing said reaches a
//! log.
// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hearth_testkit::household::{AssistantSetup, Embeddings, Household, Options, SECOND};
use hearth_testkit::lab::wait_until;

/// Tuesday 24 November 2026, 15:00 in London.
const NOW: &str = "2026-11-24T15:00:00Z";

#[test]
fn a_korean_member_asks_remembers_reminds_and_finds_in_korean() {
    let dir = tempfile::tempdir().unwrap();
    let documents = dir.path().join("house");
    std::fs::create_dir(&documents).unwrap();
    std::fs::write(
        documents.join("boiler.md"),
        "# 보일러\n\n보일러는 다용도실에 있어요.\n\n## 보일러 재시작\n\n\
         보일러를 초기화하려면 아래쪽의 빨간 리셋 버튼을 5초 동안 누르세요.\n\n\
         ## 물 보충\n\n압력계 바늘이 1 아래로 내려가면 보충 밸브를 천천히 여세요.\n",
    )
    .unwrap();
    // A section longer than the embedding model reads at once (512
    // tokens): embedded in windows, or never indexed.
    let long: String = (1..=40)
        .map(|day| format!("{day}일차에는 베란다 화분에 물을 주고 잎의 먼지를 닦아 주세요. "))
        .collect();
    std::fs::write(
        documents.join("plants.md"),
        format!("# 화분 관리\n\n## 한 달 계획\n\n{long}\n"),
    )
    .unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, NOW).unwrap();
    let options = Options {
        outsiders: false,
        rooms: vec!["household".into()],
        max_tokens: 40,
        instruct: true,
        assistant: AssistantSetup {
            documents: Some(documents),
            clock: Some(clock.clone()),
            embeddings: Some(Embeddings::E5),
            language: Some("ko"),
            ..AssistantSetup::default()
        },
        ..Options::default()
    };
    let Some(household) = Household::start(options) else {
        return;
    };
    let (laptop, phone) = (household.laptop.clone(), household.phone.clone());
    let indexed = wait_until(60 * SECOND, || {
        let listed = household.cli_ok(&laptop, &["documents"]);
        listed.contains("house/boiler.md") && listed.contains("house/plants.md")
    });
    assert!(indexed.is_some(), "the documents were not indexed");

    // Remembered, and listed.
    let said = household.ask(&laptop, None, "기억해 줘: 내 사물함 비밀번호는 4711이야");
    assert!(said.contains("기억해 둘게요."), "{said}");
    assert!(
        said.contains("memory_write"),
        "the chat shows the tool: {said}"
    );
    let listed = household.cli_ok(&laptop, &["memory"]);
    assert!(listed.contains("내 사물함 비밀번호는 4711이야"), "{listed}");

    // Reminders at Korean times, one weekly, one cancelled.
    let said = household.ask(&laptop, None, "내일 오전 9시에 할머니께 전화하라고 알려줘");
    assert!(
        said.contains("2026년 11월 25일 수요일 오전 9시에 알려 드릴게요: 할머니께 전화하기"),
        "{said}"
    );
    let said = household.ask(
        &laptop,
        None,
        "매주 월요일 아침 8시에 분리수거 내놓으라고 알려줘",
    );
    assert!(
        said.contains("매주 월요일 오전 8시에 알려 드릴게요: 분리수거 내놓기"),
        "{said}"
    );
    let said = household.ask(&laptop, None, "30분 후에 빨래 꺼내라고 알려 줘");
    assert!(said.contains("빨래 꺼내기"), "{said}");
    let said = household.ask(&laptop, None, "빨래 알림 취소해 줘");
    assert!(said.contains("번 알림을 취소했어요."), "{said}");
    let said = household.ask(&laptop, None, "알림 목록 보여줘");
    assert!(
        said.contains("할머니께 전화하기 (2026년 11월 25일 수요일 오전 9시, 나에게)"),
        "{said}"
    );
    assert!(
        said.contains("분리수거 내놓기 (매주 월요일 오전 8시, 나에게)"),
        "{said}"
    );
    assert!(!said.contains("빨래"), "cancelled: {said}");
    // From the CLI, whose request says no language: the household's, with
    // its dates.
    let listed = household.cli_ok(&laptop, &["reminders"]);
    assert!(
        listed.contains("내 알림:")
            && listed.contains("할머니께 전화하기 (2026년 11월 25일 수요일 오전 9시, 나에게)"),
        "{listed}"
    );
    let listed = household.cli_ok(&laptop, &["memory"]);
    assert!(listed.starts_with("여기서 기억하는 것:"), "{listed}");
    let listed = household.cli_ok(&laptop, &["documents"]);
    assert!(listed.contains("여기서 읽을 수 있는 문서:"), "{listed}");
    // The household's chat is searched by meaning: a question sharing no
    // word with a message finds it first.
    household.cli_ok(
        &phone,
        &["send", "--room", "household", "강아지 사료가 다 떨어졌어요"],
    );
    let question = "반려견 밥 남아 있어?";
    let mut found = String::new();
    let seen = wait_until(60 * SECOND, || {
        found = household.cli_ok(&laptop, &["search", question]);
        found.contains("강아지 사료")
    });
    assert!(seen.is_some(), "not found by meaning: {found}");
    assert!(
        found
            .lines()
            .next()
            .unwrap_or_default()
            .contains("강아지 사료"),
        "{found}"
    );
    // The client's own lines follow the terminal's locale.
    let sent = household.cli_in(
        &laptop,
        "ko_KR.UTF-8",
        &["send", "--room", "household", "저녁은 일곱 시에 먹어요"],
    );
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && said.starts_with("household에 #") && said.contains("보냈어요"),
        "{said} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let refused = household.cli_in(
        &laptop,
        "ko_KR.UTF-8",
        &["send", "--room", "dm:someone,else", "몰래 보기"],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("메시징 서비스가 거절했어요 ("),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The household room's shopping list, kept for everyone in it.
    let said = household.ask(
        &laptop,
        Some("household"),
        "@assistant 장보기 목록에 우유랑 계란 추가해 줘",
    );
    assert!(said.contains("장보기 목록에 2개를 추가했어요."), "{said}");
    let said = household.ask(&phone, Some("household"), "@assistant 장보기 목록 보여줘");
    assert!(said.contains("장보기 목록:\n- 우유\n- 계란"), "{said}");

    // A Korean question finds its Korean passage whatever particle it uses.
    for question in [
        "보일러를 어떻게 초기화해?",
        "보일러는 초기화 어떻게 하지?",
        "보일러 초기화하려면?",
    ] {
        let said = household.ask(&laptop, None, question);
        assert!(
            said.contains("출처: boiler.md › 보일러 재시작"),
            "{question}: {said}"
        );
    }

    // Tomorrow at nine, and on Monday at eight, the reminders come.
    std::fs::write(&clock, "2026-11-25T09:00:01Z").unwrap();
    let arrived = wait_until(30 * SECOND, || {
        household
            .assistant_dm(&laptop)
            .contains("\u{23f0} 알림: 할머니께 전화하기")
    });
    assert!(
        arrived.is_some(),
        "no reminder: {}\n{}",
        household.assistant_dm(&laptop),
        household.messaging_log()
    );
    assert!(
        !household
            .assistant_dm(&laptop)
            .contains("\u{23f0} 알림: 분리수거"),
        "not yet Monday: {}",
        household.assistant_dm(&laptop)
    );
    std::fs::write(&clock, "2026-11-30T08:00:01Z").unwrap();
    let weekly = wait_until(30 * SECOND, || {
        household
            .assistant_dm(&laptop)
            .contains("\u{23f0} 알림: 분리수거 내놓기")
    });
    assert!(weekly.is_some(), "{}", household.assistant_dm(&laptop));
    assert!(
        !household.assistant_dm(&phone).contains("\u{23f0} 알림"),
        "ada's reminders are ada's"
    );

    // Nothing said, remembered, scheduled or read reached any log.
    let logs = household.lab.logs();
    for canary in [
        "사물함",
        "할머니",
        "분리수거",
        "장보기",
        "보일러",
        "리셋 버튼",
    ] {
        assert!(!logs.contains(canary), "{canary} reached a log:\n{logs}");
    }
}
