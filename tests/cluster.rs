//! Cluster mode (issue 12, parts 1 and 2) with real processes: a `redis-server` on a free loopback
//! port with persistence off, and three `circle` nodes on loopback registered in it.
//!
//! - meetings are spread over the nodes, and every node knows where each one is;
//! - a client sent to the wrong node is told where to go, follows, and is in the meeting;
//! - Redis restarting mid-meeting ends no meeting, and the nodes register again;
//! - a drained node's meetings go on while new ones go elsewhere;
//! - a node killed with `kill -9` leaves placement once its record lapses;
//! - a Redis that keeps data on disk is warned about.
//!
//! `redis-server` comes from Debian's `redis-server` package, installed here when missing (root and
//! the Debian mirror needed; the test fails saying so otherwise). Every process is killed when its
//! guard is dropped, a failing test included.

use circle_tests::{
    Client, WAIT,
    proto::{ClientMsg as C, ErrorCode, PROTOCOL_VERSION, RoomId, ServerMsg as S},
};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;

/// The key the nodes share (at least 32 characters).
const TOKEN_KEY: &str = "cluster-test-token-key-0123456789abcdef";
/// How long a process may take to start.
const START_WAIT: Duration = Duration::from_secs(30);
/// A node's record lapses after 10 s (`NODE_TTL`); this leaves room for a busy machine.
const LAPSE_WAIT: Duration = Duration::from_secs(40);

/// `redis-server`, installed from Debian when missing (once per test binary: the tests run in
/// parallel, and two `apt-get`s at once would fight over dpkg's lock).
fn redis_server() -> &'static str {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| circle_tests::debian_tool("redis-server", "redis-server"));
    "redis-server"
}

/// A free loopback TCP port (the kernel's pick; the process started on it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` child, killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
}

impl Redis {
    /// Persistence off (`save ""`, `appendonly no`), as DEPLOY.md says; `persistent` turns
    /// snapshots on instead, to see the nodes warn.
    fn start(persistent: bool) -> Redis {
        let dir = circle_tests::scratch_dir("circle-cluster-redis-");
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir,
            persistent,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let save = if self.persistent { "3600 1" } else { "" };
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", save, "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + START_WAIT;
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One command in RESP; the first line of the answer.
    fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// Kills the server (its data goes with it: persistence is off) and starts a fresh one on the
    /// same port.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `circle` node, killed when dropped.
struct Node {
    child: Child,
    id: String,
    base: String,
    data: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(redis: &Redis, id: &str) -> Node {
        let data = circle_tests::scratch_dir("circle-cluster-node-");
        let mut child = Command::new(env!("CARGO_BIN_EXE_circle-fault"))
            .env_clear()
            .env("CIRCLE_SERVER__LISTEN", "127.0.0.1:0")
            .env("CIRCLE_MEDIA__ENABLED", "false")
            .env("CIRCLE_LIMITS__ROOMS_PER_CLIENT_BURST", "1000")
            .env("CIRCLE_STORAGE__DATA_DIR", &data)
            .env("CIRCLE_AUTH__TOKEN_KEY", TOKEN_KEY)
            .env("CIRCLE_CLUSTER__REDIS_URL", redis.url())
            .env("CIRCLE_CLUSTER__NODE_ID", id)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("circle-fault runs");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let Ok(first) = rx.recv_timeout(START_WAIT) else {
            let _ = child.kill();
            panic!("node {id} did not start: {:?}", stderr.lock().unwrap());
        };
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        Node {
            child,
            id: id.to_owned(),
            base,
            data,
            stderr,
        }
    }

    fn ws_url(&self) -> String {
        format!("{}/ws", self.base.replacen("http", "ws", 1))
    }

    fn log_has(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.id);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Redis and three nodes, each registered.
struct Cluster {
    nodes: Vec<Node>,
    redis: Redis,
}

async fn cluster() -> Cluster {
    let redis = Redis::start(false);
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| Node::start(&redis, id))
        .collect();
    for n in &nodes {
        until_ready(n, "up").await;
    }
    Cluster { nodes, redis }
}

/// `/readyz`'s status and body.
async fn readyz(base: &str) -> Option<(u16, Value)> {
    let res = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    Some((status, res.json().await.ok()?))
}

/// Waits until the node's readiness says `"cluster": cluster`.
async fn until_ready(node: &Node, cluster: &str) {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some((_, body)) = readyz(&node.base).await
            && body["cluster"] == cluster
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} never said cluster {cluster}: {:?}",
            node.id,
            node.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /api/rooms` on `node`: status and body.
async fn create(node: &Node) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/rooms", node.base))
        .json(&json!({ "settings": { "waiting_room": false } }))
        .send()
        .await
        .expect("POST /api/rooms");
    (res.status().as_u16(), res.json().await.expect("JSON"))
}

/// A created room: its id and the websocket URL of the node that holds it.
async fn created(node: &Node) -> (RoomId, String) {
    let (status, body) = create(node).await;
    assert_eq!(status, 201, "{body}");
    (
        RoomId(body["room"].as_str().expect("room").to_owned()),
        body["websocket_url"]
            .as_str()
            .expect("websocket_url")
            .to_owned(),
    )
}

/// `GET /api/rooms/{id}` on `node`.
async fn info(node: &Node, room: &RoomId) -> (u16, Value) {
    let res = reqwest::get(format!("{}/api/rooms/{}", node.base, room.0))
        .await
        .expect("GET /api/rooms/{id}");
    (res.status().as_u16(), res.json().await.expect("JSON"))
}

fn join_msg(room: &RoomId, name: &str) -> C {
    C::Join {
        id: None,
        protocol: PROTOCOL_VERSION,
        room: room.clone(),
        name: name.into(),
        secret: None,
        device: None,
        carry: None,
    }
}

/// Joins `room` at `url`; the client and its participant id.
async fn join_at(url: &str, room: &RoomId, name: &str) -> (Client, circle_tests::Joined) {
    let mut c = Client::connect(url, None).await.expect("connects");
    let j = c.join(room, name, None, None).await.expect("joins");
    (c, j)
}

/// `a` says `text`, `b` reads it.
async fn chat_reaches(a: &mut Client, b: &mut Client, text: &str) {
    a.ok(C::Chat {
        id: None,
        text: text.into(),
    })
    .await;
    b.expect("the chat message", |m| match m {
        S::Chat { message } if message.text == text => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_spread_over_the_nodes_and_a_client_at_the_wrong_node_is_sent_to_its_meeting() {
    let c = cluster().await;
    let urls: Vec<String> = c.nodes.iter().map(Node::ws_url).collect();
    // Three meetings asked of the same node: one on each node.
    let mut rooms = Vec::new();
    for _ in 0..3 {
        rooms.push(created(&c.nodes[0]).await);
    }
    let mut holders: Vec<&String> = rooms.iter().map(|(_, url)| url).collect();
    holders.sort();
    holders.dedup();
    assert_eq!(holders.len(), 3, "one meeting per node: {rooms:?}");
    assert!(rooms.iter().all(|(_, url)| urls.contains(url)), "{rooms:?}");
    // Every node tells where each meeting is.
    for (room, url) in &rooms {
        for n in &c.nodes {
            let (status, body) = info(n, room).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["websocket_url"], url.as_str(), "asked {}", n.id);
        }
    }

    let (room, owner) = &rooms[0];
    let (mut ann, aj) = join_at(owner, room, "Ann").await;
    // Ben goes to a node that does not hold the meeting: refused, with where to go.
    let wrong = urls.iter().find(|u| *u != owner).expect("another node");
    let mut ben = Client::connect(wrong, None).await.expect("connects");
    let url = match ben.request(&join_msg(room, "Ben")).await.expect("answer") {
        S::Error {
            code: ErrorCode::WrongNode,
            url: Some(url),
            ..
        } => url,
        other => panic!("expected wrong_node with a url, got {other:?}"),
    };
    assert_eq!(&url, owner, "sent to the node that holds the meeting");
    // He follows, and is in the meeting with Ann.
    let (mut ben, bj) = join_at(&url, room, "Ben").await;
    assert!(
        bj.room.participants.iter().any(|p| p.id == aj.you),
        "Ben sees Ann"
    );
    ann.expect("Ben joining", |m| match m {
        S::ParticipantJoined { participant } if participant.id == bj.you => Some(()),
        _ => None,
    })
    .await;
    chat_reaches(&mut ben, &mut ann, "hello from the right node").await;
    // A resume at the wrong node is sent to the same place.
    let mut again = Client::connect(wrong, None).await.expect("connects");
    let err = again
        .resume(room, &bj.token)
        .await
        .expect_err("resume at the wrong node");
    assert_eq!(
        circle_tests::join_error(&err),
        Some(ErrorCode::WrongNode),
        "{err:#}"
    );
    // Redis runs with persistence off: no node warned.
    assert!(
        c.nodes
            .iter()
            .all(|n| !n.log_has("REDIS PERSISTENCE IS ON"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_mid_meeting_ends_no_meeting_and_the_nodes_register_again() {
    let mut c = cluster().await;
    let (room, owner) = created(&c.nodes[0]).await;
    let (mut ann, _) = join_at(&owner, &room, "Ann").await;
    let (mut ben, _) = join_at(&owner, &room, "Ben").await;
    let elsewhere = c
        .nodes
        .iter()
        .position(|n| n.ws_url() != owner)
        .expect("another node");

    c.redis.kill();
    for n in &c.nodes {
        until_ready(n, "down").await;
    }
    // The meeting goes on without Redis.
    chat_reaches(&mut ann, &mut ben, "still here without redis").await;
    // No new meeting starts meanwhile: no node could tell where it is.
    let (status, body) = create(&c.nodes[0]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "cluster_unavailable");

    c.redis.restart();
    for n in &c.nodes {
        until_ready(n, "up").await;
    }
    chat_reaches(&mut ben, &mut ann, "still here with redis back").await;
    // The empty new Redis knows again where the meeting is: the owner wrote it back.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = info(&c.nodes[elsewhere], &room).await;
        if status == 200 && body["websocket_url"] == owner.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "placement not back: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New meetings start again.
    let (room, url) = created(&c.nodes[0]).await;
    let (_, _) = join_at(&url, &room, "Cai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_keeps_its_meetings_while_new_ones_go_elsewhere() {
    let c = cluster().await;
    let (room, owner) = created(&c.nodes[0]).await;
    let (mut ann, _) = join_at(&owner, &room, "Ann").await;
    let (mut ben, _) = join_at(&owner, &room, "Ben").await;
    let drained = c
        .nodes
        .iter()
        .find(|n| n.ws_url() == owner)
        .expect("the owner");
    drained.signal("-USR1");
    let deadline = Instant::now() + WAIT;
    while readyz(&drained.base).await.map(|(s, _)| s) != Some(503) {
        assert!(Instant::now() < deadline, "the node did not start draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New meetings, asked of every node (the drained one too), go elsewhere.
    for n in c.nodes.iter().chain(c.nodes.iter()) {
        let (_, url) = created(n).await;
        assert_ne!(url, owner, "a new meeting went to the draining node");
    }
    // The drained node's meeting goes on.
    chat_reaches(&mut ann, &mut ben, "the meeting goes on while draining").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_placement_once_its_record_lapses() {
    let mut c = cluster().await;
    let dead = c.nodes.pop().expect("three nodes");
    let dead_url = dead.ws_url();
    let key = format!("circle:node:{}", dead.id);
    assert_eq!(c.redis.command(&["EXISTS", &key]).as_deref(), Some(":1"));
    drop(dead); // kill -9
    let deadline = Instant::now() + LAPSE_WAIT;
    while c.redis.command(&["EXISTS", &key]).as_deref() != Some(":0") {
        assert!(
            Instant::now() < deadline,
            "the dead node's record never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Meetings now go to the two live nodes only (the dead one is not even tried: no node finds a
    // node it forwards to silent), and can be joined there.
    let unanswered = |c: &Cluster| {
        c.nodes
            .iter()
            .map(|n| {
                n.stderr
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains("did not answer a forwarded request"))
                    .count()
            })
            .sum::<usize>()
    };
    let before = unanswered(&c);
    for i in 0..4 {
        let (room, url) = created(&c.nodes[i % 2]).await;
        assert_ne!(url, dead_url, "a meeting was placed on the dead node");
        let (_, _) = join_at(&url, &room, "Ann").await;
    }
    assert_eq!(
        unanswered(&c),
        before,
        "a meeting was sent to the dead node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_warns_loudly_when_redis_keeps_data_on_disk() {
    let redis = Redis::start(true);
    let node = Node::start(&redis, "n1");
    until_ready(&node, "up").await;
    let deadline = Instant::now() + WAIT;
    while !node.log_has("REDIS PERSISTENCE IS ON") {
        assert!(
            Instant::now() < deadline,
            "no warning: {:?}",
            node.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = node.stderr.lock().unwrap().clone();
    let warning = lines
        .iter()
        .find(|l| l.contains("REDIS PERSISTENCE IS ON"))
        .expect("the warning");
    assert!(warning.contains("WARN"), "at warn level: {warning}");
    assert!(
        !warning.contains(&redis.url()),
        "the Redis URL (which may hold a password) is not logged: {warning}"
    );
}

/// Two first members of a standing room arrive at the same moment, one at each node: exactly one
/// node starts the meeting (its claim is `SET NX`), the other sends its member there, and both end up
/// in the same meeting. (Two in-process nodes sharing one SQLite data directory stand in for a
/// shared PostgreSQL: both read the same standing room.)
/// Two in-process nodes sharing one SQLite data directory (standing for a shared PostgreSQL: both
/// read the same standing rooms) and a Redis, both registered; the directory is removed on drop.
struct SharedNodes {
    nodes: [circle_tests::TestServer; 2],
    data: PathBuf,
    _redis: Redis,
}

impl Drop for SharedNodes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn shared_nodes() -> SharedNodes {
    use circle_tests::standing::OPERATOR_KEY;
    let redis = Redis::start(false);
    let data = circle_tests::scratch_dir("circle-cluster-shared-");
    let node = |id: &'static str| {
        let (url, data) = (redis.url(), data.display().to_string());
        circle_tests::server_with(move |c| {
            c.storage.data_dir = data;
            c.rooms.operator_key = OPERATOR_KEY.into();
            c.media.enabled = false;
            c.auth.token_key = TOKEN_KEY.into();
            c.cluster.redis_url = url;
            c.cluster.node_id = id.into();
        })
    };
    // One after the other: the first creates the database.
    let nodes = [node("n1").await, node("n2").await];
    for n in &nodes {
        let deadline = Instant::now() + START_WAIT;
        while readyz(&n.base).await.map(|(_, b)| b["cluster"] == "up") != Some(true) {
            assert!(Instant::now() < deadline, "{} never registered", n.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    SharedNodes {
        nodes,
        data,
        _redis: redis,
    }
}

/// Two first members of a standing room arrive at the same moment, one at each node: exactly one
/// node starts the meeting (its claim is `SET NX`), the other sends its member there, and both end up
/// in the same meeting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standing_meeting_starts_on_one_node_only_when_its_first_members_race() {
    let shared = shared_nodes().await;
    let [n1, n2] = &shared.nodes;
    let standing = circle_tests::standing::create_standing(
        &n1.base,
        json!({ "title": "Tuesday group", "settings": { "waiting_room": false } }),
    )
    .await;
    let link = standing.room.clone();
    let urls = [n1.ws_url(), n2.ws_url()];
    let mut ann = Client::connect(&urls[0], None).await.expect("connects");
    let mut ben = Client::connect(&urls[1], None).await.expect("connects");
    let (ann_join, ben_join) = (join_msg(&link, "Ann"), join_msg(&link, "Ben"));
    let (a, b) = tokio::join!(ann.request(&ann_join), ben.request(&ben_join));
    let answers = [a.expect("Ann's answer"), b.expect("Ben's answer")];
    let joined: Vec<usize> = (0..2)
        .filter(|i| matches!(answers[*i], S::Joined { .. }))
        .collect();
    assert_eq!(joined.len(), 1, "one meeting, on one node: {answers:?}");
    let (here, other) = (joined[0], 1 - joined[0]);
    match &answers[other] {
        S::Error {
            code: ErrorCode::WrongNode,
            url: Some(url),
            ..
        } => assert_eq!(url, &urls[here], "sent to the node that started it"),
        other => panic!("expected wrong_node, got {other:?}"),
    }
    let name = ["Ann", "Ben"][other];
    let (mut late, lj) = join_at(&urls[here], &link, name).await;
    let first = if here == 0 { &mut ann } else { &mut ben };
    assert_eq!(lj.room.participants.len(), 2, "both in the same meeting");
    chat_reaches(first, &mut late, "one meeting for both of us").await;
}

/// A standing room's first member who reaches a draining node is sent to a node that takes
/// meetings, and the meeting starts there (during a rolling upgrade nobody is turned away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_sends_a_standing_rooms_first_member_to_another_node() {
    let shared = shared_nodes().await;
    let [n1, n2] = &shared.nodes;
    let standing = circle_tests::standing::create_standing(
        &n1.base,
        json!({ "title": "Wednesday group", "settings": { "waiting_room": false } }),
    )
    .await;
    n1.running.begin_drain();
    let deadline = Instant::now() + WAIT;
    while readyz(&n1.base).await.map(|(s, _)| s) != Some(503) {
        assert!(Instant::now() < deadline, "n1 never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ann = Client::connect(&n1.ws_url(), None).await.expect("connects");
    match ann
        .request(&join_msg(&standing.room, "Ann"))
        .await
        .expect("answer")
    {
        S::Error {
            code: ErrorCode::WrongNode,
            url: Some(url),
            ..
        } => assert_eq!(url, n2.ws_url(), "sent to the node that takes meetings"),
        other => panic!("expected wrong_node, got {other:?}"),
    }
    let (_, j) = join_at(&n2.ws_url(), &standing.room, "Ann").await;
    assert!(j.room.standing, "in the standing room's meeting");
}

/// A node whose Redis is down when it starts still starts (and would serve the meetings it holds),
/// says it is not ready for new ones, and registers by itself once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_redis_registers_once_redis_answers() {
    let mut redis = Redis::start(false);
    redis.kill();
    let node = Node::start(&redis, "n1");
    until_ready(&node, "down").await;
    let (status, body) = readyz(&node.base).await.expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    let (status, body) = create(&node).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("cluster_unavailable"))
    );
    redis.restart();
    until_ready(&node, "up").await;
    assert_eq!(
        redis.command(&["EXISTS", "circle:node:n1"]).as_deref(),
        Some(":1")
    );
    let (room, url) = created(&node).await;
    assert_eq!(url, node.ws_url());
    let (_, _) = join_at(&url, &room, "Ann").await;
}

/// The operator sees on `/metrics` whether the node is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_whether_the_node_is_registered() {
    let mut redis = Redis::start(false);
    let url = redis.url();
    let srv = circle_tests::server_with(move |c| {
        c.media.enabled = false;
        c.admin.listen = "127.0.0.1:0".into();
        c.auth.token_key = TOKEN_KEY.into();
        c.cluster.redis_url = url;
    })
    .await;
    let admin = srv.running.admin_addr.expect("admin listener");
    let registered = || async move {
        let text = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("circle_cluster_registered "))
            .map(str::to_owned)
    };
    let until_gauge = |want: &'static str| async move {
        let deadline = Instant::now() + START_WAIT;
        while registered().await.as_deref() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "circle_cluster_registered never {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    until_gauge("1").await;
    redis.kill();
    until_gauge("0").await;
    redis.restart();
    until_gauge("1").await;
}
