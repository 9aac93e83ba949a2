//! The native-client scenarios (tests/clients/README.md) on rust_socketio 0.6, with its async
//! client (`--mode async`, tokio) or its sync client (`--mode sync`, threads).
//!
//! Input comes from the environment (RT_URL, RT_TOKEN, RT_USER, RT_TOKEN_PREFIX, RT_TAG,
//! RT_TRANSPORTS); output is one line per scenario and transport (`PASS websocket/emit-ack`,
//! `FAIL polling/x: why`, `UNSUPPORTED polling/x: why`) and a `SUMMARY` line. The scenarios are
//! written once against the small `Conn` trait; each mode implements it with its own client,
//! whose callbacks only push into an `Inbox` that the scenarios wait on with a timeout.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A scenario's outcome other than a pass.
enum Outcome {
    Fail(String),
    Unsupported(String),
}

type Res<T = ()> = Result<T, Outcome>;

fn fail<T>(why: impl Into<String>) -> Res<T> {
    Err(Outcome::Fail(why.into()))
}

/// What the callbacks saw, in order: the scenarios take the first item they wait for.
#[derive(Default)]
struct Inbox {
    seen: Mutex<VecDeque<(Event, Payload)>>,
    changed: Condvar,
}

impl Inbox {
    fn push(&self, event: Event, payload: Payload) {
        self.seen.lock().unwrap().push_back((event, payload));
        self.changed.notify_all();
    }

    /// The first item for which `pick` is true, waiting up to TIMEOUT for one.
    fn wait(&self, what: &str, pick: impl Fn(&Event) -> bool) -> Res<Payload> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if let Some(i) = seen.iter().position(|(e, _)| pick(e)) {
                return Ok(seen.remove(i).unwrap().1);
            }
            let now = Instant::now();
            if now >= deadline {
                return fail(format!("no {what} within 5 s"));
            }
            seen = self.changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    fn event(&self, name: &str) -> Res<Payload> {
        self.wait(name, |e| matches!(e, Event::Custom(n) if n == name))
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// One socket (one namespace, one Engine.IO connection: this library does not multiplex).
trait Conn {
    fn emit(&self, event: &str, payload: Payload) -> Res;
    /// Emit with an ack; the ack callback's payloads (a binary ack gives two: text, then bytes).
    fn call_n(&self, event: &str, payload: Payload, n: usize) -> Res<Vec<Payload>>;
    fn disconnect(&self) -> Res;
    fn inbox(&self) -> &Inbox;

    fn call(&self, event: &str, payload: Payload) -> Res<Value> {
        // the library hands an ack's JSON array over as one value: Text([[arg, ...]])
        match self.call_n(event, payload, 1)?.remove(0) {
            Payload::Text(mut values) if values.len() == 1 && values[0].is_array() => Ok(values.remove(0)),
            other => fail(format!("ack of {event} was {other:?}")),
        }
    }
}

fn collect(rx: mpsc::Receiver<Payload>, event: &str, n: usize) -> Res<Vec<Payload>> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.recv_timeout(TIMEOUT) {
            Ok(p) => got.push(p),
            Err(_) => return fail(format!("ack of {event}: {} of {n} payloads within 5 s", got.len())),
        }
    }
    Ok(got)
}

fn lib(e: rust_socketio::Error) -> Outcome {
    Outcome::Fail(format!("library error: {e}"))
}

struct Options {
    url: String,
    namespace: &'static str,
    auth: Value,
    transport: TransportType,
    reconnect: bool,
}

// -- the sync client ---------------------------------------------------------------------------

struct SyncConn {
    client: rust_socketio::client::Client,
    inbox: Arc<Inbox>,
}

fn connect_sync(o: Options) -> Res<SyncConn> {
    let inbox = Arc::new(Inbox::default());
    let mut builder = rust_socketio::ClientBuilder::new(o.url)
        .namespace(o.namespace)
        .auth(o.auth)
        .transport_type(o.transport)
        .reconnect(o.reconnect)
        .reconnect_delay(100, 200);
    for event in [Event::Connect, Event::Close, Event::Error] {
        let inbox = inbox.clone();
        let tag = event.clone();
        builder = builder.on(event, move |p, _| inbox.push(tag.clone(), p));
    }
    let any = inbox.clone();
    builder = builder.on_any(move |event, p, _| any.push(event, p));
    let client = builder.connect().map_err(lib)?;
    Ok(SyncConn { client, inbox })
}

impl Conn for SyncConn {
    fn emit(&self, event: &str, payload: Payload) -> Res {
        self.client.emit(event, payload).map_err(lib)
    }

    fn call_n(&self, event: &str, payload: Payload, n: usize) -> Res<Vec<Payload>> {
        let (tx, rx) = mpsc::channel();
        self.client
            .emit_with_ack(event, payload, TIMEOUT, move |p, _| {
                let _ = tx.send(p);
            })
            .map_err(lib)?;
        collect(rx, event, n)
    }

    fn disconnect(&self) -> Res {
        self.client.disconnect().map_err(lib)
    }

    fn inbox(&self) -> &Inbox {
        &self.inbox
    }
}

// -- the async client --------------------------------------------------------------------------

struct AsyncConn {
    rt: Arc<tokio::runtime::Runtime>,
    client: rust_socketio::asynchronous::Client,
    inbox: Arc<Inbox>,
}

fn connect_async(rt: &Arc<tokio::runtime::Runtime>, o: Options) -> Res<AsyncConn> {
    use rust_socketio::asynchronous::ClientBuilder;
    let inbox = Arc::new(Inbox::default());
    let mut builder = ClientBuilder::new(o.url)
        .namespace(o.namespace)
        .auth(o.auth)
        .transport_type(o.transport)
        .reconnect(o.reconnect)
        .reconnect_delay(100, 200);
    for event in [Event::Connect, Event::Close, Event::Error] {
        let inbox = inbox.clone();
        let tag = event.clone();
        builder = builder.on(event, move |p, _| {
            inbox.push(tag.clone(), p);
            async {}.boxed()
        });
    }
    let any = inbox.clone();
    builder = builder.on_any(move |event, p, _| {
        any.push(event, p);
        async {}.boxed()
    });
    let client = rt.block_on(builder.connect()).map_err(lib)?;
    Ok(AsyncConn { rt: rt.clone(), client, inbox })
}

impl Conn for AsyncConn {
    fn emit(&self, event: &str, payload: Payload) -> Res {
        self.rt.block_on(self.client.emit(event, payload)).map_err(lib)
    }

    fn call_n(&self, event: &str, payload: Payload, n: usize) -> Res<Vec<Payload>> {
        let (tx, rx) = mpsc::channel();
        let callback = move |p: Payload, _| {
            let _ = tx.send(p);
            async {}.boxed()
        };
        self.rt
            .block_on(self.client.emit_with_ack(event, payload, TIMEOUT, callback))
            .map_err(lib)?;
        collect(rx, event, n)
    }

    fn disconnect(&self) -> Res {
        self.rt.block_on(self.client.disconnect()).map_err(lib)
    }

    fn inbox(&self) -> &Inbox {
        &self.inbox
    }
}

// -- a run: one mode, one transport --------------------------------------------------------------

struct Run {
    mode: String,
    transport: String,
    url: String,
    token: String,
    user: String,
    prefix: String,
    tag: String,
    counter: usize,
    rt: Arc<tokio::runtime::Runtime>,
    main: Option<Box<dyn Conn>>,
}

impl Run {
    fn next_tag(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{}-rust-{}-{}-{}-{}", self.tag, self.mode, self.transport, what, self.counter)
    }

    /// A new socket on its own connection; waits for the server's answer to CONNECT.
    fn open(&self, namespace: &'static str, auth: Value, reconnect: bool) -> Res<Box<dyn Conn>> {
        let conn = self.open_raw(namespace, auth, reconnect)?;
        let payload = conn.inbox().wait("connect or error", |e| matches!(e, Event::Connect | Event::Error))?;
        // a connect has an empty payload; an error says what went wrong
        match &payload {
            Payload::Text(v) if v.iter().all(|x| x.as_str() == Some("")) => Ok(conn),
            other => fail(format!("connect failed: {other:?}")),
        }
    }

    fn open_raw(&self, namespace: &'static str, auth: Value, reconnect: bool) -> Res<Box<dyn Conn>> {
        let transport = if self.transport == "polling" { TransportType::Polling } else { TransportType::Websocket };
        let o = Options { url: self.url.clone(), namespace, auth, transport, reconnect };
        Ok(if self.mode == "async" { Box::new(connect_async(&self.rt, o)?) } else { Box::new(connect_sync(o)?) })
    }

    fn main(&mut self) -> Res<&dyn Conn> {
        if self.main.is_none() {
            let tag = self.next_tag("main");
            let conn = self.open("/native", json!({"token": self.token, "tag": tag}), false)?;
            self.main = Some(conn);
        }
        Ok(self.main.as_deref().unwrap())
    }

    fn server_reason(&mut self, tag: &str, want: &str) -> Res {
        let got = self.main()?.call("reason", json!(tag).into())?;
        if got != json!([want]) {
            return fail(format!("the server saw {got}, want {want:?}"));
        }
        Ok(())
    }

    fn run(&mut self, name: &str) -> Res {
        match name {
            "connect-auth" => self.connect_auth(),
            "connect-refused" => self.refusal().map(|_| ()),
            "connect-error-message" => self.connect_error_message(),
            "emit-ack" => {
                let got = self.main()?.call("echo", vec![json!("hello"), json!(1)].into())?;
                same(got, json!(["hello", 1]))
            }
            "emit-noack" => {
                let main = self.main()?;
                main.emit("notify", vec![json!("no ack"), json!(2)].into())?;
                same_payload(main.inbox().event("notified")?, json!(["no ack", 2]))
            }
            "server-ack" => Err(Outcome::Unsupported(
                "rust_socketio 0.6.0 cannot answer a server's ack request: it drops the id of an incoming EVENT \
                 and has no API to send an ACK"
                    .into(),
            )),
            "binary-up" => self.binary_up(),
            "binary-ack" => self.binary_ack(),
            "binary-down" => self.binary_down(),
            "binary-nested" => Err(Outcome::Unsupported(
                "rust_socketio 0.6.0 hands a binary event to the callback as its first attachment alone: \
                 the other arguments and any structure around the bytes are dropped"
                    .into(),
            )),
            "json-types" => {
                let args = type_args();
                let got = self.main()?.call("types", args.clone().into())?;
                let types = json!(["integer", "integer", "float", "string", "boolean", "boolean", "null", "array", "object"]);
                same(got, json!([types, args]))
            }
            "unicode" => {
                let args = unicode_args();
                let got = self.main()?.call("ünïcødé-ēvent ✓", args.clone().into())?;
                same(got, Value::Array(args))
            }
            "room-broadcast" => self.room_broadcast(),
            "second-namespace" => Err(Outcome::Unsupported(
                "a rust_socketio client is bound to one namespace (ClientBuilder::namespace) and opens its own \
                 Engine.IO connection: there is no way to multiplex a second namespace on it"
                    .into(),
            )),
            "namespace-leave" => Err(Outcome::Unsupported(
                "no second namespace on one connection to leave (see second-namespace)".into(),
            )),
            "disconnect-client" => {
                let tag = self.next_tag("leaver");
                let conn = self.open("/native", json!({"tag": tag}), false)?;
                conn.disconnect()?;
                self.server_reason(&tag, "client namespace disconnect")
            }
            "disconnect-server" => self.disconnect_server(),
            "reconnect" => self.reconnect(),
            _ => fail(format!("unknown scenario {name}")),
        }
    }

    fn connect_auth(&mut self) -> Res {
        let transport = self.transport.clone();
        let (user, prefix) = (self.user.clone(), self.prefix.clone());
        let got = self.main()?.call("identity", Payload::Text(vec![]))?;
        let identity = &got[0];
        let want = json!({"user": user, "token": prefix, "namespace": "/native", "transport": transport});
        for (k, v) in want.as_object().unwrap() {
            if &identity[k] != v {
                return fail(format!("identity {identity}, want {k}={v}"));
            }
        }
        Ok(())
    }

    /// Connect with a token the server does not know: the error callback's text.
    fn refusal(&mut self) -> Res<String> {
        let tag = self.next_tag("refused");
        let bad = format!("rt_00000000_{}", "A".repeat(43));
        let conn = self.open_raw("/native", json!({"token": bad, "tag": tag}), false)?;
        let got = conn.inbox().wait("connect or error", |e| matches!(e, Event::Connect | Event::Error))?;
        let _ = conn.disconnect();
        match got {
            Payload::Text(v) => match v.first().and_then(Value::as_str) {
                Some(text) if !text.is_empty() => Ok(text.to_owned()),
                _ => fail("connected with an unknown token"),
            },
            other => fail(format!("error payload {other:?}")),
        }
    }

    fn connect_error_message(&mut self) -> Res {
        // the library reports "Received an ConnectError frame: <the packet's JSON>"
        let text = self.refusal()?;
        let data = text.split_once(": ").map(|(_, d)| d).unwrap_or("");
        match serde_json::from_str::<Value>(data) {
            Ok(v) if v == json!({"message": "invalid token"}) => Ok(()),
            _ => fail(format!("connect error {text:?}, want the message \"invalid token\"")),
        }
    }

    fn binary_up(&mut self) -> Res {
        let blob = pattern(1000);
        let main = self.main()?;
        main.emit("binary", Payload::Binary(blob.clone().into()))?;
        same_payload(main.inbox().event("binary-seen")?, json!([description(&blob)]))
    }

    fn binary_ack(&mut self) -> Res {
        let blob = vec![0u8, 1, 2, 250, 255];
        let main = self.main()?;
        match main.call_n("binary-ack", Payload::Binary(blob.clone().into()), 2) {
            Ok(got) => match (&got[0], &got[1]) {
                (Payload::Text(text), Payload::Binary(b)) if b.as_ref() == [255, 250, 2, 1, 0] => {
                    same(Value::Array(text.clone()), json!([[description(&blob)]]))
                }
                _ => fail(format!("ack {got:?}, want a description and the bytes reversed")),
            },
            // emit_with_ack(Payload::Binary) writes a BINARY_ACK packet (type 6) where a BINARY_EVENT (5)
            // with an id belongs (Packet::new_from_payload), so a server has no event to answer
            Err(Outcome::Fail(why)) if why.contains("0 of 2") => Err(Outcome::Unsupported(format!(
                "rust_socketio 0.6.0 sends binary with an ack as a BINARY_ACK packet (type 6) instead of a \
                 BINARY_EVENT (type 5) with an id, so no server answers it ({why})"
            ))),
            Err(e) => Err(e),
        }
    }

    fn binary_down(&mut self) -> Res {
        let websocket = self.transport == "websocket";
        let main = self.main()?;
        main.emit("binary-down", Payload::Text(vec![]))?;
        match main.inbox().event("binary-down") {
            Ok(Payload::Binary(b)) if b.as_ref() == (0..=255u8).collect::<Vec<_>>().as_slice() => Ok(()),
            Ok(other) => fail(format!("binary-down {other:?}, want bytes 0..255")),
            Err(Outcome::Fail(why)) if websocket => {
                // seen with 0.6.0: the client stops reading (no pong: the server closes it for ping timeout)
                self.main = None;
                Err(Outcome::Unsupported(format!(
                    "rust_socketio 0.6.0 over WebSocket never delivers a binary event from the server and its \
                     connection stops answering pings ({why}); over polling it does"
                )))
            }
            Err(e) => Err(e),
        }
    }

    fn room_broadcast(&mut self) -> Res {
        let room = self.next_tag("room");
        let url = self.url.clone();
        let main = self.main()?;
        same(main.call("join", json!(room).into())?, json!([[room]]))?;
        let body = json!({"event": "room-news", "args": ["from a view", {"n": 1}], "to": room, "namespace": "/native"});
        let status = post(&url, "/test/emit/", &body.to_string()).map_err(|e| Outcome::Fail(format!("POST: {e}")))?;
        if status != 200 {
            return fail(format!("the view answered {status}"));
        }
        same_payload(main.inbox().event("room-news")?, json!(["from a view", {"n": 1}]))
    }

    fn disconnect_server(&mut self) -> Res {
        let tag = self.next_tag("kicked");
        let conn = self.open("/native", json!({"tag": tag}), false)?;
        conn.emit("kick", Payload::Text(vec![]))?;
        // the library's close callback carries no reason: seeing it is what the client can report
        conn.inbox().wait("close", |e| matches!(e, Event::Close))?;
        self.server_reason(&tag, "server namespace disconnect")
    }

    fn reconnect(&mut self) -> Res {
        let tag = self.next_tag("dropped");
        let conn = self.open("/native", json!({"tag": tag}), true)?;
        conn.inbox().clear();
        conn.emit("drop", Payload::Text(vec![]))?;
        match conn.inbox().wait("reconnection", |e| matches!(e, Event::Connect)) {
            Err(Outcome::Fail(why)) if self.mode == "sync" && self.transport == "polling" => {
                // client::Client::poll_callback reconnects only when a poll fails (an engine.io error); after
                // the close packet a polling server sends, rust_engineio's Socket::poll returns None (the
                // packet marked it disconnected) and the poll loop just ends. Over WebSocket the server
                // closes the socket with no close packet, as Node does: the failed read makes it reconnect.
                return Err(Outcome::Unsupported(format!(
                    "rust_socketio 0.6.0's sync client does not reconnect after the server's Engine.IO close \
                     packet (sent over polling): its poll loop ends instead of failing ({why})"
                )));
            }
            other => other?,
        };
        let got = conn.call("echo", json!("after reconnect").into())?;
        same(got, json!(["after reconnect"]))?;
        let count = self.main()?.call("connects", json!(tag).into())?;
        same(count, json!([2]))?;
        let _ = conn.disconnect();
        self.server_reason(&tag, "transport close")
    }
}

// -- values --------------------------------------------------------------------------------------

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

fn description(b: &[u8]) -> Value {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    json!({"type": "binary", "length": b.len(), "hex": hex})
}

fn type_args() -> Vec<Value> {
    vec![
        json!(42),
        json!(-7),
        json!(3.25),
        json!("text"),
        json!(true),
        json!(false),
        Value::Null,
        json!([1, "two", [3.5]]),
        json!({"k": {"n": null, "b": false}}),
    ]
}

fn unicode_args() -> Vec<Value> {
    vec![
        json!("héllo wörld"),
        json!("😀🎉"),
        json!("中文"),
        json!("עברית"),
        json!("line\u{2028}separator"),
        json!("quote\" back\\slash"),
        json!({"ключ": "значение"}),
    ]
}

fn same(got: Value, want: Value) -> Res {
    if got == want {
        Ok(())
    } else {
        fail(format!("got {got}, want {want}"))
    }
}

fn same_payload(got: Payload, want: Value) -> Res {
    match got {
        Payload::Text(values) => same(Value::Array(values), want),
        other => fail(format!("got {other:?}, want {want}")),
    }
}

/// A plain HTTP/1.1 POST: the crates already in the build have no blocking HTTP client enabled.
fn post(base: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(status)
}

const SCENARIOS: [&str; 18] = [
    "connect-auth",
    "connect-refused",
    "connect-error-message",
    "emit-ack",
    "emit-noack",
    "server-ack",
    "binary-up",
    "binary-ack",
    "binary-down",
    "binary-nested",
    "json-types",
    "unicode",
    "room-broadcast",
    "second-namespace",
    "namespace-leave",
    "disconnect-client",
    "disconnect-server",
    "reconnect",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.iter().position(|a| a == "--mode").and_then(|i| args.get(i + 1)) {
        Some(m) if m == "async" || m == "sync" => m.clone(),
        _ => {
            eprintln!("usage: realtime-scenarios --mode async|sync");
            std::process::exit(2);
        }
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
    let transports = std::env::var("RT_TRANSPORTS").unwrap_or_else(|_| "websocket,polling".into());
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    for transport in transports.split(',') {
        let mut run = Run {
            mode: mode.clone(),
            transport: transport.to_owned(),
            url: env("RT_URL"),
            token: env("RT_TOKEN"),
            user: env("RT_USER"),
            prefix: env("RT_TOKEN_PREFIX"),
            tag: env("RT_TAG"),
            counter: 0,
            rt: rt.clone(),
            main: None,
        };
        let skip = std::env::var("RT_SKIP").unwrap_or_default();
        for name in SCENARIOS.iter().filter(|n| !skip.split(',').any(|s| s == **n)) {
            if let Some(main) = &run.main {
                main.inbox().clear();
            }
            match run.run(name) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS {transport}/{name}");
                }
                Err(Outcome::Unsupported(why)) => {
                    unsupported += 1;
                    println!("UNSUPPORTED {transport}/{name}: {}", why.replace('\n', " "));
                }
                Err(Outcome::Fail(why)) => {
                    failed += 1;
                    println!("FAIL {transport}/{name}: {}", why.replace('\n', " "));
                }
            }
        }
        if let Some(main) = run.main.take() {
            let _ = main.disconnect();
        }
    }
    println!("SUMMARY {passed} passed, {failed} failed, {unsupported} unsupported");
    // the library's reader threads and tasks may still hold sockets: leave without waiting for them
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
