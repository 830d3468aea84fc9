//! The web chat in a real browser: headless Chromium (Debian's, driven over
//! WebDriver by chromedriver) runs on the laptop node, opens the page over
//! the WireGuard tunnel, sends a message to the assistant and sees the
//! answer stream in from the real llama-server. Screenshots are kept in
//! target/hearth-test-artifacts/. Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_testkit::household::{SECOND, household};
use hearth_testkit::webdriver::{self, Session};
use hearth_testkit::{require_tools, target_dir};

#[test]
fn the_web_page_chats_with_the_assistant_over_the_tunnel() {
    if require_tools(&["chromium", "chromedriver"]).is_none() {
        return;
    }
    let Some(mut household) = household() else {
        return;
    };
    let laptop = household.laptop.clone();

    // chromedriver and the browser live on the laptop node: everything the
    // browser does happens inside its namespace, over its tunnel.
    let driver = webdriver::start_driver(&mut household.lab, &laptop);
    let forward = &driver.forward;

    let artifacts = target_dir().join("hearth-test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = household.lab.dir.path().join("chromium-profile");
    for (name, width, height) in [("desktop", 1100, 760), ("phone", 390, 780)] {
        let browser = Session::chromium(forward.port, &profile.join(name), width, height).unwrap();
        browser.open(&household.url()).unwrap();
        browser
            .wait_for(
                "return document.getElementById('status').textContent === 'connected'",
                20 * SECOND,
            )
            .unwrap_or_else(|error| {
                panic!(
                    "{error}; messaging log:\n{}",
                    household.messaging.as_ref().unwrap().log_text()
                )
            });
        let me = browser
            .script("return document.getElementById('me').textContent")
            .unwrap();
        assert_eq!(
            me, "ada on laptop",
            "the page knows who is holding the laptop"
        );

        let question = format!("@assistant hello from the {name} browser");
        browser.type_into("#text", &question).unwrap();
        browser.click("#send").unwrap();
        browser
            .wait_for(
                &format!("return [...document.querySelectorAll('li.mine .body')].some(b => b.textContent === {question:?})"),
                10 * SECOND,
            )
            .unwrap();
        // The answer appears, grows, and settles.
        let answer = browser
            .wait_for(
                "const done = [...document.querySelectorAll('li.assistant[data-status=\"done\"] .body')]; \
                 return done.length ? done[done.length - 1].textContent : null",
                30 * SECOND,
            )
            .unwrap_or_else(|error| panic!("{error}; messaging log:\n{}", household.messaging.as_ref().unwrap().log_text()));
        let answer = answer.as_str().unwrap().to_owned();
        assert!(
            !answer.trim().is_empty() && !answer.contains("could not answer"),
            "{answer}"
        );
        browser
            .wait_for(
                "return document.getElementById('typing').textContent === ''",
                10 * SECOND,
            )
            .unwrap();

        if name == "desktop" {
            what_the_assistant_keeps_is_shown_and_forgotten_on_the_page(&browser, &household);
            an_answer_cut_off_by_a_crash_is_shown_and_asked_again(&browser, &mut household);
        }

        let png = browser.screenshot().unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
            "a real screenshot"
        );
        std::fs::write(artifacts.join(format!("web-chat-{name}.png")), png).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The page's "What the assistant keeps here" panel: a fact told to the
/// assistant in the room appears under Memory, and its Forget button
/// forgets it for good (the CLI, asking the same service, no longer lists
/// it).
fn what_the_assistant_keeps_is_shown_and_forgotten_on_the_page(
    browser: &Session,
    household: &hearth_testkit::household::Household,
) {
    let fact = "the spare key is under the blue flowerpot";
    browser
        .type_into("#text", &format!("@assistant remember that {fact}"))
        .unwrap();
    browser.click("#send").unwrap();
    browser
        .wait_for(
            "return [...document.querySelectorAll('li.assistant .body')].some(b => b.textContent.includes(\"I'll remember that\"))",
            30 * SECOND,
        )
        .unwrap_or_else(|error| panic!("{error}; messaging log:\n{}", household.messaging_log()));
    browser
        .script("const keeps = document.getElementById('keeps'); keeps.open = true; return true")
        .unwrap();
    let shown = format!(
        "return [...document.querySelectorAll('#memory li')].some(li => li.textContent.includes({fact:?}))"
    );
    browser
        .wait_for(&shown, 10 * SECOND)
        .unwrap_or_else(|error| panic!("{error}: the panel does not show the fact"));
    let listed = household.cli_ok(&household.laptop, &["memory", "--room", "household"]);
    assert!(listed.contains(fact), "{listed}");
    // Forget it with its button; the panel reloads without it.
    browser
        .script(&format!(
            "const item = [...document.querySelectorAll('#memory li')].find(li => li.textContent.includes({fact:?})); \
             item.querySelector('button').click(); return true"
        ))
        .unwrap();
    browser
        .wait_for(
            &format!(
                "return ![...document.querySelectorAll('#memory li')].some(li => li.textContent.includes({fact:?}))"
            ),
            10 * SECOND,
        )
        .unwrap_or_else(|error| panic!("{error}: Forget left the fact on the page"));
    let listed = household.cli_ok(&household.laptop, &["memory", "--room", "household"]);
    assert!(
        !listed.contains(fact),
        "forgotten on the page, still kept: {listed}"
    );
    browser
        .script("document.getElementById('keeps').open = false; return true")
        .unwrap();
}

/// The messaging service dies while a reply is being written (here: while
/// the question waits for the gateway): after its restart the page, which
/// showed the reply as still coming, shows it cut off with "Ask again",
/// and the button asks the same question again, which is answered.
fn an_answer_cut_off_by_a_crash_is_shown_and_asked_again(
    browser: &Session,
    household: &mut hearth_testkit::household::Household,
) {
    let waits = |household: &hearth_testkit::household::Household| {
        household
            .messaging_log()
            .matches("the question waits for it")
            .count()
    };
    let before = waits(household);
    household.stop_gateway();
    let question = "@assistant are you still there?";
    browser.type_into("#text", question).unwrap();
    browser.click("#send").unwrap();
    hearth_testkit::lab::wait_until(20 * SECOND, || waits(household) > before)
        .unwrap_or_else(|| panic!("the question did not wait: {}", household.messaging_log()));
    browser
        .wait_for(
            "return document.querySelector('li.assistant[data-status=\"streaming\"]') !== null",
            10 * SECOND,
        )
        .unwrap();
    household.messaging.as_mut().unwrap().kill();
    household.start_messaging();
    household.start_gateway();
    let shown = browser
        .wait_for(
            "const cut = document.querySelector('li.assistant[data-status=\"interrupted\"]'); \
             return cut && cut.querySelector('button') ? cut.textContent : null",
            30 * SECOND,
        )
        .unwrap_or_else(|error| panic!("{error}; messaging log:\n{}", household.messaging_log()));
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("This answer was cut off") && shown.contains("Ask again"),
        "{shown}"
    );
    assert!(
        browser
            .script(
                "return document.querySelector('li.assistant[data-status=\"streaming\"]') === null"
            )
            .unwrap()
            .as_bool()
            .unwrap(),
        "nothing is left growing"
    );
    let done = "return document.querySelectorAll('li.assistant[data-status=\"done\"]').length";
    let answered = browser.script(done).unwrap().as_u64().unwrap();
    browser
        .click("li.assistant[data-status=\"interrupted\"] button")
        .unwrap();
    browser
        .wait_for(
            &format!(
                "return [...document.querySelectorAll('li.mine .body')].filter(b => b.textContent === {question:?}).length === 2"
            ),
            10 * SECOND,
        )
        .unwrap_or_else(|error| panic!("{error}: Ask again sent nothing"));
    browser
        .wait_for(&format!("{done} > {answered} || null"), 30 * SECOND)
        .unwrap_or_else(|error| panic!("{error}; messaging log:\n{}", household.messaging_log()));
}
