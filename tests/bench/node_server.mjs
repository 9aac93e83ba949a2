// Node's socket.io 4.8 with the benchmark's handlers (sockets.py has them for realtime): the third column.
//
// usage: node node_server.mjs PORT [REDIS_URL]  (with REDIS_URL: @socket.io/redis-adapter, for two processes)
import { createServer } from "node:http";
import { Server } from "socket.io";

const [port, redisUrl] = process.argv.slice(2);
const httpServer = createServer();
const io = new Server(httpServer, { cors: { origin: "*" }, maxHttpBufferSize: 1_000_000 });

if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    ack(...args);
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    ack("joined");
  });
  socket.on("fanout", (room, ...args) => {
    io.to(room).emit("tick", ...args);
  });
});

httpServer.listen(Number(port), "127.0.0.1");
