package realtime.scenarios;

import io.socket.client.Ack;
import io.socket.client.Manager;
import io.socket.client.Socket;
import io.socket.emitter.Emitter;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The native-client scenarios (tests/clients/README.md) on socket.io-client-java 2.x.
 *
 * <p>Input comes from the environment (RT_URL, RT_TOKEN, RT_USER, RT_TOKEN_PREFIX, RT_TAG,
 * RT_TRANSPORTS); output is one line per scenario and transport ({@code PASS websocket/emit-ack},
 * {@code FAIL polling/x: why}, {@code UNSUPPORTED polling/x: why}) and a {@code SUMMARY} line.
 * Callbacks run on the library's event thread, so they only hand values to queues; the
 * scenarios wait on those queues with a timeout.
 */
public final class Main {
    static final long TIMEOUT_MS = 5000;
    /** The warm-up connection's timeout (see warmUp): not a scenario, so not held to TIMEOUT_MS. */
    static final long WARM_UP_MS = 30000;

    /** A failure line. */
    static final class Failure extends Exception {
        Failure(String message) {
            super(message);
        }
    }

    /** What the library cannot do (a line of its own, never a pass). */
    static final class Unsupported extends Exception {
        Unsupported(String message) {
            super(message);
        }
    }

    interface Scenario {
        void run() throws Exception;
    }

    final String url = System.getenv("RT_URL");
    final String token = System.getenv("RT_TOKEN");
    final String user = System.getenv("RT_USER");
    final String prefix = System.getenv("RT_TOKEN_PREFIX");
    final String tag = System.getenv("RT_TAG");
    String transport;
    Manager manager;
    Socket main;
    int counter;
    final List<Manager> managers = new ArrayList<>();

    public static void main(String[] argv) {
        String transports = System.getenv().getOrDefault("RT_TRANSPORTS", "websocket,polling");
        Main m = new Main();
        int passed = 0;
        int failed = 0;
        int unsupported = 0;
        for (String transport : transports.split(",")) {
            m.transport = transport;
            m.main = null;
            m.warmUp();
            for (Map.Entry<String, Scenario> entry : m.scenarios().entrySet()) {
                String name = transport + "/" + entry.getKey();
                try {
                    entry.getValue().run();
                    passed++;
                    System.out.println("PASS " + name);
                } catch (Unsupported u) {
                    unsupported++;
                    System.out.println("UNSUPPORTED " + name + ": " + oneLine(u.getMessage()));
                } catch (Exception e) {
                    failed++;
                    String why = e instanceof Failure ? e.getMessage() : e.toString();
                    System.out.println("FAIL " + name + ": " + oneLine(why));
                }
                System.out.flush();
            }
            m.closeAll();
        }
        System.out.println("SUMMARY " + passed + " passed, " + failed + " failed, " + unsupported + " unsupported");
        System.out.flush();
        // OkHttp's threads would keep the JVM alive for a minute
        System.exit(failed > 0 ? 1 : 0);
    }

    Map<String, Scenario> scenarios() {
        Map<String, Scenario> s = new LinkedHashMap<>();
        s.put("connect-auth", this::connectAuth);
        s.put("connect-refused", this::connectRefused);
        s.put("connect-error-message", this::connectErrorMessage);
        s.put("emit-ack", this::emitAck);
        s.put("emit-noack", this::emitNoAck);
        s.put("server-ack", this::serverAck);
        s.put("binary-up", this::binaryUp);
        s.put("binary-ack", this::binaryAck);
        s.put("binary-down", this::binaryDown);
        s.put("binary-nested", this::binaryNested);
        s.put("json-types", this::jsonTypes);
        s.put("unicode", this::unicode);
        s.put("room-broadcast", this::roomBroadcast);
        s.put("second-namespace", this::secondNamespace);
        s.put("namespace-leave", this::namespaceLeave);
        s.put("disconnect-client", this::disconnectClient);
        s.put("disconnect-server", this::disconnectServer);
        s.put("reconnect", this::reconnect);
        return s;
    }

    // -- connecting -------------------------------------------------------------------------

    String nextTag(String what) {
        return tag + "-java-" + transport + "-" + what + "-" + (++counter);
    }

    /** A new Engine.IO connection for this run's transport, not shared with any other. */
    Manager open(boolean reconnect) throws Exception {
        return open(reconnect, TIMEOUT_MS);
    }

    Manager open(boolean reconnect, long timeoutMs) throws Exception {
        Manager.Options opts = new Manager.Options();
        opts.transports = new String[] {transport};
        opts.upgrade = false;
        opts.reconnection = reconnect;
        opts.reconnectionDelay = 100;
        opts.reconnectionDelayMax = 200;
        opts.randomizationFactor = 0;
        opts.timeout = timeoutMs;
        Manager m = new Manager(new URI(url), opts);
        managers.add(m);
        return m;
    }

    static Socket socket(Manager manager, String nsp, Map<String, String> auth) {
        Manager.Options opts = new Manager.Options();
        opts.auth = auth;
        return manager.socket(nsp, opts);
    }

    /** Connect and wait for connect (returns) or connect_error (throws). */
    static Socket connect(Socket socket) throws Exception {
        return connect(socket, TIMEOUT_MS);
    }

    static Socket connect(Socket socket, long ms) throws Exception {
        BlockingQueue<Object[]> outcome = new LinkedBlockingQueue<>();
        socket.once(Socket.EVENT_CONNECT, args -> outcome.add(new Object[] {"connect"}));
        socket.once(Socket.EVENT_CONNECT_ERROR, args -> outcome.add(new Object[] {"error", first(args)}));
        socket.connect();
        Object[] got = take(outcome, "connect or connect_error", ms);
        if (!"connect".equals(got[0])) {
            throw new Failure("connect_error: " + got[1]);
        }
        return socket;
    }

    /**
     * One connection over this run's transport before its timed scenarios, and no line of its own.
     *
     * <p>A JVM's first connection loads and compiles OkHttp and the client: with the programs run side
     * by side on a loaded 2-core machine, the server's OPEN packet once waited over 5 s to be read
     * (the server then closed the session for its connect timeout). That start-up is not what the
     * scenarios' 5 s measure, so it happens here: up to 3 tries within WARM_UP_MS (the server's
     * CONNECT_TIMEOUT may end a first try that slow); a failure is only reported on
     * stderr, as the scenarios after it fail by themselves.
     */
    void warmUp() {
        long started = System.nanoTime();
        long deadline = started + WARM_UP_MS * 1000000;
        for (int attempt = 1; attempt <= 3; attempt++) {
            long left = Math.max(1, (deadline - System.nanoTime()) / 1000000);
            try {
                Socket s = socket(open(false, left), "/native", Map.of("tag", nextTag("warm-up")));
                connect(s, left).disconnect();
                long ms = (System.nanoTime() - started) / 1000000;
                System.err.println("warm-up over " + transport + ": connected in " + ms + " ms, try " + attempt);
                return;
            } catch (Exception e) {
                System.err.println("warm-up over " + transport + ", try " + attempt + ": " + oneLine(e.toString()));
                if (System.nanoTime() >= deadline) {
                    break;
                }
            }
        }
    }

    void ensureMain() throws Exception {
        if (main != null && main.connected()) {
            return;
        }
        manager = open(false);
        main = connect(socket(manager, "/native", Map.of("token", token, "tag", nextTag("main"))));
    }

    void closeAll() {
        for (Manager m : managers) {
            m.off();
        }
        if (main != null) {
            main.disconnect();
        }
        managers.clear();
    }

    // -- waiting on the server --------------------------------------------------------------

    static Object[] take(BlockingQueue<Object[]> queue, String what) throws Exception {
        return take(queue, what, TIMEOUT_MS);
    }

    static Object[] take(BlockingQueue<Object[]> queue, String what, long ms) throws Exception {
        Object[] got = queue.poll(ms, TimeUnit.MILLISECONDS);
        if (got == null) {
            throw new Failure("no " + what + " within " + ms / 1000 + " s");
        }
        return got;
    }

    /** Emit with an ack and return the ack's arguments. */
    static Object[] call(Socket socket, String event, Object... args) throws Exception {
        BlockingQueue<Object[]> acked = new LinkedBlockingQueue<>();
        socket.emit(event, args, (Ack) acked::add);
        return take(acked, "ack of " + event);
    }

    /** Start collecting an event's arguments before whatever triggers it is sent. */
    static BlockingQueue<Object[]> listen(Socket socket, String event) {
        BlockingQueue<Object[]> queue = new LinkedBlockingQueue<>();
        socket.on(event, (Emitter.Listener) queue::add);
        return queue;
    }

    // -- the scenarios ----------------------------------------------------------------------

    void connectAuth() throws Exception {
        ensureMain();
        JSONObject identity = (JSONObject) first(call(main, "identity"));
        Map<String, Object> want = Map.of("user", user, "token", prefix, "namespace", "/native", "transport", transport);
        for (Map.Entry<String, Object> e : want.entrySet()) {
            if (!e.getValue().equals(identity.opt(e.getKey()))) {
                throw new Failure("identity " + identity + ", want " + e.getKey() + "=" + e.getValue());
            }
        }
    }

    Object refusal() throws Exception {
        Socket s = socket(open(false), "/native",
                Map.of("token", "rt_00000000_" + "A".repeat(43), "tag", nextTag("refused")));
        try {
            connect(s);
        } catch (Failure f) {
            if (f.getMessage().startsWith("connect_error: ")) {
                return f.getMessage().substring("connect_error: ".length());
            }
            throw f;
        } finally {
            s.disconnect();
        }
        throw new Failure("connected with an unknown token");
    }

    void connectRefused() throws Exception {
        refusal();
    }

    void connectErrorMessage() throws Exception {
        Object error = refusal();
        JSONObject json = new JSONObject(error.toString());
        if (!"invalid token".equals(json.opt("message")) || json.length() != 1) {
            throw new Failure("connect_error " + error + ", want {\"message\":\"invalid token\"}");
        }
    }

    void emitAck() throws Exception {
        ensureMain();
        same(call(main, "echo", "hello", 1), List.of("hello", 1));
    }

    void emitNoAck() throws Exception {
        ensureMain();
        BlockingQueue<Object[]> notified = listen(main, "notified");
        try {
            main.emit("notify", "no ack", 2);
            same(take(notified, "notified event"), List.of("no ack", 2));
        } finally {
            main.off("notified");
        }
    }

    void serverAck() throws Exception {
        ensureMain();
        main.on("question", args -> {
            Ack ack = (Ack) args[args.length - 1];
            Object[] answer = new Object[args.length];
            answer[0] = "answer";
            System.arraycopy(args, 0, answer, 1, args.length - 1);
            ack.call(answer);
        });
        try {
            same(call(main, "ask", "q", 3), List.of(Map.of("answer", List.of("answer", "q", 3))));
        } finally {
            main.off("question");
        }
    }

    static byte[] pattern(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 7 % 256);
        }
        return b;
    }

    static Map<String, Object> description(byte[] b) {
        StringBuilder hex = new StringBuilder();
        for (byte x : b) {
            hex.append(String.format("%02x", x & 0xff));
        }
        return Map.of("type", "binary", "length", b.length, "hex", hex.toString());
    }

    void binaryUp() throws Exception {
        ensureMain();
        byte[] blob = pattern(1000);
        BlockingQueue<Object[]> seen = listen(main, "binary-seen");
        try {
            main.emit("binary", (Object) blob);
            same(take(seen, "binary-seen event"), List.of(description(blob)));
        } finally {
            main.off("binary-seen");
        }
    }

    void binaryAck() throws Exception {
        ensureMain();
        byte[] blob = {0, 1, 2, (byte) 250, (byte) 255};
        Object[] ack = call(main, "binary-ack", (Object) blob);
        byte[] reversed = {(byte) 255, (byte) 250, 2, 1, 0};
        if (ack.length != 2 || !(ack[0] instanceof byte[]) || !Arrays.equals((byte[]) ack[0], reversed)) {
            throw new Failure("ack " + Arrays.deepToString(ack) + ", want the bytes reversed and a description");
        }
        same(new Object[] {ack[1]}, List.of(description(blob)));
    }

    void binaryDown() throws Exception {
        ensureMain();
        BlockingQueue<Object[]> down = listen(main, "binary-down");
        try {
            main.emit("binary-down");
            Object[] args = take(down, "binary-down event");
            byte[] want = new byte[256];
            for (int i = 0; i < 256; i++) {
                want[i] = (byte) i;
            }
            if (args.length != 1 || !(args[0] instanceof byte[]) || !Arrays.equals((byte[]) args[0], want)) {
                throw new Failure("binary-down " + Arrays.deepToString(args) + ", want bytes 0..255");
            }
        } finally {
            main.off("binary-down");
        }
    }

    void binaryNested() throws Exception {
        ensureMain();
        BlockingQueue<Object[]> nested = listen(main, "binary-nested");
        try {
            main.emit("binary-nested");
            Object[] args = take(nested, "binary-nested event");
            // {"a": 00 01 02, "list": [ff ff ff, "text"]}, 7
            JSONObject obj = (JSONObject) args[0];
            JSONArray list = obj.getJSONArray("list");
            boolean ok = args.length == 2
                    && Arrays.equals((byte[]) obj.get("a"), new byte[] {0, 1, 2})
                    && Arrays.equals((byte[]) list.get(0), new byte[] {(byte) 255, (byte) 255, (byte) 255})
                    && "text".equals(list.get(1))
                    && canon(args[1]).equals("7");
            if (!ok) {
                throw new Failure("binary-nested " + Arrays.deepToString(args));
            }
        } catch (ClassCastException | JSONException e) {
            throw new Failure("binary-nested arrived in another shape: " + e);
        } finally {
            main.off("binary-nested");
        }
    }

    static List<Object> typeArgs() {
        Map<String, Object> inner = new HashMap<>();
        inner.put("n", null);
        inner.put("b", false);
        return Arrays.asList(42, -7, 3.25, "text", true, false, null,
                List.of(1, "two", List.of(3.5)), Map.of("k", inner));
    }

    void jsonTypes() throws Exception {
        ensureMain();
        Object[] args = typeArgs().stream().map(Main::toJson).toArray();
        List<String> types = List.of("integer", "integer", "float", "string", "boolean", "boolean", "null", "array", "object");
        same(call(main, "types", args), List.of(types, typeArgs()));
    }

    static final List<Object> UNICODE = List.of("héllo wörld", "😀🎉", "中文", "עברית", "line\u2028separator",
            "quote\" back\\slash", Map.of("ключ", "значение"));

    void unicode() throws Exception {
        ensureMain();
        same(call(main, "ünïcødé-ēvent ✓", UNICODE.stream().map(Main::toJson).toArray()), UNICODE);
    }

    void roomBroadcast() throws Exception {
        ensureMain();
        String room = nextTag("room");
        same(call(main, "join", room), List.of(List.of(room)));
        BlockingQueue<Object[]> news = listen(main, "room-news");
        try {
            JSONObject body = new JSONObject();
            body.put("event", "room-news");
            body.put("args", new JSONArray().put("from a view").put(new JSONObject().put("n", 1)));
            body.put("to", room);
            body.put("namespace", "/native");
            int status = post(url + "/test/emit/", body.toString());
            if (status != 200) {
                throw new Failure("the view answered " + status);
            }
            same(take(news, "room-news event"), List.of("from a view", Map.of("n", 1)));
        } finally {
            main.off("room-news");
        }
    }

    static int post(String address, String json) throws Exception {
        HttpURLConnection http = (HttpURLConnection) new URL(address).openConnection();
        http.setRequestMethod("POST");
        http.setDoOutput(true);
        http.setRequestProperty("Content-Type", "application/json");
        try (OutputStream out = http.getOutputStream()) {
            out.write(json.getBytes(StandardCharsets.UTF_8));
        }
        int status = http.getResponseCode();
        http.disconnect();
        return status;
    }

    void secondNamespace() throws Exception {
        ensureMain();
        Socket second = connect(socket(manager, "/native-second", null));
        try {
            JSONObject one = (JSONObject) first(call(main, "engine"));
            JSONObject two = (JSONObject) first(call(second, "engine"));
            if (!one.getString("sid").equals(two.getString("sid")) || !"/native-second".equals(two.get("namespace"))) {
                throw new Failure("/native on " + one + ", /native-second on " + two + ": not one Engine.IO connection");
            }
        } finally {
            second.disconnect();
        }
    }

    /** Disconnect a second namespace: the first one on the same connection keeps working. */
    void namespaceLeave() throws Exception {
        ensureMain();
        Socket second = connect(socket(manager, "/native-second", null));
        second.disconnect();
        same(call(main, "echo", "still here"), List.of("still here"));
    }

    void serverReason(String socketTag, String want) throws Exception {
        Object saw = first(call(main, "reason", socketTag));
        if (!want.equals(saw)) {
            throw new Failure("the server saw " + saw + ", want " + want);
        }
    }

    void disconnectClient() throws Exception {
        ensureMain();
        String t = nextTag("leaver");
        Socket s = connect(socket(open(false), "/native", Map.of("tag", t)));
        s.disconnect();
        serverReason(t, "client namespace disconnect");
    }

    void disconnectServer() throws Exception {
        ensureMain();
        String t = nextTag("kicked");
        Socket s = connect(socket(open(true), "/native", Map.of("tag", t)));
        try {
            BlockingQueue<Object[]> gone = listen(s, Socket.EVENT_DISCONNECT);
            s.emit("kick");
            Object reason = first(take(gone, "disconnect"));
            if (!"io server disconnect".equals(reason)) {
                throw new Failure("the client saw " + reason + ", want io server disconnect");
            }
            serverReason(t, "server namespace disconnect");
        } finally {
            s.disconnect();
        }
    }

    void reconnect() throws Exception {
        ensureMain();
        String t = nextTag("dropped");
        Socket s = connect(socket(open(true), "/native", Map.of("tag", t)));
        try {
            BlockingQueue<Object[]> gone = listen(s, Socket.EVENT_DISCONNECT);
            BlockingQueue<Object[]> back = listen(s, Socket.EVENT_CONNECT);
            s.emit("drop");
            // over WebSocket this client notices only by the missing ping: pingInterval + pingTimeout
            Object reason = first(take(gone, "disconnect", 2 * TIMEOUT_MS));
            System.err.println(transport + "/reconnect: the client saw " + reason);
            // the client's reason depends on what it noticed first: the close packet, the closed socket, or
            // the silence (2.x ignores a close packet on WebSocket and so reports ping timeout there)
            if (!List.of("transport close", "transport error", "ping timeout").contains(reason)) {
                throw new Failure("the client saw " + reason + ", want a transport-level reason");
            }
            take(back, "reconnection");
            same(call(s, "echo", "after reconnect"), List.of("after reconnect"));
            same(call(main, "connects", t), List.of(2));
            serverReason(t, "transport close");
        } finally {
            s.disconnect();
        }
    }

    // -- values -----------------------------------------------------------------------------

    static Object first(Object[] args) {
        return args == null || args.length == 0 ? null : args[0];
    }

    /** Plain Java values as the library wants them: JSONObject, JSONArray, JSONObject.NULL. */
    static Object toJson(Object v) {
        if (v == null) {
            return JSONObject.NULL;
        }
        if (v instanceof List) {
            JSONArray a = new JSONArray();
            for (Object x : (List<?>) v) {
                a.put(toJson(x));
            }
            return a;
        }
        if (v instanceof Map) {
            JSONObject o = new JSONObject();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                try {
                    o.put((String) e.getKey(), toJson(e.getValue()));
                } catch (JSONException ex) {
                    throw new IllegalArgumentException(ex);
                }
            }
            return o;
        }
        return v;
    }

    /** A canonical text for a JSON-like value: sorted keys, numbers without trailing zeros. */
    static String canon(Object v) {
        if (v == null || v == JSONObject.NULL) {
            return "null";
        }
        if (v instanceof Object[]) {
            return canon(Arrays.asList((Object[]) v));
        }
        if (v instanceof JSONArray) {
            JSONArray a = (JSONArray) v;
            List<Object> items = new ArrayList<>();
            for (int i = 0; i < a.length(); i++) {
                items.add(a.opt(i));
            }
            return canon(items);
        }
        if (v instanceof List) {
            StringBuilder sb = new StringBuilder("[");
            for (Object x : (List<?>) v) {
                sb.append(sb.length() > 1 ? "," : "").append(canon(x));
            }
            return sb.append("]").toString();
        }
        if (v instanceof JSONObject) {
            JSONObject o = (JSONObject) v;
            Map<String, Object> m = new TreeMap<>();
            for (Iterator<?> keys = o.keys(); keys.hasNext(); ) {
                String k = (String) keys.next();
                m.put(k, o.opt(k));
            }
            return canon(m);
        }
        if (v instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : new TreeMap<>((Map<?, ?>) v).entrySet()) {
                sb.append(sb.length() > 1 ? "," : "").append(JSONObject.quote((String) e.getKey())).append(":")
                        .append(canon(e.getValue()));
            }
            return sb.append("}").toString();
        }
        if (v instanceof Number) {
            BigDecimal d = new BigDecimal(v.toString()).stripTrailingZeros();
            return d.toPlainString();
        }
        if (v instanceof String) {
            return JSONObject.quote((String) v);
        }
        if (v instanceof byte[]) {
            return "<bytes " + Arrays.toString((byte[]) v) + ">";
        }
        return v.toString();
    }

    static void same(Object got, Object want) throws Failure {
        String g = canon(got);
        String w = canon(want);
        if (!g.equals(w)) {
            throw new Failure("got " + g + ", want " + w);
        }
    }

    static String oneLine(String s) {
        return s == null ? "" : s.replace('\n', ' ').replace('\r', ' ');
    }
}
