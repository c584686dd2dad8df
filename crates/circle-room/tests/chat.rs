//! Chat: room messages and their bounded history, private lines to and from the facilitators, and
//! chat moderation.

mod support;

use circle_protocol::{ParticipantId, ServerMsg, SettingsPatch};
use circle_room::{Audience, ChatText, Command, RoomError, RoomLimits};
use support::*;

fn meeting_with(limits: RoomLimits) -> (Sim, ParticipantId, ParticipantId, ParticipantId) {
    let mut sim = Sim::with(Default::default(), limits);
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.clear();
    (sim, alex, sam, kim)
}

fn meeting() -> (Sim, ParticipantId, ParticipantId, ParticipantId) {
    meeting_with(RoomLimits::default())
}

fn private(s: &str, to: Option<&ParticipantId>) -> Command {
    Command::ChatPrivate {
        text: text(s),
        to: to.cloned(),
    }
}

#[test]
fn chat_text_is_trimmed_bounded_and_free_of_control_characters() {
    assert_eq!(
        ChatText::parse("  hello  ", 2000).unwrap().as_str(),
        "hello"
    );
    assert_eq!(
        ChatText::parse("two\nlines\tand a tab", 2000)
            .unwrap()
            .as_str(),
        "two\nlines\tand a tab"
    );
    assert!(matches!(
        ChatText::parse(" \n\t ", 2000),
        Err(RoomError::InvalidText(_))
    ));
    assert!(matches!(
        ChatText::parse("", 2000),
        Err(RoomError::InvalidText(_))
    ));
    assert!(ChatText::parse(&"ü".repeat(2000), 2000).is_ok());
    assert!(matches!(
        ChatText::parse(&"a".repeat(2001), 2000),
        Err(RoomError::InvalidText(_))
    ));
    assert!(matches!(
        ChatText::parse("bell\u{7}", 2000),
        Err(RoomError::InvalidText(_))
    ));
    assert!(matches!(
        ChatText::parse("esc\u{1b}[2J", 2000),
        Err(RoomError::InvalidText(_))
    ));
}

#[test]
fn room_chat_reaches_everyone_admitted_with_increasing_ids() {
    let (mut sim, alex, sam, kim) = meeting();
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&sam, chat("hello"));
    sim.advance(1_500);
    sim.ok(&kim, chat("  hi Sam  "));
    sim.ok(&alex, chat("welcome both"));

    let seen = chats(sim.got(&alex));
    assert_eq!(seen.len(), 3);
    assert!(
        seen.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase: {seen:?}"
    );
    assert_eq!(seen[0].from, sam);
    assert_eq!(seen[0].name, "Sam");
    assert_eq!(seen[0].at, T0);
    assert_eq!(seen[1].text, "hi Sam", "stored trimmed");
    assert_eq!(seen[1].at, T0 + 1_500);
    assert!(seen.iter().all(|m| !m.private && m.to.is_none()));
    for who in [&sam, &kim] {
        assert_eq!(
            chats(sim.got(who)),
            seen,
            "{who} sees the same chat, own lines included"
        );
    }
    assert!(sim.got(&robin).is_empty(), "the waiting room gets no chat");
    assert_eq!(sim.snapshot(&kim).chat, seen);
}

#[test]
fn the_history_keeps_only_the_latest_messages() {
    let (mut sim, alex, sam, _) = meeting_with(RoomLimits {
        chat_history: 3,
        ..RoomLimits::default()
    });
    for n in 1..=5 {
        sim.ok(&sam, chat(&format!("line {n}")));
    }
    let history = sim.snapshot(&alex).chat;
    assert_eq!(
        history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        vec!["line 3", "line 4", "line 5"]
    );
    // Everything was still delivered live.
    assert_eq!(chats(sim.got(&alex)).len(), 5);
}

#[test]
fn a_late_joiner_sees_the_recent_chat_once_admitted() {
    let (mut sim, alex, sam, _) = meeting_with(RoomLimits {
        chat_history: 3,
        ..RoomLimits::default()
    });
    for n in 1..=4 {
        sim.ok(&sam, chat(&format!("line {n}")));
    }
    sim.ok(&sam, private("only for the facilitators", None));
    let robin = sim.waiting("Robin");
    let (_, waiting_view) = joined_snapshot(&sim.take(&robin));
    assert!(waiting_view.chat.is_empty(), "not while waiting");
    sim.ok(&alex, Command::Admit(robin.clone()));
    let room = sim
        .take(&robin)
        .into_iter()
        .find_map(|m| match m {
            ServerMsg::Admitted { room } => Some(room),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        room.chat
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        vec!["line 2", "line 3", "line 4"],
        "the recent room chat, oldest first, and no private lines"
    );
}

#[test]
fn no_history_when_the_limit_is_zero() {
    let (mut sim, alex, sam, kim) = meeting_with(RoomLimits {
        chat_history: 0,
        ..RoomLimits::default()
    });
    sim.ok(&sam, chat("hello"));
    assert_eq!(chats(sim.got(&kim)).len(), 1, "still delivered live");
    assert!(sim.snapshot(&alex).chat.is_empty());
}

#[test]
fn a_members_private_line_reaches_only_the_facilitators_and_themselves() {
    let (mut sim, alex, sam, kim) = meeting();
    let jo = sim.facilitator("Jo");
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&sam, private("I need to talk after", None));

    assert_eq!(
        sim.audiences_of(|m| matches!(m, ServerMsg::Chat { .. })),
        vec![Audience::FacilitatorsAnd(sam.clone())]
    );
    let mut expected = vec![alex.clone(), sam.clone(), jo.clone()];
    expected.sort();
    let mut recipients = sim.room.recipients(&Audience::FacilitatorsAnd(sam.clone()));
    recipients.sort();
    assert_eq!(recipients, expected);
    assert_eq!(
        sim.who_got(|m| matches!(m, ServerMsg::Chat { .. })),
        expected
    );
    assert!(sim.got(&kim).is_empty());
    assert!(sim.got(&robin).is_empty());

    let msg = &chats(sim.got(&alex))[0];
    assert!(msg.private);
    assert_eq!(msg.from, sam);
    assert_eq!(msg.to, None);
    assert_eq!(msg.text, "I need to talk after");
    assert!(
        sim.snapshot(&alex).chat.is_empty(),
        "private lines are not kept"
    );

    // A member cannot aim a private line at another member.
    sim.clear();
    sim.ok(&sam, private("psst", Some(&kim)));
    assert!(sim.got(&kim).is_empty());
    assert_eq!(chats(sim.got(&alex))[0].to, None);
}

#[test]
fn a_facilitator_replies_privately_to_one_member() {
    let (mut sim, alex, sam, kim) = meeting();
    let jo = sim.facilitator("Jo");
    sim.clear();
    sim.ok(&alex, private("Of course, stay on after", Some(&sam)));
    let mut expected = vec![alex.clone(), sam.clone(), jo.clone()];
    expected.sort();
    assert_eq!(
        sim.who_got(|m| matches!(m, ServerMsg::Chat { .. })),
        expected
    );
    assert!(sim.got(&kim).is_empty());
    let msg = &chats(sim.got(&sam))[0];
    assert!(msg.private);
    assert_eq!(msg.to.as_ref(), Some(&sam));
    assert_eq!(msg.name, "Alex");

    // Without `to` it goes to the facilitators only.
    sim.clear();
    sim.ok(&alex, private("Sam may need a call", None));
    let mut facs = vec![alex.clone(), jo.clone()];
    facs.sort();
    assert_eq!(sim.who_got(|m| matches!(m, ServerMsg::Chat { .. })), facs);

    // Only to someone in the room.
    let robin = sim.waiting("Robin");
    assert_eq!(
        sim.cmd(&alex, private("wait", Some(&robin))),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(
        sim.cmd(&alex, private("hello", Some(&"nobody".into()))),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn private_and_room_messages_share_one_id_sequence() {
    let (mut sim, alex, sam, _) = meeting();
    sim.ok(&sam, chat("one"));
    sim.ok(&sam, private("two", None));
    sim.ok(&sam, chat("three"));
    let ids: Vec<_> = chats(sim.got(&alex)).iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
}

#[test]
fn a_facilitator_deletes_a_message_for_everyone() {
    let (mut sim, alex, sam, kim) = meeting();
    sim.ok(&sam, chat("something hurtful"));
    sim.ok(&kim, chat("a kind word"));
    let bad = chats(sim.got(&alex))[0].id;
    sim.clear();
    sim.ok(&alex, Command::DeleteChat(bad));
    for who in [&alex, &sam, &kim] {
        assert_eq!(
            sim.got(who),
            &[ServerMsg::ChatDeleted { message: bad }],
            "{who}"
        );
    }
    let history = sim.snapshot(&kim).chat;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, "a kind word");
    // A late joiner never sees it.
    let lee = sim.member("Lee");
    assert!(sim.snapshot(&lee).chat.iter().all(|m| m.id != bad));

    assert_eq!(
        sim.cmd(&alex, Command::DeleteChat(bad)),
        Err(RoomError::UnknownMessage)
    );
    assert_eq!(
        sim.cmd(&alex, Command::DeleteChat(9_999)),
        Err(RoomError::UnknownMessage)
    );
    assert_eq!(
        sim.cmd(&sam, Command::DeleteChat(bad + 1)),
        Err(RoomError::Forbidden)
    );
}

#[test]
fn a_facilitator_stops_and_restores_one_members_chat() {
    let (mut sim, alex, sam, kim) = meeting();
    sim.ok(
        &alex,
        Command::SetChatAllowed {
            participant: sam.clone(),
            allowed: false,
        },
    );
    assert!(
        !updates_about(sim.got(&kim), &sam)[0].chat_allowed,
        "everyone sees it"
    );
    assert!(
        !updates_about(sim.got(&sam), &sam)[0].chat_allowed,
        "Sam is told"
    );
    sim.clear();
    assert_eq!(
        sim.cmd(&sam, chat("let me speak")),
        Err(RoomError::ChatNotAllowed)
    );
    assert_eq!(
        sim.cmd(&sam, private("let me speak", None)),
        Err(RoomError::ChatNotAllowed)
    );
    assert!(sim.log.is_empty());
    sim.ok(&kim, chat("others still can"));

    sim.ok(
        &alex,
        Command::SetChatAllowed {
            participant: sam.clone(),
            allowed: true,
        },
    );
    sim.ok(&sam, chat("sorry"));
    assert_eq!(chats(sim.got(&kim)).last().unwrap().text, "sorry");

    assert!(matches!(
        sim.cmd(
            &alex,
            Command::SetChatAllowed {
                participant: alex.clone(),
                allowed: false
            }
        ),
        Err(RoomError::BadTarget(_))
    ));
}

#[test]
fn with_room_chat_off_only_facilitators_write() {
    let (mut sim, alex, sam, kim) = meeting();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            chat_enabled: Some(false),
            ..Default::default()
        }),
    );
    for who in [&alex, &sam, &kim] {
        assert!(
            sim.got(who)
                .iter()
                .any(|m| matches!(m, ServerMsg::Settings { settings } if !settings.chat_enabled))
        );
    }
    sim.clear();
    assert_eq!(sim.cmd(&sam, chat("hello?")), Err(RoomError::ChatDisabled));
    assert!(sim.log.is_empty());
    sim.ok(&alex, chat("Chat is paused while we share"));
    assert_eq!(chats(sim.got(&sam)).len(), 1);
    // A member can still reach the facilitators privately.
    sim.ok(&sam, private("I need help", None));
    assert_eq!(chats(sim.got(&alex)).last().unwrap().text, "I need help");

    sim.ok(
        &alex,
        settings(SettingsPatch {
            chat_enabled: Some(true),
            ..Default::default()
        }),
    );
    sim.ok(&sam, chat("thanks"));
    assert_eq!(chats(sim.got(&kim)).last().unwrap().text, "thanks");
}
