// The official engine.io-client browser bundle (installed from npm by `make run`)
// exposes the global `eio`.
const socket = new eio.Socket({ path: "/socket.io/" });
const status = document.getElementById("status");
const transport = document.getElementById("transport");
const log = document.getElementById("log");

function line(text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  log.prepend(item);
}

socket.on("open", () => {
  status.textContent = "open";
  transport.textContent = socket.transport.name;
});
socket.on("upgrade", () => { transport.textContent = socket.transport.name; });
socket.on("close", (reason) => { status.textContent = `closed (${reason})`; });
socket.on("message", (data) => {
  if (typeof data === "string") {
    line(`← ${data}`, "in");
  } else {
    line(`← ${data.byteLength ?? data.size} bytes of binary`, "in");
  }
});

document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  socket.send(input.value);
  line(`→ ${input.value}`, "out");
  input.value = "";
});
document.getElementById("binary").addEventListener("click", () => {
  socket.send(Uint8Array.from([1, 2, 3, 4]));
  line("→ 4 bytes of binary", "out");
});
